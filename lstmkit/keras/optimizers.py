"""Keras optimizers as thin wrappers over torch.optim (the update rules are torch's).

    Adam(learning_rate=0.001), SGD(learning_rate=0.01, momentum=0.0, nesterov=False), AdamW,
    RMSprop, Adagrad, Adadelta, Adamax, Nadam; names "adam", "sgd", "rmsprop", ...
Every optimizer takes learning_rate as a number or a schedule (see schedules: evaluated at the
optimizer's iteration count before each step), and the gradient clipping options clipnorm (each
weight's gradient to that norm), clipvalue (each element to +-value) and global_clipnorm (all
gradients together to that norm). weight_decay is decoupled, as in Keras (torch's AdamW rule).

The torch optimizer is made when the model's weights exist (build), on first use.
"""

from __future__ import annotations

import torch

from . import schedules
from .schedules import LearningRateSchedule


class Optimizer:
    torch_class: type = None
    default_lr = 0.001

    def __init__(self, learning_rate=None, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {sorted(kwargs)}")
        if use_ema:
            raise NotImplementedError("use_ema is not supported")
        if sum(v is not None for v in (clipnorm, global_clipnorm)) > 1:
            raise ValueError("give at most one of clipnorm and global_clipnorm")
        lr = self.default_lr if learning_rate is None else learning_rate
        if not isinstance(lr, LearningRateSchedule) and not callable(lr):
            lr = float(lr)
            if lr < 0:
                raise ValueError(f"learning_rate must be >= 0, got {lr}")
        self._learning_rate = lr
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._torch: torch.optim.Optimizer | None = None
        self._params: list[torch.nn.Parameter] = []

    # ------------------------------------------------------------------ torch side

    def _torch_kwargs(self) -> dict:
        return {}

    def build(self, params) -> None:
        self._params = [p for p in params if p.requires_grad]
        if not self._params:
            raise ValueError("the model has no trainable weights to optimise")
        self._torch = self.torch_class(self._params, lr=self._current_lr(), **self._torch_kwargs())

    @property
    def built(self) -> bool:
        return self._torch is not None

    @property
    def torch_optimizer(self) -> torch.optim.Optimizer:
        return self._torch

    def _current_lr(self) -> float:
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @property
    def learning_rate(self) -> float:
        """The learning rate for the next step (a schedule's value at the current iteration)."""
        return self._current_lr()

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self._learning_rate = value if callable(value) else float(value)

    lr = learning_rate

    def zero_grad(self) -> None:
        for p in self._params:
            p.grad = None

    def step(self) -> None:
        """Clip the gradients, set this step's learning rate, apply weight decay and take the step."""
        params = [p for p in self._params if p.grad is not None]
        if self.clipvalue is not None:
            torch.nn.utils.clip_grad_value_(params, self.clipvalue)
        if self.clipnorm is not None:
            for p in params:
                torch.nn.utils.clip_grad_norm_([p], self.clipnorm)
        if self.global_clipnorm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.global_clipnorm)
        lr = self._current_lr()
        for group in self._torch.param_groups:
            group["lr"] = lr
        if self.weight_decay and not isinstance(self, AdamW):
            with torch.no_grad():
                for p in params:
                    p.mul_(1.0 - lr * self.weight_decay)
        self._torch.step()
        self.iterations += 1

    def state_dict(self) -> dict:
        return {"iterations": self.iterations, "torch": None if self._torch is None else self._torch.state_dict()}

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise ValueError("cannot save an optimizer whose learning_rate is a custom function")
        config = {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}
        config.update(self._own_config())
        return config

    def _own_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


class SGD(Optimizer):
    torch_class = torch.optim.SGD
    default_lr = 0.01

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _torch_kwargs(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _own_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    torch_class = torch.optim.Adam

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), amsgrad

    def _torch_kwargs(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad}

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    torch_class = torch.optim.AdamW

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)

    def _torch_kwargs(self):
        return {**super()._torch_kwargs(), "weight_decay": float(self.weight_decay or 0.0)}


class Adamax(Adam):
    torch_class = torch.optim.Adamax

    def _torch_kwargs(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


class Nadam(Adam):
    torch_class = torch.optim.NAdam

    def _torch_kwargs(self):
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


class RMSprop(Optimizer):
    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), centered

    def _torch_kwargs(self):
        return {"alpha": self.rho, "momentum": self.momentum, "eps": self.epsilon, "centered": self.centered}

    def _own_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def _torch_kwargs(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "eps": self.epsilon}

    def _own_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    torch_class = torch.optim.Adadelta

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _torch_kwargs(self):
        return {"rho": self.rho, "eps": self.epsilon}

    def _own_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


_CLASSES = {c.__name__: c for c in (SGD, Adam, AdamW, Adamax, Nadam, RMSprop, Adagrad, Adadelta)}
_NAMES = {name.lower(): c for name, c in _CLASSES.items()}


def get(identifier) -> Optimizer:
    """An optimizer name ("adam", "sgd", "rmsprop", ...), an Optimizer, or a config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}: expected one of {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, torch.optim.Optimizer):
        raise TypeError("pass a lstmkit.keras optimizer (e.g. optimizers.Adam()), not a torch.optim instance")
    raise TypeError(f"optimizer must be a name or an Optimizer, got {type(identifier).__name__}")


def serialize(opt: Optimizer) -> dict:
    return {"class_name": type(opt).__name__, "config": opt.get_config()}


def deserialize(config: dict) -> Optimizer:
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown optimizer class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
