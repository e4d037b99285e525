"""Multi-process training with PyTorch's DDP, launched by torchrun (single or multi-node).

    torchrun --nproc_per_node=2 -m resnetlab train model=resnet20 data=cifar10 ...

Every process holds the whole dataset and takes its slice of each global batch (the loaders shard by
rank), gradients are averaged by DDP, and only rank 0 writes files or prints progress. Backends:
NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> tuple[Distributed | None, torch.device]:
    """Join the process group torchrun set up (env://); return (None, device) for a single process."""
    if not launched_by_torchrun():
        return None, device
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"multi-process training runs on CPU (gloo) or CUDA (NCCL), not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return Distributed(rank, world, local_rank, backend), device


def shutdown(setup: Distributed | None) -> None:
    if setup is not None and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, setup: Distributed | None) -> torch.Tensor:
    """Sum a tensor over all processes (a no-op for one process)."""
    if setup is not None:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_process(flag: bool, setup: Distributed | None, device: torch.device) -> bool:
    """True on every process when `flag` is true on any (one process: the flag itself)."""
    if setup is None:
        return flag
    return all_reduce_sum(torch.tensor([float(flag)], device=device), setup).item() > 0  # NCCL: CUDA tensors


def main_process_says(flag: bool, setup: Distributed | None, device: torch.device) -> bool:
    """Rank 0's `flag` on every process (one process: the flag itself)."""
    if setup is None:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.broadcast(value, src=0)
    return value.item() > 0


def broadcast_text(text: str | None, setup: Distributed | None) -> str | None:
    """Rank 0's string on every process (run folder names)."""
    if setup is None:
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(setup: Distributed | None) -> None:
    if setup is not None:
        dist.barrier()
