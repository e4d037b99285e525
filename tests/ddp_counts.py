"""A weighted run under torchrun whose epoch counts (training/sums.py) tests/training/test_distributed.py compares
with one process's: python -m torch.distributed.run --nproc_per_node=2 tests/ddp_counts.py OUT.json"""

from __future__ import annotations

import json
import sys

import torch

import resnetlab
from resnetlab.config import TrainConfig
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.info import ModelInfo
from resnetlab.training.distributed import Distributed, init_distributed
from resnetlab.training.loop import Trainer


def weighted_counts(distributed: Distributed | None = None) -> dict:
    """Train tutorial_cnn (no BatchNorm: two half batches step as one whole) 2 epochs on weighted images;
    return the last epoch's counts over all processes."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (96,), generator=generator)
    images = torch.randint(0, 256, (96, 3, 28, 28), generator=generator, dtype=torch.uint8)
    images[labels == 0] //= 2  # something to learn
    weights = torch.rand(96, generator=generator) * 2
    torch.manual_seed(0)
    model = resnetlab.create_model("tutorial_cnn", num_classes=3, img_size=28)
    info = ModelInfo(arch=model.arch, class_names=["a", "b", "c"], input_size=(3, 28, 28), mean=(0.5,) * 3,
                     std=(0.25,) * 3)
    shard = (0, 1) if distributed is None else (distributed.rank, distributed.world)
    loader = BatchLoader(ImageSet(images, labels, weights), 32, mean=info.mean, std=info.std, shuffle=True, seed=1,
                         shard=shard)
    trainer = Trainer(model, info, loader, TrainConfig(epochs=2, lr=0.01, batch_size=32, precision="fp32"),
                      distributed=distributed, class_counts=True)
    trainer.run()
    counts = trainer.epoch_counts
    return {"confusion": counts.confusion.tolist(), "weighted_confusion": counts.weighted_confusion.tolist(),
            "weight_total": counts.weight_total, "weighted_top5": counts.weighted_top5,
            "train_loss": trainer.history.rows[-1].train_loss, "weights_sum": float(weights.double().sum())}


if __name__ == "__main__":
    setup, _ = init_distributed(torch.device("cpu"))
    result = weighted_counts(setup)
    if setup is None or setup.is_main:
        with open(sys.argv[1], "w") as handle:
            json.dump(result, handle)
