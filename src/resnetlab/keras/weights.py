"""Keras' weight methods over a model's state dict: get/set as NumPy arrays, save/load as files.

`save_weights` writes the weights with their metadata (a resnetlab model file, so `resnetlab info` and
`resnetlab.load` read it too); `load_weights` reads any file `read_state_dict` knows (a resnetlab model file
or training checkpoint, a safetensors or .pth state dict) into the model as it is, strictly: every name
and shape must match, as Keras requires of `load_weights` without `skip_mismatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import check_tensors, save_model
from ..info import ModelInfo
from ..statedict import read_state_dict

WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".safetensors")


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Every weight and buffer (BatchNorm statistics too) as NumPy copies in state-dict order, as Keras'."""
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


def set_weights(model: nn.Module, weights: Sequence[np.ndarray]) -> None:
    """Load arrays from `get_weights` (same order and shapes)."""
    state = model.state_dict()
    if len(weights) != len(state):
        raise ValueError(f"set_weights got {len(weights)} arrays; this model has {len(state)} (give get_weights' list)")
    with torch.no_grad():
        for (name, tensor), array in zip(state.items(), weights):
            value = torch.as_tensor(np.asarray(array))
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"set_weights: {name} needs shape {tuple(tensor.shape)}, got {tuple(value.shape)}")
            tensor.copy_(value)


def save_weights(model: nn.Module, info: ModelInfo, path: str | Path) -> Path:
    """Keras 3's `save_weights("name.weights.h5")`; `.safetensors` works too."""
    path = Path(path)
    if not path.name.lower().endswith(WEIGHTS_SUFFIXES):
        raise ValueError(f"save_weights({str(path)!r}): name the file *.weights.h5 (Keras 3's convention) or "
                         f"*.safetensors")
    return save_model(path, model, info)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Read weights saved by `save_weights` (or any model or state-dict file of this architecture) into `model`."""
    path = Path(path)
    tensors = check_tensors(path, model, read_state_dict(path))  # names, shapes, dtypes: one error naming the file
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in tensors.items()}, strict=True)


class WeightCalls:
    """Mixed into Classifier: Keras' get_weights / set_weights / save_weights / load_weights / count_params."""

    def get_weights(self) -> list[np.ndarray]:
        """Every weight and buffer (BatchNorm statistics too) as NumPy copies in state-dict order, as Keras'."""
        self._require_model()
        return get_weights(self.model)

    def set_weights(self, arrays: Sequence[np.ndarray]) -> None:
        """Load arrays from `get_weights` (same order and shapes)."""
        self._require_model()
        set_weights(self.model, arrays)

    def save_weights(self, path: str | Path) -> Path:
        """Keras 3's `save_weights("name.weights.h5")` (`.safetensors` too): the weights with their metadata."""
        self._require_model()
        return save_weights(self.model, self.info, path)

    def load_weights(self, path: str | Path) -> None:
        """Read weights into this model (same architecture; every name and shape must match)."""
        self._require_model()
        load_weights(self.model, path)

    def count_params(self) -> int:
        """Keras' count: every weight, BatchNorm statistics included (summary()'s "Total params")."""
        self._require_model()
        return sum(t.numel() for name, t in self.model.state_dict().items() if not name.endswith("num_batches_tracked"))
