"""`resnetlab.optimizers`, as `keras.optimizers`: optimizers named and configured with Keras 3's arguments and
defaults, built as torch optimizers over the Classifier's parameter groups at the first fit.

    clf.compile(optimizer=resnetlab.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True))

Keras 3 applies `weight_decay` decoupled (the weights shrink by lr x weight_decay per step, apart from the
gradient); torch's AdamW does the same, and SGD, Adam, RMSprop, Nadam and Adagrad add it to the gradient (L2),
which for SGD without momentum is the same step. Norm layers and biases are not decayed (timm's default, as
`resnetlab train`); Keras decays every variable unless told to exclude some.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..training.optim import param_groups


@dataclass
class Optimizer:
    """An optimizer's name and hyperparameters (Keras' argument names); `build` makes the torch optimizer.

    Each subclass names its torch class and maps its own arguments to torch's in `torch_arguments`."""

    name: ClassVar[str] = ""
    torch_class: ClassVar[type[torch.optim.Optimizer]]
    learning_rate: float = 0.001

    def torch_arguments(self) -> dict[str, Any]:
        return {}

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        groups = param_groups(model, self.weight_decay or 0.0, decay_norm_and_bias=False)
        return self.torch_class(groups, lr=self.learning_rate, **self.torch_arguments())

    def settings(self) -> dict[str, Any]:
        """What the Classifier's training settings record: the optimizer's name, lr, momentum, weight decay."""
        return {"optimizer": self.name, "lr": self.learning_rate, "weight_decay": self.weight_decay or 0.0,
                "momentum": getattr(self, "momentum", getattr(self, "beta_1", 0.0)),
                "nesterov": getattr(self, "nesterov", False)}

    def get_config(self) -> dict[str, Any]:
        """Keras' `get_config()`: the arguments as a dict."""
        return {"name": self.name, **asdict(self)}


@dataclass
class SGD(Optimizer):
    name: ClassVar[str] = "sgd"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.SGD
    learning_rate: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float | None = None

    def torch_arguments(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov and self.momentum > 0}


@dataclass
class _AdamFamily(Optimizer):
    """Adam, AdamW and Nadam: Keras' beta_1, beta_2, epsilon (1e-7; torch's default is 1e-8)."""

    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    weight_decay: float | None = None

    def torch_arguments(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}


@dataclass
class Adam(_AdamFamily):
    name: ClassVar[str] = "adam"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.Adam


@dataclass
class AdamW(_AdamFamily):
    name: ClassVar[str] = "adamw"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.AdamW
    weight_decay: float | None = 0.004  # Keras 3's default


@dataclass
class Nadam(_AdamFamily):
    name: ClassVar[str] = "nadam"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.NAdam


@dataclass
class RMSprop(Optimizer):
    name: ClassVar[str] = "rmsprop"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.RMSprop
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    weight_decay: float | None = None

    def torch_arguments(self) -> dict[str, Any]:
        return {"alpha": self.rho, "eps": self.epsilon, "momentum": self.momentum}


@dataclass
class Adagrad(Optimizer):
    name: ClassVar[str] = "adagrad"
    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.Adagrad
    initial_accumulator_value: float = 0.1
    epsilon: float = 1e-7
    weight_decay: float | None = None

    def torch_arguments(self) -> dict[str, Any]:
        return {"eps": self.epsilon, "initial_accumulator_value": self.initial_accumulator_value}


TORCH_NAMES = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw",
               torch.optim.RMSprop: "rmsprop", torch.optim.NAdam: "nadam", torch.optim.Adagrad: "adagrad"}


def torch_optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """The setting's name for a torch optimizer instance (by its exact class: a subclass may step differently)."""
    name = TORCH_NAMES.get(type(optimizer))
    if name is None:
        raise ValueError(f"{type(optimizer).__name__} is not one of the optimizers a Classifier records "
                         f"({', '.join(cls.__name__ for cls in TORCH_NAMES)}); use one of them or "
                         "resnetlab.optimizers")
    return name
