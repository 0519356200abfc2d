"""What LSTM and GRU layers share: torch.nn-compatible parameters, input forms (padded,
batch_first, unbatched, PackedSequence, lengths), stacking, directions and regularisers.

A subclass says how many state tensors it carries and runs one layer-direction through ops.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .. import ops
from .checks import check_float_tensor, check_input, check_lengths, check_state
from .sequences import repack, reverse_index, reverse_sequences, unpack


class _StreamPlan(NamedTuple):
    """What step() reads on every call, gathered once: the parameters' dtype, the state sizes,
    the step kernel with its options bound, and each layer's weights in the kernel's order."""

    dtype: torch.dtype
    sizes: tuple[int, ...]
    kernel: Callable
    weights: tuple[tuple[Optional[Tensor], ...], ...]


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


class RecurrentLayer(nn.Module):
    """Base of lstmkit.nn.LSTM / GRU. Subclasses set `state_names`, `weights_type` and
    `weight_fields` (parameter names in the op's order) and implement `_gate_rows`,
    `_extra_parameters`, `_run_direction`, `_step_kernel` and `_state_sizes`."""

    state_names: tuple[str, ...] = ()
    weights_type: type = tuple
    weight_fields: tuple[str, ...] = ()

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size={hidden_size}), got {proj_size!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        ops.get_activation(activation), ops.get_activation(recurrent_activation)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)

    def _build(self, device, dtype) -> None:
        """Create the parameters in torch.nn.LSTM's order and names, then initialise them."""
        factory = dict(device=device, dtype=dtype)
        H, P = self.hidden_size, self.proj_size or self.hidden_size
        G = self._gate_rows()
        self._flat_weights_names: list[str] = []
        self._extra_weights_names: list[str] = []
        self._weight_keys: dict[tuple[int, int], tuple[str, ...]] = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else P * self.num_directions
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (G, in_size), "weight_hh": (G, P)}
                if self.bias:
                    shapes.update(bias_ih=(G,), bias_hh=(G,))
                if self.proj_size:
                    shapes["weight_hr"] = (P, H)
                for name, shape in shapes.items():
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    self._flat_weights_names.append(name + suffix)
                for name, shape in self._extra_parameters().items():
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    self._extra_weights_names.append(name + suffix)
                self._weight_keys[layer, direction] = tuple(name + suffix for name in self.weight_fields)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's initialisation, U(-1/sqrt(H), 1/sqrt(H)), drawn in torch's order (so a
        seeded lstmkit layer gets torch's weights); then the extra parameters (see subclasses)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name in self._flat_weights_names:
                nn.init.uniform_(getattr(self, name), -bound, bound)
            for name in self._extra_weights_names:
                self._init_extra(name, getattr(self, name), bound)

    def _init_extra(self, name: str, param: Tensor, bound: float) -> None:
        raise NotImplementedError

    def flatten_parameters(self) -> None:
        """No-op, for code written for torch.nn.LSTM (cuDNN's weight flattening)."""

    @property
    def extra_weights(self) -> list[Tensor]:
        """The parameters torch.nn.LSTM has no counterpart for (peepholes, layer-norm gains)."""
        return [self._parameters[name] for name in self._extra_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        per_direction = len(self._flat_weights_names) // (self.num_layers * self.num_directions)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[k: k + per_direction]] for k in range(0, len(names), per_direction)]

    def weights(self, layer: int, direction: int = 0):
        """The parameters of one layer-direction as the op takes them (ops.LSTMWeights / GRUWeights)."""
        return self.weights_type._make(map(self._parameters.get, self._weight_keys[layer, direction]))

    # ---------------------------------------------------------------- forward

    def forward(self, input, hx=None, lengths=None):
        """input: [T, B, I] ([B, T, I] with batch_first), [T, I] unbatched, or a PackedSequence.
        hx: the initial state as torch.nn's layer takes it (zeros when None).
        lengths: [B] ints, for a padded batch whose sequence b is real for its first lengths[b]
        steps; its state stops there and its outputs after that are zero.
        Returns (output, state) shaped as torch.nn.LSTM / GRU return them."""
        x, lengths, unbatched, packed = self._prepare_input(input, lengths)
        states = self._prepare_state(hx, x, x.shape[1], unbatched)
        output, final = self._run_layers(x, states, lengths)
        return self._finish(output, final, unbatched, packed)

    def step(self, input: Tensor, state=None):
        """One time step with carried state, the streaming path: equal to forward() over the
        whole sequence, one step at a time.

        input [B, input_size] (or [input_size] unbatched); state as forward returns it (None:
        zeros). Returns (output [B, P], new state). Without gradient, in eval mode (or with no
        dropout, recurrent dropout or zoneout) each layer is one call into the fused kernel;
        otherwise the step runs through forward(), drawing fresh dropout masks each call.
        """
        plan = self.__dict__.get("_stream") or self._plan_stream()
        if self.bidirectional:
            raise ValueError("step() runs forward in time, but a bidirectional layer needs the whole sequence: "
                             "call forward() instead")
        check_float_tensor("input", input, plan.dtype)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"step() takes one step of input, [batch, {self.input_size}] or [{self.input_size}], "
                             f"got shape {tuple(input.shape)}")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if not self._fast_step_possible(x):
            seq = x.unsqueeze(1 if self.batch_first else 0)
            state = state if not unbatched or state is None else self._batch_state(state)
            output, new_state = self.forward(seq, state)
            output = output.select(1 if self.batch_first else 0, 0)
            return self._unbatch_step(output, new_state, unbatched)
        B = x.shape[0]
        if unbatched or not self._state_fits(state, self.num_layers, B, plan.sizes, plan.dtype):
            state = self._prepare_state(state, x, B, unbatched)
        states = (state,) if isinstance(state, Tensor) else state
        if self.num_layers == 1:   # the kernel reads [1, B, N] states as they are: no views per call
            *final, output = plan.kernel(x, *states, *plan.weights[0])
        else:
            finals = [[] for _ in states]
            output = x
            for layer in range(self.num_layers):
                *new, output = plan.kernel(output, *(s[layer] for s in states), *plan.weights[layer])
                for store, value in zip(finals, new):
                    store.append(value)
            final = [torch.stack(f) for f in finals]
        return self._unbatch_step(output, tuple(final) if len(final) > 1 else final[0], unbatched)

    def _plan_stream(self) -> "_StreamPlan":
        """Gather what step() needs once; any change to the layer's attributes or parameters
        through the module (setattr, register_parameter, to(), load_state_dict) clears it.
        Parameters swapped by writing into `_parameters` directly are not seen, as with
        torch.nn.LSTM's flat weights."""
        ref = self._parameters[self._flat_weights_names[0]]
        plan = _StreamPlan(ref.dtype, self._state_sizes(), self._step_kernel(ref.device, ref.dtype),
                           tuple(tuple(self.weights(layer)) for layer in range(self.num_layers)))
        self.__dict__["_stream"] = plan
        return plan

    def __setattr__(self, name: str, value) -> None:
        self.__dict__["_stream"] = None
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__["_stream"] = None
        super().__delattr__(name)

    def register_parameter(self, name: str, param) -> None:
        self.__dict__["_stream"] = None
        super().register_parameter(name, param)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.__dict__["_stream"] = None
        return result

    def __getstate__(self):
        state = dict(super().__getstate__())
        state["_stream"] = None          # holds the compiled kernel, which neither copies nor pickles
        return state

    def _fast_step_possible(self, x: Tensor) -> bool:
        if self.training and (self.dropout or self.recurrent_dropout or any(self.zoneout)):
            return False
        if any(self.zoneout):
            return False          # the expectation blend lives in forward()
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self._parameters.values())):
            return False
        return True

    @staticmethod
    def _batch_state(state):
        return tuple(s.unsqueeze(1) for s in state) if isinstance(state, tuple) else state.unsqueeze(1)

    @staticmethod
    def _unbatch_step(output: Tensor, state, unbatched: bool):
        if not unbatched:
            return output, state
        state = tuple(s.squeeze(1) for s in state) if isinstance(state, tuple) else state.squeeze(1)
        return output.squeeze(0), state

    def trace(self, input, hx=None, lengths=None) -> dict[str, Tensor]:
        """The per-step gate activations and states of every layer and direction, for inspection.

        Runs the reference equations without dropout or zoneout draws (as in eval mode) and
        without gradient. Returns a dict (LSTM: i, f, g, o, c, h; GRU: r, z, n, h) of tensors
        [num_layers * num_directions, T, B, N] ([.., B, T, N] with batch_first, [.., T, N]
        unbatched), time in the input's order for both directions; zero past each length.
        """
        x, lengths, unbatched, packed = self._prepare_input(input, lengths)
        if packed is not None:
            raise ValueError("trace() takes a padded tensor with lengths=, not a PackedSequence")
        states = self._prepare_state(hx, x, x.shape[1], unbatched)
        records: list[dict] = []
        with torch.no_grad():
            self._run_layers(x, states, lengths, records=records)
        steps = x.shape[0]
        out_mask = None if lengths is None else ops.step_masks(steps, lengths, None, None, x)[2]
        traced = {}
        for name in records[0]:
            per_direction = []
            for k, record in enumerate(records):
                v = torch.stack(record[name])
                if k % self.num_directions:
                    v = reverse_sequences(v, reverse_index(lengths, steps, x.device))
                per_direction.append(v if out_mask is None else v * out_mask)
            v = torch.stack(per_direction)
            if unbatched:
                v = v.squeeze(2)
            elif self.batch_first:
                v = v.transpose(1, 2)
            traced[name] = v
        return traced

    def _prepare_input(self, input, lengths):
        dtype = self._dtype()
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths= is for padded input; a PackedSequence carries its own lengths")
            x, packed_lengths = unpack(input)
            check_input(x, self.input_size, False, dtype)
            return x, check_lengths(packed_lengths, x.shape[1], x.shape[0]), False, input
        x, unbatched = check_input(input, self.input_size, self.batch_first, dtype)
        if unbatched and lengths is not None:
            raise ValueError("lengths= needs batched input; unbatched input is one whole sequence")
        return x, check_lengths(lengths, x.shape[1], x.shape[0]), unbatched, None

    def _dtype(self) -> torch.dtype:
        return self._parameters[self._flat_weights_names[0]].dtype

    def _prepare_state(self, hx, like: Tensor, batch: int, unbatched: bool) -> tuple[Tensor, ...]:
        """The initial states each [L*D, B, N], checked (zeros like `like` when hx is None)."""
        LD, B = self.num_layers * self.num_directions, batch
        sizes = self._state_sizes()
        if hx is None:
            return tuple(like.new_zeros(LD, B, n) for n in sizes)
        if not unbatched and self._state_fits(hx, LD, B, sizes, like.dtype):
            return (hx,) if isinstance(hx, Tensor) else tuple(hx)
        given = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(given) != len(sizes):
            want = "a tensor h_0" if len(sizes) == 1 else "a tuple (h_0, c_0)"
            raise ValueError(f"hx must be {want}, got {type(hx).__name__} of {len(given)} items")
        return tuple(
            check_state(name, value, (LD, B, n), self._dtype(), unbatched)
            for name, value, n in zip(self.state_names, given, sizes)
        )

    @staticmethod
    def _state_fits(hx, LD: int, B: int, sizes, dtype) -> bool:
        """A quick yes for a state of exactly the right shapes and dtype (the streaming case);
        anything else goes through the checks that explain what is wrong. Plain loops: this runs
        once per streamed step."""
        given = (hx,) if isinstance(hx, Tensor) else hx
        if type(given) is not tuple or len(given) != len(sizes):
            return False
        for s, n in zip(given, sizes):
            if not isinstance(s, Tensor) or s.dtype != dtype or s.shape != (LD, B, n):
                return False
        return True

    def _run_layers(self, x: Tensor, states: tuple[Tensor, ...], lengths: Optional[Tensor], records=None):
        """Run every layer and direction. x [T, B, I]; states each [L*D, B, N].
        Returns (output [T, B, D*P], final states each [L*D, B, N])."""
        rev = reverse_index(lengths, x.shape[0], x.device) if self.bidirectional else None
        finals = [[] for _ in states]
        layer_input = x
        # Without gradient the directions write their halves of each layer's output in place
        # (the fused loops directly), which saves a torch.cat per layer.
        in_place = self.bidirectional and records is None and not (torch.is_grad_enabled() and (
            x.requires_grad or any(s.requires_grad for s in states)
            or any(p.requires_grad for p in self.parameters())))
        for layer in range(self.num_layers):
            outputs = []
            shared = layer_input.new_empty(*x.shape[:2], self.num_directions * (self.proj_size or self.hidden_size)) \
                if in_place else None
            halves = shared.chunk(self.num_directions, dim=-1) if in_place else (None,) * self.num_directions
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                # Without lengths the reverse direction reads the input and writes its output
                # backward (no flipped copies).
                whole = direction and rev is None and records is None
                seq = reverse_sequences(layer_input, rev) if direction and not whole else layer_input
                record = None
                if records is not None:
                    record = {}
                    records.append(record)
                y, final = self._run_direction(seq, tuple(s[k] for s in states), layer, direction, lengths, record,
                                               reversed_input=whole,
                                               out=halves[direction] if not direction or whole else None)
                outputs.append(reverse_sequences(y, rev) if direction and not whole else y)
                for store, value in zip(finals, final):
                    store.append(value)
            if in_place:
                for half, y in zip(halves, outputs):
                    if y is not half:   # the reverse direction with lengths, gathered back into order
                        half.copy_(y)
                layer_input = shared
            else:
                layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1 and records is None:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, tuple(torch.stack(f) for f in finals)

    def _recurrent_mask(self, batch: int, size: int, like: Tensor, records) -> Optional[Tensor]:
        """Gal & Ghahramani's recurrent dropout: one mask per sequence, scaled by 1 / (1 - p)."""
        if not (self.recurrent_dropout and self.training) or records is not None:
            return None
        keep = 1.0 - self.recurrent_dropout
        return ops.bernoulli_mask((batch, size), keep, like) / keep

    @staticmethod
    def zoneout_mask(rate: float, shape, like: Tensor, training: bool) -> Optional[Tensor]:
        """The zoneout mask the op takes, [T, B, N]: the weight of the previous state per step
        and unit, a 0/1 draw in training, the rate itself at inference (the expectation, as
        Krueger et al. prescribe); None for rate 0."""
        if not rate:
            return None
        if training:
            return ops.bernoulli_mask(shape, rate, like)
        return like.new_tensor(rate).expand(shape)

    def _finish(self, output: Tensor, final: tuple[Tensor, ...], unbatched: bool, packed):
        if packed is not None:
            output = repack(output, packed)
        elif unbatched:
            output = output.squeeze(1)
            final = tuple(s.squeeze(1) for s in final)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (final[0] if len(final) == 1 else final)

    # ---------------------------------------------------------------- conversion

    def _torch_kwargs(self) -> dict:
        return dict(
            input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
            bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
            bidirectional=self.bidirectional,
        )

    def _check_torch_convertible(self, what: str) -> None:
        extras = []
        if self.activation != "tanh" or self.recurrent_activation != "sigmoid":
            extras.append(f"activation={self.activation!r}, recurrent_activation={self.recurrent_activation!r}")
        if self.recurrent_dropout:
            extras.append(f"recurrent_dropout={self.recurrent_dropout}")
        if getattr(self, "cell", "vanilla") != "vanilla":
            extras.append(f"cell={self.cell!r}")
        if any(getattr(self, "zoneout", (0.0,))):
            extras.append(f"zoneout={self.zoneout}")
        if extras:
            raise ValueError(f"{what} has no equivalent of {', '.join(extras)}: only the plain cell converts")

    def _copy_weights(self, src: nn.Module, dst: nn.Module) -> None:
        """Copy the torch-named parameters (weight_ih_l0, ...) from src to dst."""
        with torch.no_grad():
            for name in self._flat_weights_names:
                getattr(dst, name).copy_(getattr(src, name))

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False),
                              ("cell", "vanilla"), ("activation", "tanh"), ("recurrent_activation", "sigmoid"),
                              ("recurrent_dropout", 0.0)):
            value = getattr(self, name, default)
            if value != default:
                s += f", {name}={value!r}"
        zoneout = getattr(self, "zoneout", (0.0,))
        if any(zoneout):
            s += f", zoneout={zoneout!r}"
        return s
