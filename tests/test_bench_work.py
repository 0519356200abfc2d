"""The benchmark's GEMM work (the FLOPs behind its GFLOP/s column) against torch's own FLOP
counter over the layers' plain-torch passes: every matrix product they run, forward and the
hand-written backward, counted by torch.utils.flop_counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import lstmkit.nn as lnn
from lstmkit.bench import Config, gemm_work
from lstmkit.ops import cpu

LAYERS = {
    "vanilla": (lambda c: lnn.LSTM(c.I, c.H, **_stack(c)), dict(gates=4)),
    "peephole": (lambda c: lnn.LSTM(c.I, c.H, cell="peephole", **_stack(c)), dict(gates=4)),
    "cifg": (lambda c: lnn.LSTM(c.I, c.H, cell="cifg", **_stack(c)), dict(gates=3)),
    "layernorm": (lambda c: lnn.LSTM(c.I, c.H, cell="layernorm", **_stack(c)), dict(gates=4)),
    "projection": (lambda c: lnn.LSTM(c.I, c.H, proj_size=2, **_stack(c)), dict(gates=4, proj=2)),
    "gru": (lambda c: lnn.GRU(c.I, c.H, **_stack(c)), dict(gates=3)),
}


def _stack(cfg: Config) -> dict:
    return dict(num_layers=cfg.layers, bidirectional=cfg.bidirectional)


@pytest.fixture
def plain_torch_passes(monkeypatch):
    """The layers run their plain-torch loops, whose products the FLOP counter sees (the fused
    C++ loops are one opaque call to it)."""
    monkeypatch.setattr(cpu, "_state", {"tried": True, "module": None, "error": "the test asks for plain torch"})


@pytest.mark.parametrize("cfg", [Config("one layer", 5, 3, 4, 6), Config("2-layer bidir", 4, 2, 5, 3, 2, True)],
                         ids=lambda c: c.name)
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gemm_work_is_what_the_layers_multiply(kind, cfg, plain_torch_passes):
    make, shape = LAYERS[kind]
    layer = make(cfg)
    x = torch.randn(cfg.T, cfg.B, cfg.I, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        layer(x)
    with FlopCounterMode(display=False) as training:
        layer(x)[0].sum().backward()
    assert gemm_work(cfg, **shape) == forward.get_total_flops()
    assert gemm_work(cfg, backward=True, **shape) == training.get_total_flops()


def test_gemm_work_of_fewer_rows_scales_with_them():
    cfg = Config("one layer", 10, 4, 8, 8)
    assert gemm_work(cfg, rows=20) * 2 == gemm_work(cfg)
