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


class Lookahead:
    """Lookahead (Zhang et al. 2019) as airbench schedules it (Jordan 2024): every `every` optimizer
    steps, a slow copy of the weights moves toward the trained ("fast") weights and the fast weights
    restart from it: slow = decay * slow + (1 - decay) * fast; fast = slow.

    decay = 0.95**every * (step / total)**3: no pull at the start, the most at the end, where it
    averages away the noise of the last steps; the model ends at the slow weights (`finish`). With lr
    restarts (train.restart_epochs) each cycle has that ramp and ends so: step and total count in the cycle.
    Parameters and float buffers (BatchNorm statistics) both follow; counters are left alone.
    """

    BASE = 0.95  # airbench's per-step decay

    def __init__(self, model: nn.Module, every: int, cycles: list[tuple[int, int]]):
        if every < 1:
            raise ValueError(f"lookahead_steps must be >= 1, got {every}")
        self.every, self.cycles = every, cycles  # (first step, end step) of each lr cycle (optim.cycles)
        self._fast = [v for v in model.state_dict().values() if v.is_floating_point()]
        self.slow = [v.detach().clone() for v in self._fast]

    @torch.no_grad()
    def step(self, step: int) -> None:
        """Call after optimizer step number `step` (1-based); acts on every `every`-th, and at the end of each
        cycle the model takes the slow weights (`finish`)."""
        start, end = next(((a, b) for a, b in self.cycles if step <= b), self.cycles[-1])
        if not step % self.every:
            decay = self.BASE ** self.every * min(1.0, (step - start) / max(1, end - start)) ** 3
            torch._foreach_lerp_(self.slow, self._fast, 1.0 - decay)
            torch._foreach_copy_(self._fast, self.slow)
        if step == end:
            self.finish()

    @torch.no_grad()
    def finish(self) -> None:
        """End of training: the model takes the slow weights."""
        torch._foreach_copy_(self._fast, self.slow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(i): tensor for i, tensor in enumerate(self.slow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.slow):
            raise ValueError(f"the checkpoint has {len(state)} lookahead tensors, the model {len(self.slow)}")
        for i, tensor in enumerate(self.slow):
            tensor.copy_(state[str(i)])
