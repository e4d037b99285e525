"""Parameter and FLOP counts of registered models, measured on the meta device (no memory, no compute)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..registry import create_model, get_model_entry


@dataclass(frozen=True)
class ModelStats:
    name: str
    family: str
    paper: str
    params: int
    input_size: tuple[int, int, int]  # (C, H, W) the FLOPs are counted at
    flops: int | None  # per image, a multiply-add counted as 2 FLOPs


def count_flops(model: torch.nn.Module, input_size: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass of one image (convolutions and matrix products, as torch counts them)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros((1, *input_size), device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_stats(name: str, *, flops: bool = True, **options) -> ModelStats:
    """Parameters and FLOPs of `name` at its default class count and input size."""
    entry = get_model_entry(name)
    with torch.device("meta"):
        model = create_model(name, **options)
    params = sum(p.numel() for p in model.parameters())
    input_size = tuple(model.default_input_size)
    return ModelStats(name, entry.family, entry.paper, params, input_size,
                      count_flops(model, input_size) if flops else None)


def layer_table(model: torch.nn.Module, input_size: tuple[int, int, int], depth: int = 2) -> list[str]:
    """Keras' `summary()` as lines: each layer to `depth` levels (name and type), its output shape for one
    batch of `input_size` images, its parameters; then the totals.

    The shapes come from a forward pass of an empty twin on the meta device (no memory, no compute). As in
    Keras, the BatchNorm statistics count as non-trainable parameters (PyTorch keeps them as buffers), and so
    do frozen weights. Shapes are PyTorch's (None, C, H, W), where Keras shows (None, H, W, C).
    """
    arch = model.arch
    with torch.device("meta"):
        twin = create_model(arch.name, num_classes=arch.num_classes, in_chans=arch.in_chans, **arch.options)
    listed = [(name, module) for name, module in twin.named_modules() if name and name.count(".") < depth]
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:  # None: output kept
            shapes.setdefault(name, tuple(output.shape))
        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in listed]
    try:
        with torch.no_grad():
            twin.eval()(torch.zeros((1, *input_size), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    own = dict(model.named_modules())
    # in the order they run (a module used twice, such as a shared ReLU, at its first use); unused ones that
    # hold nothing (an Identity standing in for a layer the variant lacks) are left out
    order = {name: i for i, name in enumerate(shapes)}
    used = sorted((pair for pair in listed if pair[0] in order or any(True for _ in own[pair[0]].parameters())),
                  key=lambda pair: order.get(pair[0], len(order)))
    rows = [(f"{'  ' * name.count('.')}{name} ({type(module).__name__})",
             str(("None", *shapes[name][1:])).replace("'", "") if name in shapes else "-",
             f"{sum(p.numel() for p in own[name].parameters()):,}") for name, module in used]
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    statistics = [b for name, b in model.named_buffers()
                  if b.is_floating_point() and not name.endswith("num_batches_tracked")]
    width = (max(len(r[0]) for r in rows) + 2, max(len(r[1]) for r in rows) + 2, 14)
    rule = "=" * sum(width)

    def count(tensors: list[torch.Tensor]) -> str:
        size = sum(t.numel() * t.element_size() for t in tensors)
        shown = f"{size / 2**20:.2f} MB" if size >= 2**20 else f"{size / 2**10:.2f} KB"
        return f"{sum(t.numel() for t in tensors):,} ({shown})"

    lines = [f'Model: "{arch.name}"', rule,
             f"{'Layer (type)':<{width[0]}}{'Output Shape':<{width[1]}}{'Param #':>{width[2]}}", rule]
    lines += [f"{name:<{width[0]}}{shape:<{width[1]}}{params:>{width[2]}}" for name, shape, params in rows]
    lines += [rule, f"Total params: {count([*trainable, *frozen, *statistics])}",
              f"Trainable params: {count(trainable)}", f"Non-trainable params: {count([*frozen, *statistics])}"]
    return lines
