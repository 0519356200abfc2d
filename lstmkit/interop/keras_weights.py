"""Keras <-> torch weight layouts for LSTM and GRU (one layer, one direction).

Keras (3.x) stores, per recurrent layer:

    LSTM  kernel [I, 4H]   recurrent_kernel [H, 4H]   bias [4H]         gates i, f, c, o
    GRU   kernel [I, 3H]   recurrent_kernel [H, 3H]   bias [2, 3H]      gates z, r, h
          (reset_after=True: bias[0] is the input bias, bias[1] the recurrent bias)

torch.nn.LSTM / lstmkit.nn store the transposes, gate rows stacked:

    LSTM  weight_ih [4H, I]  weight_hh [4H, H]  bias_ih [4H]  bias_hh [4H]   gates i, f, g, o
    GRU   weight_ih [3H, I]  weight_hh [3H, H]  bias_ih [3H]  bias_hh [3H]   gates r, z, n

Keras's LSTM gate order i, f, c, o is torch's i, f, g, o (c is the candidate g), so an LSTM
converts by transposing; Keras's single bias becomes bias_ih (bias_hh = 0) and returns as the
sum bias_ih + bias_hh. The GRU swaps the first two gate blocks (z, r <-> r, z). Keras's
reset_after=True GRU is exactly torch's formulation; reset_after=False has no torch equivalent.

Every function takes numpy arrays or torch tensors and returns torch tensors (float32 unless
the input was another float dtype). Shapes are checked; errors name expected vs received.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor


def _tensor(name: str, value) -> Tensor:
    if isinstance(value, Tensor):
        t = value.detach()
    else:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.array(arr, dtype=arr.dtype if arr.dtype.kind == "f" else np.float32))
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def _check_shape(name: str, t: Tensor, expected: tuple) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(t.shape)}")


def _gru_swap(t: Tensor, hidden: int, dim: int) -> Tensor:
    """Swap the first two gate blocks along `dim` (Keras z, r, h <-> torch r, z, n)."""
    a, b, c = t.split(hidden, dim=dim)
    return torch.cat([b, a, c], dim=dim)


# ------------------------------------------------------------------------------ LSTM

def lstm_from_keras(kernel, recurrent_kernel, bias=None, gates: int = 4) -> dict[str, Optional[Tensor]]:
    """Keras LSTM weights -> {"weight_ih" [G, I], "weight_hh" [G, H], "bias" [G] or None}.

    kernel [I, G], recurrent_kernel [H, G], bias [G], G = gates * H (gates=3 for lstmkit's
    cifg cell, whose blocks are f, g, o).
    """
    k = _tensor("kernel", kernel)
    rk = _tensor("recurrent_kernel", recurrent_kernel)
    if k.dim() != 2 or rk.dim() != 2:
        raise ValueError(f"kernel and recurrent_kernel must be 2-D, got shapes {tuple(k.shape)} and {tuple(rk.shape)}")
    hidden = rk.shape[0]
    G = gates * hidden
    _check_shape("kernel", k, (k.shape[0], G))
    _check_shape("recurrent_kernel", rk, (hidden, G))
    out = {"weight_ih": k.t().contiguous(), "weight_hh": rk.t().contiguous(), "bias": None}
    if bias is not None:
        b = _tensor("bias", bias)
        _check_shape("bias", b, (G,))
        out["bias"] = b.clone()
    return out


def lstm_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[Tensor]:
    """torch layout -> [kernel [I, G], recurrent_kernel [H, G], bias [G]] (bias only if any given).

    Keras has one bias; torch's two add up to it.
    """
    w_ih = _tensor("weight_ih", weight_ih)
    w_hh = _tensor("weight_hh", weight_hh)
    if w_ih.dim() != 2 or w_hh.dim() != 2 or w_ih.shape[0] != w_hh.shape[0]:
        raise ValueError(
            f"weight_ih [G, I] and weight_hh [G, H] must be 2-D with the same rows, "
            f"got {tuple(w_ih.shape)} and {tuple(w_hh.shape)}"
        )
    out = [w_ih.t().contiguous(), w_hh.t().contiguous()]
    biases = [_tensor(n, b) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)) if b is not None]
    for b in biases:
        _check_shape("bias", b, (w_ih.shape[0],))
    if biases:
        out.append(sum(biases[1:], biases[0].clone()))
    return out


def load_keras_lstm(module: torch.nn.Module, weights: Sequence, layer: int = 0, reverse: bool = False) -> None:
    """Copy Keras LSTM weights [kernel, recurrent_kernel, bias] into a torch.nn.LSTM or
    lstmkit.nn.LSTM layer-direction (weight_ih_l{layer}[_reverse], ...): bias_ih = bias, bias_hh = 0."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(module, "weight_ih" + suffix)
    gates = w_ih.shape[0] // getattr(module, "hidden_size")
    conv = lstm_from_keras(*weights, gates=gates) if len(weights) == 3 else lstm_from_keras(*weights, None, gates=gates)
    with torch.no_grad():
        for name, value in (("weight_ih", conv["weight_ih"]), ("weight_hh", conv["weight_hh"])):
            target = getattr(module, name + suffix)
            _check_shape(name + suffix, value, tuple(target.shape))
            target.copy_(value)
        b_ih, b_hh = getattr(module, "bias_ih" + suffix, None), getattr(module, "bias_hh" + suffix, None)
        if b_ih is not None:
            if conv["bias"] is None:
                raise ValueError("the module has biases but no Keras bias was given")
            b_ih.copy_(conv["bias"])
            b_hh.zero_()
        elif conv["bias"] is not None:
            raise ValueError("a Keras bias was given but the module was built with bias=False")


# ------------------------------------------------------------------------------ GRU

def gru_from_keras(kernel, recurrent_kernel, bias=None) -> dict[str, Optional[Tensor]]:
    """Keras GRU (reset_after=True) -> {"weight_ih" [3H, I], "weight_hh" [3H, H],
    "bias_ih" [3H], "bias_hh" [3H]} in torch's gate order r, z, n.

    bias must be [2, 3H] (reset_after=True); a [3H] bias is the reset_after=False GRU, which
    computes a different function than torch's GRU and is refused.
    """
    k = _tensor("kernel", kernel)
    rk = _tensor("recurrent_kernel", recurrent_kernel)
    if k.dim() != 2 or rk.dim() != 2:
        raise ValueError(f"kernel and recurrent_kernel must be 2-D, got shapes {tuple(k.shape)} and {tuple(rk.shape)}")
    H = rk.shape[0]
    _check_shape("kernel", k, (k.shape[0], 3 * H))
    _check_shape("recurrent_kernel", rk, (H, 3 * H))
    out = {
        "weight_ih": _gru_swap(k, H, 1).t().contiguous(),
        "weight_hh": _gru_swap(rk, H, 1).t().contiguous(),
        "bias_ih": None,
        "bias_hh": None,
    }
    if bias is not None:
        b = _tensor("bias", bias)
        if tuple(b.shape) == (3 * H,):
            raise ValueError(
                "a GRU bias of shape (3H,) is Keras's reset_after=False GRU, which lstmkit does not "
                "implement; expected the reset_after=True bias of shape (2, 3H) = " + str((2, 3 * H))
            )
        _check_shape("bias", b, (2, 3 * H))
        out["bias_ih"] = _gru_swap(b[0], H, 0).contiguous()
        out["bias_hh"] = _gru_swap(b[1], H, 0).contiguous()
    return out


def gru_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> list[Tensor]:
    """torch layout (r, z, n) -> [kernel [I, 3H], recurrent_kernel [H, 3H], bias [2, 3H]] (z, r, h)."""
    w_ih = _tensor("weight_ih", weight_ih)
    w_hh = _tensor("weight_hh", weight_hh)
    H = w_hh.shape[1]
    _check_shape("weight_ih", w_ih, (3 * H, w_ih.shape[1]))
    _check_shape("weight_hh", w_hh, (3 * H, H))
    out = [_gru_swap(w_ih, H, 0).t().contiguous(), _gru_swap(w_hh, H, 0).t().contiguous()]
    if bias_ih is not None or bias_hh is not None:
        zeros = torch.zeros(3 * H, dtype=w_ih.dtype)
        b_ih = zeros if bias_ih is None else _tensor("bias_ih", bias_ih)
        b_hh = zeros if bias_hh is None else _tensor("bias_hh", bias_hh)
        _check_shape("bias_ih", b_ih, (3 * H,))
        _check_shape("bias_hh", b_hh, (3 * H,))
        out.append(torch.stack([_gru_swap(b_ih, H, 0), _gru_swap(b_hh, H, 0)]))
    return out
