"""CIFAR ResNet-20..1202 weights from the two widely used public ports whose layout resnetlab matches.

akamaster/pytorch_resnet_cifar10 (BSD-2-Clause): He et al.'s CIFAR nets with option-A shortcuts
(subsample by 2, zero channels padded planes//4 on each side), as resnetlab builds them by default.
Test accuracy = 100 - the README's error of "this implementation". Trained with ImageNet's mean/std
(`trainer.py`), saved as {"state_dict": DataParallel state dict, "best_prec1": ...}: the "module."
prefix is dropped on reading and the classifier `linear` is renamed `fc`.

chenyaofo/pytorch-cifar-models (BSD-3-Clause): the same depths with option-B (projection) shortcuts,
for CIFAR-10 and CIFAR-100; accuracy from its README, mean/std from its training logs. Layer names
equal resnetlab's (downsample.0/1, fc).

Both evaluate on 32x32 images as they are (crop_pct 1.0). The hash in each file name is checked as a
SHA-256 prefix (torch.hub's convention, which both publishers' names follow).
"""

from __future__ import annotations

from ..data.stats import IMAGENET_MEAN, IMAGENET_STD
from ..models.resnet import ResNet
from .entry import WeightsEntry, register_weights

AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
CHENYAOFO = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # chenyaofo's logs/cifar10 config
CIFAR100_STATS = ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))  # chenyaofo's logs/cifar100 config


def _akamaster(depth: int, filename: str, error: float, params: int) -> WeightsEntry:
    return WeightsEntry(
        arch=f"resnet{depth}", name="CIFAR10_AKAMASTER", source="akamaster", url=AKAMASTER + filename,
        filename=filename, hash_prefix=filename.rsplit("-", 1)[1].split(".")[0], license="BSD-2-Clause",
        classes="cifar10", num_params=params, metrics={"acc@1": round(100 - error, 2)},
        metrics_source="akamaster/pytorch_resnet_cifar10 README (test error of this implementation)",
        input_size=(3, 32, 32), crop_pct=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        rename=(("linear.", ResNet.classifier_name + "."),),
        recipe="https://github.com/akamaster/pytorch_resnet_cifar10/blob/master/trainer.py", default=True)


def _chenyaofo(dataset: str, depth: int, digest: str, acc1: float, acc5: float, params: int) -> WeightsEntry:
    filename = f"{dataset}_resnet{depth}-{digest}.pt"
    mean, std = CIFAR10_STATS if dataset == "cifar10" else CIFAR100_STATS
    return WeightsEntry(
        arch=f"resnet{depth}", name=f"{dataset.upper()}_CHENYAOFO", source="chenyaofo", url=CHENYAOFO + filename,
        filename=filename, hash_prefix=digest, license="BSD-3-Clause", classes=dataset, num_params=params,
        metrics={"acc@1": acc1, "acc@5": acc5}, metrics_source="chenyaofo/pytorch-cifar-models README",
        input_size=(3, 32, 32), crop_pct=1.0, mean=mean, std=std, options={"shortcut": "B"},
        recipe="https://github.com/chenyaofo/pytorch-cifar-models")


register_weights(
    _akamaster(20, "resnet20-12fca82f.th", 8.27, 269_722),
    _akamaster(32, "resnet32-d509ac18.th", 7.37, 464_154),
    _akamaster(44, "resnet44-014dd654.th", 6.90, 658_586),
    _akamaster(56, "resnet56-4bfd9763.th", 6.61, 853_018),
    _akamaster(110, "resnet110-1d1ed7c2.th", 6.32, 1_727_962),
    _akamaster(1202, "resnet1202-f3b1deed.th", 6.18, 19_421_274),
    _chenyaofo("cifar10", 20, "4118986f", 92.60, 99.81, 272_474),
    _chenyaofo("cifar10", 32, "ef93fc4d", 93.53, 99.77, 466_906),
    _chenyaofo("cifar10", 44, "2a3cabcb", 94.01, 99.77, 661_338),
    _chenyaofo("cifar10", 56, "187c023a", 94.37, 99.83, 855_770),
    _chenyaofo("cifar100", 20, "23dac2f1", 68.83, 91.01, 278_324),
    _chenyaofo("cifar100", 32, "84213ce6", 70.16, 90.89, 472_756),
    _chenyaofo("cifar100", 44, "ffe32858", 71.63, 91.58, 667_188),
    _chenyaofo("cifar100", 56, "f2eff4c8", 72.63, 91.94, 861_620),
)
