"""model.summary(): Keras's table of layers, output shapes and parameter counts."""

from __future__ import annotations

from .layers.input_layer import InputLayer


def _size(n_params: int) -> str:
    size = n_params * 4.0
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _shape(shape) -> str:
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _connections(model, layer) -> str:
    if not getattr(model, "_functional", False):
        return ""
    parts = []
    for node in model._nodes:
        if node.layer is layer:
            for t in node.parents:
                src = t.node.layer
                k = [n for n in model._nodes if n.layer is src].index(t.node)
                parts.append(f"{src.name}[{k}][{t._keras_history[1]}]")
    return ", ".join(parts) or "-"


def print_summary(model, print_fn=None) -> None:
    print_fn = print_fn or print
    functional = getattr(model, "_functional", False) and any(
        len(n.parents) > 1 or isinstance(n.layer, InputLayer) and len(model.inputs) > 1 for n in model._nodes)
    layers = model.layers
    links = [_connections(model, l) for l in layers] if functional else []
    widths = [max([33] + [len(f"{l.name} ({type(l).__name__})") + 3 for l in layers]), 26, 15]
    widths += [max([30] + [len(c) + 3 for c in links])] if functional else []
    heads = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])

    def row(cells, left="│", mid="│", right="│"):
        out = []
        for k, (c, w) in enumerate(zip(cells, widths)):
            c = str(c)
            out.append((" " + c.rjust(w - 2) + " ") if k == 2 else (" " + c.ljust(w - 2) + " "))
        return left + mid.join(out) + right

    def rule(left, mid, right, ch="─"):
        return left + mid.join(ch * w for w in widths) + right

    print_fn(f'Model: "{model.name}"')
    print_fn(rule("┏", "┳", "┓", "━"))
    print_fn(row(heads, "┃", "┃", "┃"))
    print_fn(rule("┡", "╇", "┩", "━"))
    for k, layer in enumerate(layers):
        params = layer.count_params() if layer.built else 0
        shape = layer.output_shape if layer.built else None
        cells = [f"{layer.name} ({type(layer).__name__})", _shape(shape), f"{params:,}" if layer.built else "0 (unbuilt)"]
        if functional:
            cells.append(links[k])
        print_fn(row(cells))
        if k + 1 < len(layers):
            print_fn(rule("├", "┼", "┤"))
    print_fn(rule("└", "┴", "┘"))
    weights = model.weights if model.built else []
    total = sum(w.numel() for w in weights)
    trainable = sum(w.numel() for w in weights if w.requires_grad)
    print_fn(f" Total params: {total:,} ({_size(total)})")
    print_fn(f" Trainable params: {trainable:,} ({_size(trainable)})")
    print_fn(f" Non-trainable params: {total - trainable:,} ({_size(total - trainable)})")
