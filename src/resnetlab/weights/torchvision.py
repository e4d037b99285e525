"""torchvision's ImageNet-1k weights for its ResNet, ResNeXt and Wide ResNet models.

Facts from pytorch/vision `torchvision/models/resnet.py` (the `*_Weights` enums): URL, parameter count,
acc@1/acc@5 on the ImageNet-1k validation set at 224 px, GFLOPs, file size, and the evaluation
transform. V1 weights evaluate at resize 256 -> center crop 224; V2 weights (the 2021 "new training
recipe") at resize 232 -> 224, both bilinear with ImageNet's mean/std. DEFAULT is torchvision's default:
V2 where it exists. The file names carry the first 8 hex digits of the file's SHA-256 (torch.hub's
`check_hash`). resnetlab's layer names equal torchvision's, so the files load as they are.
"""

from __future__ import annotations

from .entry import WeightsEntry, register_weights

BASE = "https://download.pytorch.org/models/"
DOCS = "torchvision.models docs / torchvision/models/resnet.py"
REFERENCES = "https://github.com/pytorch/vision/tree/main/references/classification"
NEW_RECIPE = "https://github.com/pytorch/vision/issues/3995"
RECIPES = {  # (arch, name) -> the recipe link torchvision's metadata gives
    ("resnet50", "IMAGENET1K_V2"): NEW_RECIPE + "#issuecomment-1013906621",
    ("resnext101_32x8d", "IMAGENET1K_V2"): NEW_RECIPE + "#new-recipe-with-fixres",
    ("wide_resnet50_2", "IMAGENET1K_V2"): NEW_RECIPE + "#new-recipe-with-fixres",
    ("resnext101_64x4d", "IMAGENET1K_V1"): "https://github.com/pytorch/vision/pull/5935",
    ("wide_resnet50_2", "IMAGENET1K_V1"): "https://github.com/pytorch/vision/pull/912#issue-445437439",
    ("wide_resnet101_2", "IMAGENET1K_V1"): "https://github.com/pytorch/vision/pull/912#issue-445437439",
}
LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k"
GFLOPS: dict[str, float] = {}  # arch -> torchvision's _ops, for the table test and `resnetlab weights --json`


def _tv(arch: str, name: str, filename: str, params: int, acc1: float, acc5: float, gflops: float, size_mb: float,
        *, resize: int, default: bool) -> WeightsEntry:
    GFLOPS[arch] = gflops
    return WeightsEntry(
        arch=arch, name=name, source="torchvision", url=BASE + filename, filename=filename,
        hash_prefix=filename.rsplit("-", 1)[1].split(".")[0], license=LICENSE, classes="imagenet",
        num_params=params, metrics={"acc@1": acc1, "acc@5": acc5}, metrics_source=DOCS, file_size_mb=size_mb,
        input_size=(3, 224, 224), crop_pct=224 / resize, interpolation="bilinear",
        recipe=RECIPES.get((arch, name), NEW_RECIPE + "#new-recipe" if name.endswith("V2") else
                           REFERENCES + ("#resnext" if arch.startswith("resnext") else "#resnet")), default=default)


register_weights(
    _tv("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 11_689_512, 69.758, 89.078, 1.814, 44.661,
        resize=256, default=True),
    _tv("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 21_797_672, 73.314, 91.420, 3.664, 83.275,
        resize=256, default=True),
    _tv("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 25_557_032, 76.130, 92.862, 4.089, 97.781,
        resize=256, default=False),
    _tv("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 25_557_032, 80.858, 95.434, 4.089, 97.79,
        resize=232, default=True),
    _tv("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 44_549_160, 77.374, 93.546, 7.801, 170.511,
        resize=256, default=False),
    _tv("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 44_549_160, 81.886, 95.780, 7.801, 170.53,
        resize=232, default=True),
    _tv("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 60_192_808, 78.312, 94.046, 11.514, 230.434,
        resize=256, default=False),
    _tv("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 60_192_808, 82.284, 96.002, 11.514, 230.474,
        resize=232, default=True),
    _tv("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 25_028_904, 77.618, 93.698, 4.23,
        95.789, resize=256, default=False),
    _tv("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 25_028_904, 81.198, 95.340, 4.23,
        95.833, resize=232, default=True),
    _tv("resnext101_32x8d", "IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 88_791_336, 79.312, 94.526, 16.414,
        339.586, resize=256, default=False),
    _tv("resnext101_32x8d", "IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 88_791_336, 82.834, 96.228, 16.414,
        339.673, resize=232, default=True),
    _tv("resnext101_64x4d", "IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 83_455_272, 83.246, 96.454, 15.46,
        319.318, resize=232, default=True),
    _tv("wide_resnet50_2", "IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 68_883_240, 78.468, 94.086, 11.398,
        131.82, resize=256, default=False),
    _tv("wide_resnet50_2", "IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 68_883_240, 81.602, 95.758, 11.398,
        263.124, resize=232, default=True),
    _tv("wide_resnet101_2", "IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 126_886_696, 78.848, 94.284, 22.753,
        242.896, resize=256, default=False),
    _tv("wide_resnet101_2", "IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 126_886_696, 82.510, 96.020, 22.753,
        484.747, resize=232, default=True),
)
