"""The recurrent op's entry points: one layer, one direction, a whole sequence per call.

`lstm()` and `gru()` turn lengths and zoneout into the combined keep/output masks the passes use,
then take the training path (autograd.Function with the hand-written backward) when a gradient
is needed, or the inference path, which stores nothing per step.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from . import cpu, gru_steps, lstm_steps
from .activations import get_activation
from .gru_bptt import GRUFunction, gru_forward
from .lstm_bptt import LSTMFunction, lstm_forward
from .weights import GRUWeights, LSTMWeights, check_cell


def backend(device: str = "cpu") -> str:
    """Which implementation runs the recurrence on `device`: "cpu-fused" (the C++ loops of
    ops/cpu, built on first use) or "torch" (the same hand-written passes as plain torch ops,
    a Python loop over steps: the portable fallback, and the path on CUDA until GPU kernels)."""
    if torch.device(device).type == "cpu" and cpu.load() is not None:
        return "cpu-fused"
    return "torch"


_FUSED_DTYPES = (torch.float32, torch.float64)


def _steps_for(x: Tensor, fused, plain):
    """The fused C++ loops for float32/float64 CPU tensors when they built, else plain torch."""
    return fused if _fused_for(x.device, x.dtype) is not None else plain


def step_masks(
    steps: int,
    lengths: Optional[Tensor],
    zoneout_h: Optional[Tensor],
    zoneout_c: Optional[Tensor],
    like: Tensor,
) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Fold lengths and zoneout into (keep_h, keep_c, out_mask), each [T, B, *] or None.

    keep is the weight of the previous state: the zoneout draw while a sequence runs, 1 after
    its end (the state freezes); out_mask is 1 while it runs, 0 after (outputs are zero there).
    """
    if lengths is None:
        return zoneout_h, zoneout_c, None
    steps_t = torch.arange(steps, device=like.device).unsqueeze(1)
    active = (steps_t < lengths.to(like.device).unsqueeze(0)).unsqueeze(-1).to(like.dtype)
    keep_h = 1 - active if zoneout_h is None else 1 - active * (1 - zoneout_h)
    keep_c = 1 - active if zoneout_c is None else 1 - active * (1 - zoneout_c)
    return keep_h, keep_c, active


def bernoulli_mask(shape, rate: float, like: Tensor) -> Tensor:
    """A 0/1 mask of `shape` in like's dtype and device, 1 with probability `rate`: zoneout's draw
    and recurrent dropout's. On the CPU with the kernels built, a counter-based draw in C++
    seeded from torch's generator (torch.manual_seed repeats it), several times faster than
    torch's own; elsewhere torch's float32 uniform draw compared with the rate (a bfloat16 draw
    would be too coarse: its share of ones at rate 0.1 came out 0.1015)."""
    if like.device.type == "cpu" and like.dtype in _FUSED_DTYPES and cpu.load() is not None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return cpu.load().bernoulli_mask(list(shape), float(rate), seed, like)
    return (torch.rand(shape, device=like.device) < rate).to(like.dtype)


def _bf16_inference(x: Tensor, needs_grad: bool) -> bool:
    """bfloat16 without gradient on the CPU, with the kernels built: the input and recurrent
    GEMMs run in bf16 (oneDNN), the gates, the cell state and the state between steps in
    float32 (the projection weight W_hr too); outputs come back in bf16. (Small layers run
    wholly in float32 instead: _bf16_in_float.)"""
    return x.dtype == torch.bfloat16 and not needs_grad and x.device.type == "cpu" and cpu.load() is not None


def _float(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.float()


# Up to this many bytes of float32 W_ih, W_hh (and W_hr), bf16 inference runs in float32: weights
# that small stay in cache either way, and the float32 loops (the batch split among the threads,
# the input's product fused) beat the bf16 per-step GEMMs. Measured at T=50 B=32, bf16 against
# float32 inference: H=128 (512 KiB) 0.57 LSTM, 0.62 GRU, 0.70 layernorm; H=256 (2 MiB) 0.79
# LSTM, 1.03 GRU; at H=512 (8 MiB) bf16 gains (benchmarks/RESULTS.md).
_BF16_IN_FLOAT_BYTES = 2 << 20


def _bf16_in_float(weights) -> bool:
    """Whether a bf16 layer's inference runs in float32 (its weights and input upcast, its
    outputs rounded back to bf16): see _BF16_IN_FLOAT_BYTES."""
    gemm = [t for t in (weights.w_ih, weights.w_hh, getattr(weights, "w_hr", None)) if t is not None]
    return 4 * sum(t.numel() for t in gemm) <= _BF16_IN_FLOAT_BYTES


def _float_weights(weights):
    return type(weights)(*(_float(t) for t in weights))


def _float_but_gemm_weights(weights):
    """The weight bundle in float32 except W_ih and W_hh, left in bf16 for the GEMMs."""
    return type(weights)(*(t if name in ("w_ih", "w_hh") or t is None else t.float()
                           for name, t in zip(weights._fields, weights)))


def _onednn_lstm_fits(x: Tensor, weights: LSTMWeights, cell: str, activation: str, recurrent_activation: str,
                      lengths, recurrent_mask, zoneout_h, zoneout_c) -> bool:
    """Plain-LSTM float32 inference on the CPU (torch.nn.LSTM's cell and activations, both biases,
    no projection, lengths, masks or zoneout): the one case oneDNN's fused LSTM primitive covers.
    It runs both GEMMs of every step inside one primitive, faster than separate GEMM calls can,
    so this case takes it, as torch.nn.LSTM does; every other case runs lstmkit's own loops."""
    return (cell == "vanilla" and activation == "tanh" and recurrent_activation == "sigmoid"
            and x.dtype == torch.float32 and x.device.type == "cpu" and lengths is None and recurrent_mask is None
            and zoneout_h is None and zoneout_c is None and weights.w_hr is None and weights.b_ih is not None
            and weights.b_hh is not None and x.shape[0] > 0 and x.shape[1] > 0
            and torch.backends.mkldnn.is_available() and cpu.load() is not None)


def _onednn_lstm(x: Tensor, h0: Tensor, c0: Tensor, weights: LSTMWeights) -> tuple[Tensor, Tensor, Tensor]:
    """(y [T, B, H], h_T [B, H], c_T [B, H]) from oneDNN's LSTM primitive (aten::mkldnn_rnn_layer)."""
    y, h, c, _ = torch.ops.aten.mkldnn_rnn_layer(
        x.contiguous(), weights.w_ih, weights.w_hh, weights.b_ih, weights.b_hh, h0.contiguous(), c0.contiguous(),
        False, [], 2, c0.shape[-1], 1, True, False, False, False)   # reverse, batch_sizes, mode LSTM, ..., train
    return y, h, c


def _reads_backward(x: Tensor) -> bool:
    """Whether the loops x goes to read it from its last step without a flipped copy: the fused
    ones, which take float32 / float64 on the CPU (elsewhere x is flipped first)."""
    return _fused_for(x.device, x.dtype) is not None


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _check_out(out: Optional[Tensor], x: Tensor, size: int) -> None:
    """out, where given, must take y: [T, B, size] in x's dtype, on x's device."""
    if out is None:
        return
    expected = (x.shape[0], x.shape[1], size)
    if not isinstance(out, Tensor) or tuple(out.shape) != expected or out.dtype != x.dtype \
            or out.device != x.device:
        got = (f"{tuple(out.shape)} {out.dtype} on {out.device}" if isinstance(out, Tensor)
               else type(out).__name__)
        raise ValueError(f"out: expected a {list(expected)} tensor in {x.dtype} on {x.device}, got {got}")


def _into(out: Optional[Tensor], y: Tensor) -> Tensor:
    """y as the op returns it: out itself when one was given (y copied in unless the loop wrote
    it there already; with gradient, autograd tracks the copy), else y."""
    if out is None or y is out:
        return y
    return out.copy_(y)


def lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    weights: LSTMWeights,
    *,
    cell: str = "vanilla",
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    lengths: Optional[Tensor] = None,
    recurrent_mask: Optional[Tensor] = None,
    zoneout_h: Optional[Tensor] = None,
    zoneout_c: Optional[Tensor] = None,
    reversed_input: bool = False,
    out: Optional[Tensor] = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer-direction over a sequence; same contract as reference.lstm.

    x [T, B, I], h0 [B, P], c0 [B, H]; lengths [B] (1 <= lengths <= T); recurrent_mask [B, P];
    zoneout_h [T, B, P], zoneout_c [T, B, H]. Returns (y [T, B, P], (h_T [B, P], c_T [B, H])).
    reversed_input (no lengths): the layer runs over x from its last step to its first, as on
    x.flip(0), with the masks in that order but y in x's (y[t] the output at x[t], as the
    reverse direction of a bidirectional layer gives it); the fused loops read x and write y
    backward instead of flipping copies.
    out: a [T, B, P] tensor (any strides, e.g. one direction's half of a bidirectional layer's
    [T, B, 2P] output) that receives y and is returned as y. Without gradient the fused loops
    write into it directly, which saves the torch.cat of the two halves.
    """
    check_cell(cell)
    get_activation(activation), get_activation(recurrent_activation)
    _check_out(out, x, h0.shape[-1])
    needs_grad = _needs_grad(x, h0, c0, *weights)
    if reversed_input and lengths is not None:
        raise ValueError("reversed_input reverses whole sequences: with lengths, reverse each one first "
                         "(lstmkit.nn.sequences.reverse_sequences)")
    if reversed_input and not _reads_backward(x):
        y, state = lstm(x.flip(0), h0, c0, weights, cell=cell, activation=activation,
                        recurrent_activation=recurrent_activation, recurrent_mask=recurrent_mask,
                        zoneout_h=zoneout_h, zoneout_c=zoneout_c)
        return _into(out, y.flip(0)), state
    if _bf16_inference(x, needs_grad) and _bf16_in_float(weights):
        y, (h, c) = lstm(x.float(), h0.float(), c0.float(), _float_weights(weights), cell=cell, activation=activation,
                         recurrent_activation=recurrent_activation, lengths=lengths,
                         recurrent_mask=_float(recurrent_mask), zoneout_h=_float(zoneout_h),
                         zoneout_c=_float(zoneout_c), reversed_input=reversed_input)
        return _into(out, y.to(x.dtype)), (h.to(x.dtype), c.to(x.dtype))
    if _bf16_inference(x, needs_grad):
        h0, c0 = h0.float(), c0.float()
        keep_h, keep_c, out_mask = step_masks(x.shape[0], lengths, _float(zoneout_h), _float(zoneout_c), h0)
        y, h, c, _ = lstm_forward(x, h0, c0, _float_but_gemm_weights(weights), cell, activation,
                                  recurrent_activation, _float(recurrent_mask), keep_h, keep_c, out_mask,
                                  store=False, steps=cpu.lstm_steps)
        return _into(out, y.to(x.dtype)), (h.to(x.dtype), c.to(x.dtype))
    if not needs_grad and _onednn_lstm_fits(x, weights, cell, activation, recurrent_activation, lengths,
                                            recurrent_mask, zoneout_h, zoneout_c):
        if reversed_input:
            y, h, c = _onednn_lstm(x.flip(0), h0, c0, weights)
            return _into(out, y.flip(0)), (h, c)
        y, h, c = _onednn_lstm(x, h0, c0, weights)
        return _into(out, y), (h, c)
    keep_h, keep_c, out_mask = step_masks(x.shape[0], lengths, zoneout_h, zoneout_c, x)
    steps = _steps_for(x, cpu.lstm_steps, lstm_steps)
    if needs_grad:
        config = (cell, activation, recurrent_activation, steps, reversed_input)
        y, h, c = LSTMFunction.apply(x, h0, c0, recurrent_mask, keep_h, keep_c, out_mask, config, *weights)
    else:
        y, h, c, _ = lstm_forward(x, h0, c0, weights, cell, activation, recurrent_activation,
                                  recurrent_mask, keep_h, keep_c, out_mask, store=False, steps=steps,
                                  reversed=reversed_input, out=out)
    return _into(out, y), (h, c)


def gru(
    x: Tensor,
    h0: Tensor,
    weights: GRUWeights,
    *,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    lengths: Optional[Tensor] = None,
    recurrent_mask: Optional[Tensor] = None,
    zoneout_h: Optional[Tensor] = None,
    reversed_input: bool = False,
    out: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """One GRU layer-direction over a sequence. x [T, B, I], h0 [B, H] -> (y [T, B, H], h_T).
    reversed_input and out: as lstm()'s."""
    get_activation(activation), get_activation(recurrent_activation)
    _check_out(out, x, h0.shape[-1])
    needs_grad = _needs_grad(x, h0, *weights)
    if reversed_input and lengths is not None:
        raise ValueError("reversed_input reverses whole sequences: with lengths, reverse each one first "
                         "(lstmkit.nn.sequences.reverse_sequences)")
    if reversed_input and not _reads_backward(x):
        y, h = gru(x.flip(0), h0, weights, activation=activation, recurrent_activation=recurrent_activation,
                   recurrent_mask=recurrent_mask, zoneout_h=zoneout_h)
        return _into(out, y.flip(0)), h
    if _bf16_inference(x, needs_grad) and _bf16_in_float(weights):
        y, h = gru(x.float(), h0.float(), _float_weights(weights), activation=activation,
                   recurrent_activation=recurrent_activation, lengths=lengths, recurrent_mask=_float(recurrent_mask),
                   zoneout_h=_float(zoneout_h), reversed_input=reversed_input)
        return _into(out, y.to(x.dtype)), h.to(x.dtype)
    if _bf16_inference(x, needs_grad):
        h0 = h0.float()
        keep_h, _, out_mask = step_masks(x.shape[0], lengths, _float(zoneout_h), None, h0)
        y, h, _ = gru_forward(x, h0, _float_but_gemm_weights(weights), activation, recurrent_activation,
                              _float(recurrent_mask), keep_h, out_mask, store=False, steps=cpu.gru_steps)
        return _into(out, y.to(x.dtype)), h.to(x.dtype)
    keep_h, _, out_mask = step_masks(x.shape[0], lengths, zoneout_h, None, x)
    steps = _steps_for(x, cpu.gru_steps, gru_steps)
    if needs_grad:
        config = (activation, recurrent_activation, steps, reversed_input)
        y, h = GRUFunction.apply(x, h0, recurrent_mask, keep_h, out_mask, config, *weights)
        return _into(out, y), h
    y, h, _ = gru_forward(x, h0, weights, activation, recurrent_activation, recurrent_mask, keep_h, out_mask,
                          store=False, steps=steps, reversed=reversed_input, out=out)
    return _into(out, y), h


def lstm_step(x: Tensor, h: Tensor, c: Tensor, weights: LSTMWeights, *, cell: str = "vanilla",
              activation: str = "tanh", recurrent_activation: str = "sigmoid") -> tuple[Tensor, Tensor]:
    """One LSTM step for streaming, storing nothing for backward (use lstm() with T = 1 to train).
    x [B, I], h [.., B, P], c [.., B, H] -> (h', c') in the shapes of h and c."""
    return lstm_step_kernel(x.device, x.dtype, cell, activation, recurrent_activation)(x, h, c, *weights)[:2]


def gru_step(x: Tensor, h: Tensor, weights: GRUWeights, *, activation: str = "tanh",
             recurrent_activation: str = "sigmoid") -> Tensor:
    """One GRU step for streaming, storing nothing. x [B, I], h [.., B, H] -> h' in h's shape."""
    return gru_step_kernel(x.device, x.dtype, activation, recurrent_activation)(x, h, *weights)[0]


def lstm_step_kernel(device, dtype: torch.dtype, cell: str = "vanilla", activation: str = "tanh",
                     recurrent_activation: str = "sigmoid"):
    """The streaming LSTM step with its options bound, for callers that step many times:
    f(x, h, c, *weights) -> (h', c', output [B, P], a view of h'). The fused kernel itself
    where it runs for device and dtype (no Python in between), else the plain-torch pass."""
    check_cell(cell)
    get_activation(activation), get_activation(recurrent_activation)
    ext = _fused_for(device, dtype)
    if ext is not None:
        return functools.partial(ext.lstm_step, cell, activation, recurrent_activation)

    def plain(x: Tensor, h: Tensor, c: Tensor, *weights: Optional[Tensor]):
        _, h2, c2, _ = lstm_forward(x.unsqueeze(0), h.reshape(x.shape[0], -1), c.reshape(x.shape[0], -1),
                                    LSTMWeights(*weights), cell, activation, recurrent_activation, store=False)
        return h2.reshape(h.shape), c2.reshape(c.shape), h2
    return plain


def gru_step_kernel(device, dtype: torch.dtype, activation: str = "tanh", recurrent_activation: str = "sigmoid"):
    """The streaming GRU step with its options bound: f(x, h, *weights) -> (h', output [B, H])."""
    get_activation(activation), get_activation(recurrent_activation)
    ext = _fused_for(device, dtype)
    if ext is not None:
        return functools.partial(ext.gru_step, activation, recurrent_activation)

    def plain(x: Tensor, h: Tensor, *weights: Optional[Tensor]):
        h2 = gru_forward(x.unsqueeze(0), h.reshape(x.shape[0], -1), GRUWeights(*weights), activation,
                         recurrent_activation, store=False)[1]
        return h2.reshape(h.shape), h2
    return plain


def _fused_for(device, dtype: torch.dtype):
    """The compiled module when the fused loops run for tensors of device and dtype, else None."""
    if (device.type if isinstance(device, torch.device) else torch.device(device).type) == "cpu" and \
            dtype in _FUSED_DTYPES:
        return cpu.load()
    return None
