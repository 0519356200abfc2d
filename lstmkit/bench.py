"""lstmkit against its peers on the CPU, measured side by side, interleaved, in one process.

For each configuration every contender runs once per round, rounds repeat, and the table
reports medians, ratios to torch.nn.LSTM (torch.nn.GRU for the GRU rows) at the same size, and
the rate of each contender's matrix-multiply work (gemm_work: 2 FLOPs per multiply-add of the
products the layer needs, whatever else it does) in GFLOP/s:

    torch.nn.LSTM / GRU       torch's default path (oneDNN's RNN primitive for the LSTM)
    GEMM floor                just the matrix multiplies the recurrence needs, as torch.mm calls
                              (one for the LSTM's shapes, one for the GRU's)
    torch.mm 2048^3           one large square product: this run's reference for what the
                              machine's GEMM reaches, against which to read the GFLOP/s column
    LSTMCell loop             a Python loop over torch.nn.LSTMCell: how users step a layer
    peephole loop (torch)     a hand-written peephole cell in torch ops: how users write variants
    lstmkit <cell>            lstmkit.nn.LSTM / GRU with the backend lstmkit.ops.backend() names

It also prints how much CPU other processes used while it ran: figures taken on a busy machine
are not worth comparing. Usage:

    lstmkit bench [--rounds 5] [--quick] [--write benchmarks/RESULTS.md]
    python benchmarks/bench_cpu.py ...      (the same, from a source checkout)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import lstmkit
import lstmkit.nn as lnn
from lstmkit import ops
from lstmkit.files import atomic_write_text


@dataclass
class Config:
    name: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    bidirectional: bool = False


CONFIGS = [
    Config("T=100 B=64 I=H=512", 100, 64, 512, 512),
    Config("T=100 B=64 I=H=256", 100, 64, 256, 256),
    Config("T=50 B=32 I=H=128", 50, 32, 128, 128),
    Config("2-layer bidir T=100 B=64 I=H=256", 100, 64, 256, 256, layers=2, bidirectional=True),
]


# ---------------------------------------------------------------- contenders


def peephole_loop(x, cells_w, H):
    """A peephole LSTM written in torch ops, one Python iteration per step."""
    w_ih, w_hh, b, p = cells_w
    h = x.new_zeros(x.shape[1], H)
    c = x.new_zeros(x.shape[1], H)
    xw = x @ w_ih.t() + b
    out = []
    for t in range(x.shape[0]):
        a_i, a_f, a_g, a_o = (xw[t] + h @ w_hh.t()).chunk(4, 1)
        i = torch.sigmoid(a_i + p[0] * c)
        f = torch.sigmoid(a_f + p[1] * c)
        c = f * c + i * torch.tanh(a_g)
        h = torch.sigmoid(a_o + p[2] * c) * torch.tanh(c)
        out.append(h)
    return torch.stack(out)


def cell_loop(x, cell):
    h = x.new_zeros(x.shape[1], cell.hidden_size)
    c = torch.zeros_like(h)
    out = []
    for t in range(x.shape[0]):
        h, c = cell(x[t], (h, c))
        out.append(h)
    return torch.stack(out)


def gemm_floor(x, w_ih, w_hh, backward: bool):
    """The GEMMs of one layer and nothing else (an LSTM's or a GRU's, by the weights' shapes): the
    input projection and one recurrent GEMM per step; with backward also one dh GEMM per step, dx,
    dW_ih and dW_hh."""
    T, B, I = x.shape
    G, H = w_hh.shape
    x2 = x.reshape(T * B, I)
    d = x2 @ w_ih.t()                                   # [T*B, G]
    h = x.new_zeros(B, H)
    acc = torch.empty(B, G)
    for _ in range(T):
        torch.mm(h, w_hh.t(), out=acc)
    if backward:
        dh = torch.empty(B, H)
        for _ in range(T):
            torch.mm(acc, w_hh, out=dh)
        d @ w_ih                                        # dx       [T*B, I]
        d.t() @ x2                                      # dW_ih    [G, I]
        d.t() @ x2.new_empty(T * B, H)                  # dW_hh    [G, H]


def gemm_work(cfg: Config, *, gates: int = 4, proj: int = 0, backward: bool = False, rows: int | None = None) -> int:
    """FLOPs (2 per multiply-add) of the matrix products a run of the layer stack needs: per layer
    and direction, the input's product ([rows, I] by [I, gates * H]), the recurrent one each step
    ([B, P] by [P, gates * H], P = proj or H) and, with a projection, [B, H] by [H, P]. Backward
    takes two products of the same size for each (the input's and the weight's gradient): training
    is three times the forward. rows: the batch rows summed over steps that run (T * B, fewer
    with lengths). Layer-norm statistics, gates and cell updates are not counted."""
    rows = cfg.T * cfg.B if rows is None else rows
    dirs = 2 if cfg.bidirectional else 1
    out = proj or cfg.H
    total = 0
    for layer in range(cfg.layers):
        width = cfg.I if layer == 0 else dirs * out
        total += dirs * 2 * rows * (gates * cfg.H * (width + out) + (cfg.H * proj if proj else 0))
    return total * (3 if backward else 1)


def reference_gemm(n: int = 2048):
    """One [n, n] by [n, n] torch.mm: what the machine's GEMM reaches in this run."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return (lambda: torch.mm(a, b, out=c)), 2 * n ** 3


def make_contenders(cfg: Config, backward: bool):
    """(name -> (callable, group), name -> GEMM work in FLOPs) for one configuration; group names
    the torch baseline ("ref": none)."""
    torch.manual_seed(0)
    kw = dict(num_layers=cfg.layers, bidirectional=cfg.bidirectional)
    x = torch.randn(cfg.T, cfg.B, cfg.I, requires_grad=backward)
    lengths = torch.randint(cfg.T // 2, cfg.T + 1, (cfg.B,))
    lengths[0] = cfg.T
    entries, works = {}, {}

    def add(name, f, group, gates=4, proj=0, rows=None):
        entries[name] = (f, group)
        works[name] = gemm_work(cfg, gates=gates, proj=proj, backward=backward, rows=rows)

    def run(module, **fkw):
        def f():
            out = module(x, **fkw)
            y = out[0] if isinstance(out, tuple) else out
            if backward:
                y.sum().backward()
        return f

    single = cfg.layers == 1 and not cfg.bidirectional
    add("torch.nn.LSTM", run(nn.LSTM(cfg.I, cfg.H, **kw)), "lstm")
    add("lstmkit vanilla", run(lnn.LSTM(cfg.I, cfg.H, **kw)), "lstm")
    for cell in ("peephole", "cifg", "layernorm"):
        add(f"lstmkit {cell}", run(lnn.LSTM(cfg.I, cfg.H, cell=cell, **kw)), "lstm", gates=3 if cell == "cifg" else 4)
    P = cfg.H // 2
    add(f"lstmkit proj_size={P}", run(lnn.LSTM(cfg.I, cfg.H, proj_size=P, **kw)), "lstm", proj=P)
    if backward:
        reg = lnn.LSTM(cfg.I, cfg.H, recurrent_dropout=0.25, zoneout=0.1, **kw).train()
        add("lstmkit rec.dropout+zoneout", run(reg), "lstm")
    add("lstmkit vanilla, lengths", run(lnn.LSTM(cfg.I, cfg.H, **kw), lengths=lengths), "lstm",
        rows=int(lengths.sum()))
    if single:
        w_ih = torch.randn(4 * cfg.H, cfg.I) * 0.05
        w_hh = torch.randn(4 * cfg.H, cfg.H) * 0.05
        add("GEMM floor", lambda: gemm_floor(x.detach(), w_ih, w_hh, backward), "lstm")
        cell = nn.LSTMCell(cfg.I, cfg.H)
        add("LSTMCell loop", lambda: _maybe_backward(cell_loop(x, cell), backward), "lstm")
        params = [nn.Parameter(torch.randn(4 * cfg.H, cfg.I) * 0.05), nn.Parameter(torch.randn(4 * cfg.H, cfg.H) * 0.05),
                  nn.Parameter(torch.zeros(4 * cfg.H)), nn.Parameter(torch.randn(3, cfg.H) * 0.1)]
        add("peephole loop (torch)", lambda: _maybe_backward(peephole_loop(x, params, cfg.H), backward), "lstm")
    add("torch.nn.GRU", run(nn.GRU(cfg.I, cfg.H, **kw)), "gru", gates=3)
    add("lstmkit GRU", run(lnn.GRU(cfg.I, cfg.H, **kw)), "gru", gates=3)
    if single:
        g_ih = torch.randn(3 * cfg.H, cfg.I) * 0.05
        g_hh = torch.randn(3 * cfg.H, cfg.H) * 0.05
        add("GRU GEMM floor", lambda: gemm_floor(x.detach(), g_ih, g_hh, backward), "gru", gates=3)
    mm, works_mm = reference_gemm()
    entries["torch.mm 2048^3"] = (mm, "ref")
    works["torch.mm 2048^3"] = works_mm
    return entries, works


def _maybe_backward(y, backward):
    if backward:
        y.sum().backward()


# ---------------------------------------------------------------- streaming


def streaming_contenders(steps: int = 200):
    """B=1, I=32, H=128: per-step time of carrying state through one step at a time."""
    torch.manual_seed(0)
    xs = torch.randn(steps, 1, 32)
    theirs = nn.LSTM(32, 128).eval()
    ours = lnn.LSTM(32, 128).eval()
    ours_gru = lnn.GRU(32, 128).eval()
    ours_peep = lnn.LSTM(32, 128, cell="peephole").eval()
    w_hh = theirs.weight_hh_l0.detach()
    w_ih = theirs.weight_ih_l0.detach()

    def torch_steps():
        state = None
        for t in range(steps):
            _, state = theirs(xs[t: t + 1], state)

    def stepper(layer):
        def f():
            state = None
            for t in range(steps):
                _, state = layer.step(xs[t], state)
        return f

    def floor():
        h = torch.zeros(1, 128)
        for t in range(steps):
            torch.addmm(xs[t] @ w_ih.t(), h, w_hh.t())

    return {
        "torch.nn.LSTM per step": (torch_steps, "lstm"),
        "GEMM floor (2 matmuls)": (floor, "lstm"),
        "lstmkit LSTM.step": (stepper(ours), "lstm"),
        "lstmkit peephole .step": (stepper(ours_peep), "lstm"),
        "lstmkit GRU.step": (stepper(ours_gru), "lstm"),
    }, steps


# ---------------------------------------------------------------- bfloat16


def bf16_contenders(cfg: Config):
    """Inference in float32 and in bfloat16 for the same layer, plus the bf16 output's error."""
    import copy

    torch.manual_seed(0)
    x = torch.randn(cfg.T, cfg.B, cfg.I)
    entries, errors = {}, {}
    for name, layer in (("LSTM", lnn.LSTM(cfg.I, cfg.H).eval()), ("GRU", lnn.GRU(cfg.I, cfg.H).eval())):
        half = copy.deepcopy(layer).bfloat16()
        xb = x.bfloat16()
        entries[f"lstmkit {name} fp32"] = (lambda layer=layer: layer(x), "fp32")
        entries[f"lstmkit {name} bf16"] = (lambda half=half, xb=xb: half(xb), "bf16")
        with torch.no_grad():
            errors[name] = (half(xb)[0].float() - layer(x)[0]).abs().max().item()
    return entries, errors


# ---------------------------------------------------------------- timing


def cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    busy = sum(values) - values[3] - values[4]          # minus idle and iowait
    mine = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return busy, int(mine[11]) + int(mine[12])           # utime + stime


def measure(entries: dict, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in entries}
    for f, _ in entries.values():
        f()                                              # warm-up (and the kernel build)
    for _ in range(rounds):
        for name, (f, _) in entries.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def table(title: str, medians: dict[str, float], groups: dict[str, str], unit_scale: float, unit: str,
          works: dict[str, int] | None = None) -> list[str]:
    """A markdown table of the medians, their ratios to the group's torch baseline and, given the
    contenders' GEMM work, its rate."""
    base = {"lstm": medians.get("torch.nn.LSTM", medians.get("torch.nn.LSTM per step")),
            "gru": medians.get("torch.nn.GRU")}
    rate = " GFLOP/s |" if works else ""
    lines = [f"| {title} | {unit} | ratio to torch |{rate}", "|---|---:|---:|" + ("---:|" if works else "")]
    for name, t in medians.items():
        ratio = f"{t / base[groups[name]]:.2f}" if groups[name] in base else "-"
        cells = [name, f"{t * unit_scale:.2f}", ratio] + ([f"{works[name] / t / 1e9:.0f}"] if works else [])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration (default 5)")
    parser.add_argument("--quick", action="store_true", help="the two smaller configurations and streaming only")
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the tables to this markdown file")
    parser.add_argument("--config", type=parse_config, metavar="T,B,I,H[,LAYERS[,bidir]]",
                        help="time this one size instead of the standard ones (e.g. 200,16,64,128,2,bidir)")


def parse_config(text: str) -> Config:
    """"T,B,I,H[,layers[,bidir]]" -> Config; argparse shows the ValueError's message."""
    parts = [p.strip() for p in text.split(",")]
    bidirectional = parts[-1] == "bidir"
    numbers = parts[:-1] if bidirectional else parts
    try:
        values = [int(p) for p in numbers]
    except ValueError:
        values = []
    if len(values) not in (4, 5) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected T,B,I,H[,layers[,bidir]] with positive whole numbers, got {text!r}")
    T, B, I, H = values[:4]
    layers = values[4] if len(values) == 5 else 1
    name = f"{layers}-layer {'bidir ' if bidirectional else ''}T={T} B={B} I={I} H={H}"
    return Config(name, T, B, I, H, layers=layers, bidirectional=bidirectional)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Measure every configuration, print the tables as they come, and write them when asked."""
    if args.rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {args.rounds}")
    configs = [args.config] if args.config else CONFIGS[1:3] if args.quick else CONFIGS
    backend = ops.backend()      # builds the kernels if need be: the compiler is not another process's load
    busy0, mine0 = cpu_jiffies()
    wall0 = time.perf_counter()
    lines = [
        f"lstmkit {lstmkit.__version__}, backend `{backend}`, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()} "
        f"({_cpu_model()}), Python {platform.python_version()}, fp32, medians of {args.rounds} interleaved rounds.",
        "",
    ]
    for cfg in configs:
        for backward in (False, True):
            entries, works = make_contenders(cfg, backward)
            with torch.set_grad_enabled(backward):
                medians = measure(entries, args.rounds)
            mode = "forward + backward" if backward else "forward (no_grad)"
            groups = {name: g for name, (_, g) in entries.items()}
            lines += table(f"{cfg.name}, {mode}", medians, groups, 1e3, "ms", works) + [""]
            print("\n".join(lines[-len(medians) - 3:]), flush=True)
    if _has_bf16():
        cfg = configs[0]
        entries, errors = bf16_contenders(cfg)
        with torch.no_grad():
            medians = measure(entries, args.rounds)
        lines += [f"| bf16 inference, {cfg.name} | ms | speed-up over fp32 | max abs error vs fp32 |",
                  "|---|---:|---:|---:|"]
        for name in ("LSTM", "GRU"):
            t32, t16 = medians[f"lstmkit {name} fp32"], medians[f"lstmkit {name} bf16"]
            lines.append(f"| lstmkit {name} bf16 | {t16 * 1e3:.2f} | {t32 / t16:.2f} | {errors[name]:.2g} |")
        lines.append("")
        print("\n".join(lines[-5:]), flush=True)
    entries, steps = streaming_contenders()
    with torch.no_grad():
        medians = measure(entries, args.rounds)
    groups = {name: g for name, (_, g) in entries.items()}
    lines += table("streaming B=1 I=32 H=128, per step (no_grad)", medians, groups, 1e6 / steps, "us") + [""]
    print("\n".join(lines[-len(medians) - 3:]), flush=True)

    busy1, mine1 = cpu_jiffies()
    wall = time.perf_counter() - wall0
    hz = os.sysconf("SC_CLK_TCK")
    others = max(0, (busy1 - busy0) - (mine1 - mine0)) / hz
    lines.append(f"Other processes used {others:.1f} CPU-seconds during the {wall:.0f} s run "
                 f"({100 * others / (wall * os.cpu_count()):.0f}% of the machine).")
    print(lines[-1])
    if args.write:
        header = "# Benchmark results\n\nMade by `lstmkit bench --write benchmarks/RESULTS.md`.\n\n"
        atomic_write_text(args.write, header + "\n".join(lines) + "\n")
    return 0


def _has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
