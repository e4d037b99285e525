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

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_state, state = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in ema_state.items() if v.is_floating_point()]
        torch._foreach_lerp_([ema_state[k] for k in floats], [state[k] for k in floats], 1.0 - decay)
        for key, value in ema_state.items():
            if not value.is_floating_point():
                value.copy_(state[key])  # counters such as num_batches_tracked

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
