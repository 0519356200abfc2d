"""The parameter bundles one recurrent layer (one direction) hands to the op.

Shapes, with H = hidden size, P = projection size (P = H without projection), I = input size,
G = number of gate rows (4H for LSTM cells, 3H for cifg, 3H for GRU):

    w_ih [G, I]   w_hh [G, P]   b_ih [G]   b_hh [G]        gate order i,f,g,o (cifg: f,g,o; GRU: r,z,n)
    w_hr [P, H]                                             projection (LSTMP), or None
    w_peep [3H]                                             peephole diagonals p_i, p_f, p_o, or None
    ln_gain_ih [G]  ln_gain_hh [G]  ln_gain_c [H]  ln_bias_c [H]   layernorm cell only, else None
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor

CELLS = ("vanilla", "peephole", "cifg", "layernorm")


class LSTMWeights(NamedTuple):
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Optional[Tensor] = None
    b_hh: Optional[Tensor] = None
    w_hr: Optional[Tensor] = None
    w_peep: Optional[Tensor] = None
    ln_gain_ih: Optional[Tensor] = None
    ln_gain_hh: Optional[Tensor] = None
    ln_gain_c: Optional[Tensor] = None
    ln_bias_c: Optional[Tensor] = None


class GRUWeights(NamedTuple):
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Optional[Tensor] = None
    b_hh: Optional[Tensor] = None


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: expected one of {list(CELLS)}")
    return cell


def gate_rows(cell: str, hidden_size: int) -> int:
    """Rows of w_ih / w_hh: 4H, except cifg, which has no input gate of its own (3H)."""
    return 3 * hidden_size if check_cell(cell) == "cifg" else 4 * hidden_size
