"""timm's ResNet weights on the Hugging Face Hub, for the architectures resnetlab builds.

Facts from huggingface/pytorch-image-models `timm/models/resnet.py` (the `default_cfgs`): each tag's Hub
repository `timm/ARCH.TAG`, and its evaluation preprocessing, which is timm's *test* size where it has one
(the a1/a1h "ResNet strikes back" weights train at 224 and are evaluated at 288, crop_pct 1.0, bicubic).
Accuracy: timm's `results/results-imagenet.csv` (ImageNet-1k validation, at that test size). timm's
layer names for these models equal torchvision's (conv1, bn1, layer1..4, fc), so the files load as they
are. The Hub is reached through huggingface_hub (`pip install 'resnetlab[hub]'`); `hf-hub:ORG/NAME` reads
any other timm-format ResNet repository the same way, from its config.json.
"""

from __future__ import annotations

from .entry import WeightsEntry, register_weights

PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
          "resnet152": 60_192_808, "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
          "resnext101_64x4d": 83_455_272, "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696}
RESULTS = "timm results/results-imagenet.csv (top-1/top-5 at the test input size)"
RSB = "arXiv:2110.00476 (ResNet strikes back)"


def _timm(tag: str, acc1: float, acc5: float, *, size: int, crop_pct: float, interpolation: str,
          license: str = "apache-2.0 (timm)", recipe: str = "") -> WeightsEntry:
    arch = tag.split(".")[0]
    return WeightsEntry(
        arch=arch, name=f"timm:{tag}", source="timm", url=f"https://huggingface.co/timm/{tag}",
        hf_hub_id=f"timm/{tag}", license=license, classes="imagenet", num_params=PARAMS[arch],
        metrics={"acc@1": acc1, "acc@5": acc5}, metrics_source=RESULTS, input_size=(3, size, size),
        crop_pct=crop_pct, interpolation=interpolation, recipe=recipe)


def _rsb(tag: str, acc1: float, acc5: float, size: int = 288) -> WeightsEntry:
    return _timm(tag, acc1, acc5, size=size, crop_pct=1.0, interpolation="bicubic", recipe=RSB)


def _tv2(tag: str, acc1: float, acc5: float) -> WeightsEntry:  # torchvision's V2 weights, as timm serves them
    return _timm(tag, acc1, acc5, size=224, crop_pct=0.965, interpolation="bilinear", license="bsd-3-clause")


register_weights(
    _rsb("resnet18.a1_in1k", 73.158, 91.026),
    _timm("resnet18.tv_in1k", 69.760, 89.070, size=224, crop_pct=0.875, interpolation="bilinear",
          license="bsd-3-clause"),
    _rsb("resnet34.a1_in1k", 77.918, 93.766),
    _rsb("resnet50.a1_in1k", 81.214, 95.102),
    _rsb("resnet50.a1h_in1k", 80.676, 95.306, size=224),
    _timm("resnet50.tv_in1k", 76.130, 92.858, size=224, crop_pct=0.875, interpolation="bilinear",
          license="bsd-3-clause"),
    _tv2("resnet50.tv2_in1k", 80.850, 95.434),
    _rsb("resnet101.a1h_in1k", 82.778, 96.310),
    _tv2("resnet101.tv2_in1k", 81.890, 95.768),
    _rsb("resnet152.a1h_in1k", 83.450, 96.538),
    _tv2("resnet152.tv2_in1k", 82.288, 96.004),
    _rsb("resnext50_32x4d.a1h_in1k", 82.014, 95.934),
    _tv2("resnext50_32x4d.tv2_in1k", 81.182, 95.340),
    _tv2("resnext101_32x8d.tv2_in1k", 82.832, 96.232),
    _timm("resnext101_64x4d.tv_in1k", 82.992, 96.244, size=224, crop_pct=0.875, interpolation="bilinear",
          license="bsd-3-clause"),
    _timm("wide_resnet50_2.racm_in1k", 82.280, 96.064, size=288, crop_pct=0.95, interpolation="bicubic"),
    _tv2("wide_resnet50_2.tv2_in1k", 81.606, 95.762),
    _tv2("wide_resnet101_2.tv2_in1k", 82.498, 96.018),
)
