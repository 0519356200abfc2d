"""The fused C++ loops for the CPU: built once on first use with ninja, then cached.

`lstm_steps` and `gru_steps` here have the same functions and arguments as the plain-torch
modules lstmkit.ops.lstm_steps / gru_steps, so the hand-written passes take either. `load()`
returns the compiled module, or None after one warning when it cannot be built; the op then
runs the plain-torch loops. Set LSTMKIT_BACKEND=torch to skip the build and use those loops.

The build is cached under $LSTMKIT_CACHE (default ~/.cache/lstmkit), keyed by the sources,
torch, Python and the CPU's instruction set, since it is compiled for this CPU (-march=native).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path

import torch

SOURCES = ("bindings.cpp", "gemm.cpp", "lstm_steps.cpp", "lstm_team.cpp", "lstm_team_ln.cpp", "lstm_team_proj.cpp",
           "gru_steps.cpp", "gru_team.cpp", "reductions.cpp", "random_masks.cpp")
HEADERS = ("common.h", "lstm_cell.h", "gru_cell.h", "loop_gradients.h", "panel_gemm.h", "row_dots.h", "team.h", "workspace.h")
# -fno-trapping-math lets GCC turn the selects in the activations into vector blends.
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-parameter"]

_lock = threading.Lock()
_state: dict = {"tried": False, "module": None, "error": None}


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_key() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((here / name).read_bytes())
    digest.update(f"{torch.__version__}|{sys.version_info[:2]}|{_cpu_signature()}|{CFLAGS}".encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = Path(os.environ.get("LSTMKIT_CACHE") or Path.home() / ".cache" / "lstmkit")
    return base / f"cpu-{build_key()}"


def load():
    """The compiled module, building it on first call; None (after one warning) if it fails."""
    if _state["tried"]:
        return _state["module"]
    with _lock:
        if _state["tried"]:
            return _state["module"]
        if os.environ.get("LSTMKIT_BACKEND", "").lower() == "torch":
            _state.update(tried=True, error="LSTMKIT_BACKEND=torch")
            return None
        try:
            _state["module"] = _build()
        except Exception as exc:  # a compiler or ninja missing, a failed compile: fall back, say so once
            _state["error"] = f"{type(exc).__name__}: {exc}".strip()[:2000]
            warnings.warn(
                "lstmkit: could not build the fused CPU kernels, so the recurrence runs as plain torch "
                f"operations (correct, several times slower). Cause: {_state['error']}",
                RuntimeWarning, stacklevel=3,
            )
        _state["tried"] = True
        return _state["module"]


def _build():
    from torch.utils.cpp_extension import load as load_extension

    here = Path(__file__).parent
    build_dir = cache_dir()
    build_dir.mkdir(parents=True, exist_ok=True)
    if not any(build_dir.glob("*.so")):
        print(f"lstmkit: compiling the fused CPU kernels once (about a minute), cached in {build_dir}",
              file=sys.stderr, flush=True)
    return load_extension(
        name=f"lstmkit_cpu_{build_key()}",
        sources=[str(here / name) for name in SOURCES],
        extra_cflags=CFLAGS,
        extra_ldflags=["-fopenmp"],
        build_directory=str(build_dir),
        verbose=False,
    )


def build_error() -> str | None:
    """Why the kernels are not in use, or None when they are (or were not tried yet)."""
    return _state["error"]


def _dense(t):
    return None if t is None else t.contiguous()


def _mask(m, steps, batch, size):
    """A [T, B, N] mask, or one that broadcasts to it ([T, B, 1], [T, 1, N], a scalar expanded),
    as a [T, B, N] view the kernel reads by strides: no copy."""
    return None if m is None else m.expand(steps, batch, size)


def _last_dense(x):
    """x itself when its last dimension is contiguous (the loops read rows by strides), else a copy."""
    return None if x is None else x if x.stride(-1) == 1 else x.contiguous()


def _rows(m, batch, size):
    """The recurrent mask as the dense [B, N] the kernel reads (it may arrive as [1, N])."""
    return None if m is None else m.expand(batch, size).contiguous()


# How many values the LSTM's and the GRU's backward_input_steps return (lstm_steps.cpp's
# lstm_backward_chunks: 17; gru_steps.cpp's gru_backward_chunks: 8).
BACKWARD_VALUES = 17
GRU_BACKWARD_VALUES = 8


class _LSTMSteps:
    """lstm_steps.forward_steps / backward_steps on the compiled module."""

    @staticmethod
    def forward_steps(xw, h0, c0, w_hh, b_ih, b_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, ln_bias_c,
                      recurrent_mask, keep_h, keep_c, out_mask, cell, activation, recurrent_activation, store):
        T, B = xw.shape[:2]
        P, H = h0.shape[-1], c0.shape[-1]
        out = load().lstm_forward_steps(
            xw, h0, c0, w_hh.contiguous(), _dense(b_ih), _dense(b_hh), _dense(w_hr), _dense(w_peep),
            _dense(ln_gain_ih), _dense(ln_gain_hh), _dense(ln_gain_c), _dense(ln_bias_c),
            _rows(recurrent_mask, B, P), _mask(keep_h, T, B, P), _mask(keep_c, T, B, H), _mask(out_mask, T, B, 1),
            cell, activation, recurrent_activation, store)
        return tuple(out)

    @staticmethod
    def input_fusion_fits(x, h0, w, cell) -> bool:
        """Whether forward_input_steps runs this cell with these weights (every cell but the
        layernorm cell with a projection; x, the state and the weights in one dtype)."""
        return x.dtype == h0.dtype and load().input_fusion_fits(w.w_ih, w.w_hh, _dense(w.w_hr), cell, h0)

    @staticmethod
    def forward_input_steps(x, h0, c0, w, recurrent_mask, keep_h, keep_c, out_mask, cell, activation,
                            recurrent_activation, store, reversed=False, out=None):
        """forward_steps on x's input projection (with both biases outside a layer norm), which
        the loop computes step by step: x [T, B, I]. The saved gates come back where xw would be.
        reversed: the steps run over x from its last step to its first, as on x.flip(0) without
        the copy; y is in x's order, the masks and saved tensors in the order the steps run.
        out: a [T, B, P] tensor (its last dimension contiguous) the loop writes y into."""
        T, B = x.shape[:2]
        P, H = h0.shape[-1], c0.shape[-1]
        result = load().lstm_forward_input_steps(
            x, w.w_ih, _dense(w.b_ih), _dense(w.b_hh), h0, c0, w.w_hh.contiguous(), _dense(w.w_hr), _dense(w.w_peep),
            _dense(w.ln_gain_ih), _dense(w.ln_gain_hh), _dense(w.ln_gain_c), _dense(w.ln_bias_c),
            _rows(recurrent_mask, B, P), _mask(keep_h, T, B, P), _mask(keep_c, T, B, H), _mask(out_mask, T, B, 1),
            cell, activation, recurrent_activation, store, reversed, out)
        return tuple(result)

    @staticmethod
    def backward_steps(*args):
        return _LSTMSteps.backward_input_steps(*args, None, None, None, None)[:7]

    @staticmethod
    def backward_input_steps(dy, dh_T, dc_T, gates, c_prev, c_new, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd,
                             w_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, recurrent_mask, keep_h, keep_c,
                             out_mask, cell, activation, recurrent_activation, x, w_ih, h_in, h_core=None,
                             reversed=False):
        """backward_steps given also the layer's input x [T, B, I], W_ih and the saved h_in (and,
        with a projection, the saved h_core [T, B, H]): where the loop can, it makes dx, dW_ih and
        dW_hh (and dW_hr) in it. Returns backward_steps' values, then (dx, dW_ih, dW_hh, dW_hr),
        each None where it left it to the caller, then the column
        sums the loop made beside them (else None): the biases' gradient, ln_gain_ih's,
        ln_gain_hh's, ln_gain_c's, ln_bias_c's and w_peep's (d_pre and d_c_norm are None then).
        reversed: the forward ran over x backward (forward_input_steps); dx comes in x's own
        order."""
        T, B = gates.shape[:2]
        P, H = dh_T.shape[-1], dc_T.shape[-1]
        out = load().lstm_backward_steps(
            _dense(dy), dh_T, dc_T, gates, c_prev, c_new, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd,
            w_hh.contiguous(), _dense(w_hr), _dense(w_peep), _dense(ln_gain_ih), _dense(ln_gain_hh),
            _dense(ln_gain_c), _rows(recurrent_mask, B, P), _mask(keep_h, T, B, P), _mask(keep_c, T, B, H),
            _mask(out_mask, T, B, 1), cell, activation, recurrent_activation, _last_dense(x), _dense(w_ih), h_in,
            _dense(h_core), reversed, None)
        return tuple(out) + (None,) * (BACKWARD_VALUES - len(out))

    @staticmethod
    def backward_input_chunks(dy, dh_T, dc_T, saved, w, recurrent_mask, keep_h, keep_c, out_mask, cell, activation,
                              recurrent_activation, x, reversed=False):
        """backward_input_steps after a forward that ran the batch in chunks side by side: saved
        holds each chunk's tensors in turn (lstm_bptt.SAVED's 12, None for absent ones), in row
        order. Each chunk's loop runs alone on one thread, on its rows. Returns each chunk's
        backward_input_steps values, and dx [T, B, I] for the whole batch where the loops wrote
        their rows of it in place (else None: join the chunks' dx)."""
        T, B = x.shape[:2]
        P, H = dh_T.shape[-1], dc_T.shape[-1]
        out = load().lstm_backward_chunks(
            _dense(dy), dh_T, dc_T, list(saved), w.w_hh.contiguous(), _dense(w.w_hr),
            _dense(w.w_peep), _dense(w.ln_gain_ih), _dense(w.ln_gain_hh), _dense(w.ln_gain_c),
            _rows(recurrent_mask, B, P), _mask(keep_h, T, B, P), _mask(keep_c, T, B, H), _mask(out_mask, T, B, 1),
            cell, activation, recurrent_activation, _last_dense(x), w.w_ih.contiguous(), reversed)
        *out, dx = out
        return [tuple(out[i:i + BACKWARD_VALUES]) for i in range(0, len(out), BACKWARD_VALUES)], dx


class _GRUSteps:
    """gru_steps.forward_steps / backward_steps on the compiled module."""

    @staticmethod
    def forward_steps(xw, h0, w_hh, b_hh, recurrent_mask, keep_h, out_mask, activation, recurrent_activation, store):
        T, B = xw.shape[:2]
        H = h0.shape[-1]
        return tuple(load().gru_forward_steps(xw, h0, w_hh.contiguous(), _dense(b_hh), _rows(recurrent_mask, B, H),
                                              _mask(keep_h, T, B, H), _mask(out_mask, T, B, 1), activation,
                                              recurrent_activation, store))

    @staticmethod
    def input_fusion_fits(x, h0, w) -> bool:
        """Whether forward_input_steps runs: x, the state and both weights in one dtype."""
        return x.dtype == h0.dtype == w.w_ih.dtype == w.w_hh.dtype

    @staticmethod
    def forward_input_steps(x, h0, w, recurrent_mask, keep_h, out_mask, activation, recurrent_activation, store,
                            reversed=False, out=None):
        """forward_steps on W_ih x_t + b_ih, which the loop computes step by step: x [T, B, I]
        (read from its last step to its first when reversed; y into out where given: as
        _LSTMSteps.forward_input_steps)."""
        T, B = x.shape[:2]
        H = h0.shape[-1]
        return tuple(load().gru_forward_input_steps(
            x, w.w_ih, _dense(w.b_ih), h0, w.w_hh.contiguous(), _dense(w.b_hh), _rows(recurrent_mask, B, H),
            _mask(keep_h, T, B, H), _mask(out_mask, T, B, 1), activation, recurrent_activation, store, reversed, out))

    @staticmethod
    def backward_steps(*args):
        return _GRUSteps.backward_input_steps(*args, None, None, None)[:3]

    @staticmethod
    def backward_input_steps(dy, dh_T, gates, gh_n, h_prev, w_hh, recurrent_mask, keep_h, out_mask,
                             activation, recurrent_activation, x, w_ih, h_in, reversed=False):
        """backward_steps given also x [T, B, I], W_ih and the saved h_in: returns its values, then
        (dx, dW_ih, dW_hh), each None where the loop left it to the caller, then b_ih's and b_hh's
        gradients where the loop summed them beside the weights' (else None; d_gx and d_gh are None
        then). reversed: as _LSTMSteps.backward_input_steps."""
        T, B = gates.shape[:2]
        H = dh_T.shape[-1]
        out = load().gru_backward_steps(_dense(dy), dh_T, gates, gh_n, h_prev, w_hh.contiguous(),
                                        _rows(recurrent_mask, B, H), _mask(keep_h, T, B, H),
                                        _mask(out_mask, T, B, 1), activation, recurrent_activation,
                                        _last_dense(x), _dense(w_ih), h_in, reversed, None)
        return tuple(out) + (None,) * (GRU_BACKWARD_VALUES - len(out))

    @staticmethod
    def backward_input_chunks(dy, dh_T, saved, w, recurrent_mask, keep_h, out_mask, activation,
                              recurrent_activation, x, reversed=False):
        """backward_input_steps after a forward that ran the batch in chunks side by side (saved:
        each chunk's 4 tensors in turn, gru_bptt.SAVED's, in row order); returns each chunk's
        backward_input_steps values and the whole dx (as _LSTMSteps.backward_input_chunks)."""
        T, B = x.shape[:2]
        H = dh_T.shape[-1]
        out = load().gru_backward_chunks(
            _dense(dy), dh_T, list(saved), w.w_hh.contiguous(),
            _rows(recurrent_mask, B, H), _mask(keep_h, T, B, H), _mask(out_mask, T, B, 1), activation,
            recurrent_activation, _last_dense(x), w.w_ih.contiguous(), reversed)
        *out, dx = out
        n = GRU_BACKWARD_VALUES
        return [tuple(out[i:i + n]) for i in range(0, len(out), n)], dx


lstm_steps = _LSTMSteps()
gru_steps = _GRUSteps()
