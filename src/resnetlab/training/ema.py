"""Exponential moving average of the weights (Polyak averaging), evaluated and saved as the model."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Keep `ema = decay * ema + (1 - decay) * model` over parameters and float buffers (BN statistics).

    The decay ramps up as min(decay, (1 + updates) / (10 + updates)), so early averages are not
    dominated by the random initial weights (TensorFlow's ExponentialMovingAverage num_updates rule).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay, self.updates = decay, 0
        self._pairs(model)

    def _pairs(self, model: nn.Module) -> None:
        """Match the averaged tensors to the model's once (state_dict() per step costs real time)."""
        ema_state, state = self.module.state_dict(), model.state_dict()
        self._source = model
        self._floats = ([ema_state[k] for k, v in ema_state.items() if v.is_floating_point()],
                        [state[k] for k, v in ema_state.items() if v.is_floating_point()])
        self._others = [(ema_state[k], state[k]) for k, v in ema_state.items() if not v.is_floating_point()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if model is not self._source:
            self._pairs(model)
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._floats[0], self._floats[1], 1.0 - decay)
        for averaged, current in self._others:
            averaged.copy_(current)  # counters such as num_batches_tracked

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
