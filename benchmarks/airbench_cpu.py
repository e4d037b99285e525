"""airbench94 (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024, arXiv:2404.00498) on
this machine: the anchor that resnetlab's fast-cifar recipe is measured against.

    python benchmarks/airbench_cpu.py [--data-dir ../shared/data/cifar10] [--seed 0] [--eval-every 1]

Written here from the paper and the hyperparameters the PyPI package `airbench` publishes (its `hyp` dict),
in plain PyTorch with no resnetlab import, so that the comparison does not lean on resnetlab's own pieces.
The only changes are the port to a CPU: bfloat16 autocast where the CPU has fast bf16 (else fp32) instead of
fp16 weights, no torch.compile, and the data read from the official binary files. On CUDA it runs in fp16
autocast. Prints a line per evaluation and writes JSON; `run` is also called by cifar10_time_to_accuracy.py.

The clock counts what airbench's counts: the whitening initialisation and the training steps. Test-set
evaluations (with the 6-view TTA at airbench's tta_level 2) are reported but not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import SHARED_DATA, write_report

# airbench94's published hyperparameters (airbench/airbench94.py, `hyp`), with their units
HYP = {
    "opt": {
        "train_epochs": 9.9,
        "batch_size": 1024,
        "lr": 11.5,               # per 1024 examples, for the momentum's steady-state step (see `train`)
        "momentum": 0.85,
        "weight_decay": 0.0153,   # per 1024 examples, decoupled from the lr
        "bias_scaler": 64.0,      # lr multiplier (not weight decay) for the BatchNorm biases
        "label_smoothing": 0.2,
        "whiten_bias_epochs": 3,  # epochs the whitening layer's bias trains before it is frozen
    },
    "aug": {"flip": True, "translate": 2},  # alternating flips, 2-pixel reflect-padded translations
    "net": {
        "widths": {"block1": 64, "block2": 256, "block3": 256},
        "batchnorm_momentum": 0.6,  # airbench's convention: the weight of the old statistics (torch's 0.4)
        "scaling_factor": 1 / 9,
        "tta_level": 2,             # 0: none, 1: mirror, 2: mirror + 1-pixel translations (6 views)
    },
}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# --- data: the official binary files, held as one normalized tensor (airbench's CifarLoader) -------------


def read_cifar10(data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 3, 32, 32] and int64 labels from the official binary files (1 label byte, 3072 pixels)."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(data_dir / name, dtype=np.uint8).reshape(-1, 3073) for name in names])
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


def batch_flip_lr(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    mask = (torch.rand(len(images), generator=generator) < 0.5).view(-1, 1, 1, 1)
    return torch.where(mask, images.flip(-1), images)


def batch_crop(padded: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random size x size window of each padded image: translations of up to the padding either way."""
    r = (padded.shape[-1] - size) // 2
    shifts = torch.randint(0, 2 * r + 1, (len(padded), 2), generator=generator)
    out = torch.empty(len(padded), padded.shape[1], size, size, dtype=padded.dtype)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            chosen = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().flatten()
            out[chosen] = padded[chosen, :, dy:dy + size, dx:dx + size]
    return out


class CifarLoader:
    """airbench's loader: normalize once, pre-flip at random, pre-pad (reflect); each epoch a fresh random
    translation, and every other epoch all images mirrored together (its alternating-flip scheme)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, train: bool, seed: int):
        mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        self.images = (images.float() / 255 - mean) / std
        self.labels, self.batch_size, self.train, self.epoch = labels, batch_size, train, 0
        self.generator = torch.Generator().manual_seed(seed)
        if train:
            flipped = batch_flip_lr(self.images, self.generator)
            pad = HYP["aug"]["translate"]
            self.padded = F.pad(flipped, (pad,) * 4, mode="reflect")

    def __len__(self) -> int:  # airbench drops the last partial batch in training
        return len(self.images) // self.batch_size if self.train else math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        images = self.images
        if self.train:
            images = batch_crop(self.padded, self.images.shape[-1], self.generator)
            if self.epoch % 2 == 1:
                images = images.flip(-1)
            self.epoch += 1
        order = torch.randperm(len(images), generator=self.generator) if self.train else torch.arange(len(images))
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield images[index].contiguous(memory_format=torch.channels_last), self.labels[index]


# --- the network (airbench94's make_net) -------------------------------------------------------------------


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features: int, momentum: float, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False  # scale fixed at 1, bias learned


class Conv(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: str | int = "same",
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size=kernel_size, padding=padding, bias=bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None:
            self.bias.data.zero_()
        w = self.weight.data
        torch.nn.init.dirac_(w[:w.size(1)])  # airbench: the first in_channels filters start as identities


class ConvGroup(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, momentum: float):
        super().__init__()
        self.conv1, self.pool = Conv(channels_in, channels_out), nn.MaxPool2d(2)
        self.norm1, self.conv2 = BatchNorm(channels_out, momentum), Conv(channels_out, channels_out)
        self.norm2, self.activ = BatchNorm(channels_out, momentum), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class Mul(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def make_net() -> nn.Sequential:
    widths, momentum = HYP["net"]["widths"], HYP["net"]["batchnorm_momentum"]
    whiten_width = 2 * 3 * 2 ** 2
    net = nn.Sequential(
        Conv(3, whiten_width, 2, padding=0, bias=True), nn.GELU(),
        ConvGroup(whiten_width, widths["block1"], momentum), ConvGroup(widths["block1"], widths["block2"], momentum),
        ConvGroup(widths["block2"], widths["block3"], momentum),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(widths["block3"], 10, bias=False), Mul(HYP["net"]["scaling_factor"]))
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


@torch.no_grad()
def init_whitening_conv(layer: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """The 2x2 patches' covariance eigenvectors over sqrt(eigenvalue + eps), and their negatives."""
    c, (h, w) = images.shape[1], layer.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    flat = patches.view(len(patches), -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    eigenvalues = eigenvalues.flip(0).view(-1, 1, 1, 1)
    eigenvectors = eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


class LookaheadState:
    def __init__(self, net: nn.Module):
        self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float) -> None:
        for ema_param, net_param in zip(self.net_ema.values(), net.state_dict().values()):
            if net_param.is_floating_point():
                ema_param.lerp_(net_param, 1 - decay)
                net_param.copy_(ema_param)


# --- evaluation ---------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(net: nn.Module, loader: CifarLoader, autocast, tta_level: int) -> float:
    def mirror(x):
        return 0.5 * net(x) + 0.5 * net(x.flip(-1))

    def mirror_translate(x):
        padded = F.pad(x, (1,) * 4, mode="reflect")
        shifted = [mirror(padded[:, :, 0:32, 0:32]), mirror(padded[:, :, 2:34, 2:34])]
        return 0.5 * mirror(x) + 0.5 * torch.stack(shifted).mean(0)

    infer = [net, mirror, mirror_translate][tta_level]
    net.eval()
    correct = 0
    with autocast():
        for images, labels in loader:
            correct += (infer(images).argmax(1) == labels).sum().item()
    net.train()
    return correct / len(loader.images)


# --- training (airbench94's main, one run) ---------------------------------------------------------------


def precision_context(device: torch.device) -> Callable:
    """fp16 autocast on CUDA (airbench runs fp16); bf16 autocast on a CPU with native bf16 (AVX-512 BF16 or AMX,
    which oneDNN's bf16 kernels need: elsewhere bf16 is emulated and slower); otherwise fp32."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.float16)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    native = [getattr(torch.cpu, name, lambda: False)() for name in probes]
    if any(native):
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def run(data_dir: Path, seed: int = 0, eval_every: int = 1, log: Callable[[dict], None] | None = None,
        device: str = "cpu") -> dict:
    """Train airbench94 once; return the final TTA accuracy, the clock and the per-epoch test accuracies."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    autocast = precision_context(dev)
    opt = HYP["opt"]
    batch_size, epochs, momentum = opt["batch_size"], opt["train_epochs"], opt["momentum"]
    # airbench: with gradients constant in time, Nesterov SGD's steps are (1 + 1/(1 - momentum)) gradients
    # long; dividing the lr by that keeps the step size apart from the momentum. The loss is summed over the batch
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = opt["lr"] / kilostep_scale
    wd = opt["weight_decay"] * batch_size / kilostep_scale
    lr_biases = lr * opt["bias_scaler"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=opt["label_smoothing"], reduction="none")

    train_images, train_labels = read_cifar10(data_dir, train=True)
    test_images, test_labels = read_cifar10(data_dir, train=False)
    train_loader = CifarLoader(train_images, train_labels, batch_size, train=True, seed=seed)
    test_loader = CifarLoader(test_images, test_labels, 2000, train=False, seed=seed)
    total_train_steps = math.ceil(len(train_loader) * epochs)

    model = make_net().to(dev)
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    other_params = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                 dict(params=other_params, lr=lr, weight_decay=wd / lr)],
                                momentum=momentum, nesterov=True)

    def get_lr(step: int) -> float:  # a triangle: 0.2 -> 1 at 23% of the steps -> 0.07
        warmup_steps = int(total_train_steps * 0.23)
        if step < warmup_steps:
            frac = step / warmup_steps
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup_steps) / (total_train_steps - warmup_steps)
        return 1.0 * (1 - frac) + 0.07 * frac

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, get_lr)
    alpha_schedule = 0.95 ** 5 * (torch.arange(total_train_steps + 1) / total_train_steps) ** 3
    lookahead = LookaheadState(model)
    clock = 0.0
    evaluations, evaluation_seconds = [], 0.0

    began = time.perf_counter()
    init_whitening_conv(model[0], train_loader.images[:5000].to(dev))
    clock += time.perf_counter() - began
    steps = 0
    for epoch in range(math.ceil(epochs)):
        model[0].bias.requires_grad = epoch < opt["whiten_bias_epochs"]
        began = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
            with autocast():
                outputs = model(images)
            loss = loss_fn(outputs.float(), labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            if steps % 5 == 0:
                lookahead.update(model, decay=alpha_schedule[steps].item())
            if steps >= total_train_steps:
                lookahead.update(model, decay=1.0)
                break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        clock += time.perf_counter() - began
        last = epoch == math.ceil(epochs) - 1
        if last or (eval_every and (epoch + 1) % eval_every == 0):
            began = time.perf_counter()
            accuracy = evaluate(model, test_loader, autocast, HYP["net"]["tta_level"])
            spent = time.perf_counter() - began
            evaluation_seconds += spent
            row = {"epoch": epoch + 1, "seconds": round(clock, 1), "test_accuracy": accuracy,
                   "eval_seconds": round(spent, 1)}
            evaluations.append(row)
            if log is not None:
                log(row)
    final = evaluations[-1]["test_accuracy"]
    plain = evaluate(model, test_loader, autocast, 0)
    return {"final_test_accuracy": final, "final_test_accuracy_no_tta": plain, "train_seconds": round(clock, 1),
            "evaluation_seconds": round(evaluation_seconds, 1), "steps": steps, "epochs": evaluations,
            "seed": seed, "hyp": HYP}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate every this many epochs (0: at the end)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="benchmarks/results/airbench_cpu.json")
    args = parser.parse_args()

    def show(row: dict) -> None:
        print(f"epoch {row['epoch']:>3}  {row['seconds'] / 60:6.2f} min  test accuracy (tta) "
              f"{row['test_accuracy']:.2%}", flush=True)

    result = run(Path(args.data_dir), args.seed, args.eval_every, show, args.device)
    print(f"\nairbench94: {result['final_test_accuracy']:.2%} with TTA ({result['final_test_accuracy_no_tta']:.2%} "
          f"without) after {result['train_seconds'] / 60:.1f} min of training")
    write_report({"benchmark": "airbench_cpu", **result}, args.out)


if __name__ == "__main__":
    main()
