"""An independent check of resnetlab's paper reproduction: He et al. 2015's CIFAR-10 training written from the
paper's text (arXiv:1512.03385, Sec. 4.2) in plain PyTorch, with no resnetlab import.

    python benchmarks/he2015_reference.py [--depth 20] [--plain] [--epochs 15] [--precision fp32|bf16]
        [--data-dir ../shared/data/cifar10] [--seed 0] [--out JSON]

What the paper says, and how it is done here:
- "32x32 images, with the per-pixel mean subtracted": the mean image of the training images, in [0, 1] units,
  no division by a standard deviation.
- "The first layer is 3x3 convolutions. Then we use a stack of 6n layers with 3x3 convolutions on the feature
  maps of sizes {32, 16, 8} respectively, with 2n layers for each feature map size. The numbers of filters
  are {16, 32, 64} respectively. The subsampling is performed by convolutions with a stride of 2. The network
  ends with a global average pooling, a 10-way fully-connected layer, and softmax."
- "shortcut connections ... connected to the pairs of 3x3 layers (totally 3n shortcuts) ... identity shortcuts
  in all cases (i.e., option A)": option A is Sec. 3.3's "zero-padding shortcuts for increasing dimensions",
  here the stride-2 subsampled input with zero channels appended. `--plain` drops the shortcuts.
- "batch normalization (BN) right after each convolution and before activation" (Sec. 3.4); "the weight
  initialization in [13]" (He et al. 2015b: normal with std sqrt(2 / fan_in)); no dropout.
- "weight decay of 0.0001 and momentum of 0.9 ... mini-batch size of 128 ... start with a learning rate of 0.1,
  divide it by 10 at 32k and 48k iterations, and terminate training at 64k iterations ... 45k/5k train/val
  split": the short schedule keeps the proportions, dividing at 50% and 75% of the iterations; 45k images
  train (a seeded random 5k are held out, as the paper's split).
- "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image or its
  horizontal flip. For testing, we only evaluate the single view of the original 32x32 image." The padding is
  black (zeros before the mean is subtracted).
Logs the training error (on the augmented batches, as the paper's Fig. 6 thin lines) and the test error per
epoch; writes JSON. `--precision bf16` runs the forward pass in bfloat16 autocast (the rest stays fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def read_cifar10(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 3, 32, 32] and labels from the official binary files (1 label byte, 3072 pixel bytes)."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(data_dir / name, dtype=np.uint8).reshape(-1, 3073) for name in names])
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


class Block(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut, self.stride, self.extra = shortcut, stride, planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.shortcut:  # option A: subsample, then append zero channels
            identity = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            out = out + (F.pad(identity, (0, 0, 0, 0, 0, self.extra)) if self.extra else identity)
        return F.relu(out)


class CifarNet(nn.Module):
    def __init__(self, depth: int, shortcut: bool, num_classes: int = 10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(Block(in_planes, planes, 2 if stage and i == 0 else 1, shortcut))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # [13]: std sqrt(2/fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images, each mirrored with probability 1/2 (uint8 in, out)."""
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (len(images), 2), generator=generator).tolist()
    crops = torch.stack([padded[i, :, y:y + 32, x:x + 32] for i, (y, x) in enumerate(offsets)])
    flip = torch.rand(len(images), generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    return crops


@torch.no_grad()
def test_error(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, autocast) -> float:
    model.eval()
    wrong = 0
    for start in range(0, len(images), 1000):
        x = (images[start:start + 1000].float() / 255 - mean).contiguous(memory_format=torch.channels_last)
        with autocast():
            wrong += (model(x).argmax(1) != labels[start:start + 1000]).sum().item()
    model.train()
    return wrong / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20, help="6n+2: 20, 32, 44, 56, 110")
    parser.add_argument("--plain", action="store_true", help="no shortcuts (the paper's plain nets)")
    parser.add_argument("--epochs", type=int, default=15, help="the paper's 64k iterations are 182 epochs of 45k")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/he2015_reference_*.json)")
    args = parser.parse_args()
    if (args.depth - 2) % 6:
        raise SystemExit(f"--depth must be 6n+2 (20, 32, 44, 56, 110), got {args.depth}")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bf16" \
        else contextlib.nullcontext

    images, labels = read_cifar10(Path(args.data_dir), train=True)
    order = torch.randperm(len(images), generator=generator)
    train_idx = order[5000:]  # 45k train, 5k held out (unused here: the paper used it to pick the schedule)
    train_images, train_labels = images[train_idx], labels[train_idx]
    test_images, test_labels = read_cifar10(Path(args.data_dir), train=False)
    mean = (train_images.float() / 255).mean(dim=0)  # the per-pixel mean image

    model = CifarNet(args.depth, shortcut=not args.plain).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_images) / 128)
    total = steps_per_epoch * args.epochs
    milestones = [total // 2, (total * 3) // 4]  # 32k and 48k of 64k
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)  # stepped per iteration

    name = f"{'plain' if args.plain else 'resnet'}{args.depth}"
    log, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        permutation = torch.randperm(len(train_images), generator=generator)
        loss_sum, wrong, seen, began = 0.0, 0, 0, time.perf_counter()
        for start in range(0, len(permutation), 128):
            index = permutation[start:start + 128]
            x = (augment(train_images[index], generator).float() / 255 - mean).contiguous(
                memory_format=torch.channels_last)
            y = train_labels[index]
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            wrong += (logits.argmax(1) != y).sum().item()
            seen += len(y)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_error": wrong / seen,
               "test_error": test_error(model, test_images, test_labels, mean, autocast),
               "seconds": round(time.perf_counter() - began, 1)}
        log.append(row)
        print(f"{name} {args.precision} epoch {epoch:>3}: train error {row['train_error']:.2%}  test error "
              f"{row['test_error']:.2%}  ({row['seconds']:.0f} s)", flush=True)
    out = Path(args.out or f"benchmarks/results/he2015_reference_{name}_{args.precision}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "he2015_reference", "model": name, "precision": args.precision, "epochs": args.epochs,
              "seed": args.seed, "final_test_error": log[-1]["test_error"], "log": log,
              "total_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    out.write_text(json.dumps(report, indent=2))
    print(f"final test error {report['final_test_error']:.2%}; wrote {out}")


if __name__ == "__main__":
    main()
