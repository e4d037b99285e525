from __future__ import annotations

import pytest
import torch

from resnetlab.data.mix import BatchAugment, cutmix, cutout, mixup, random_erasing


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_cutout_zeroes_one_square_per_image():
    out = cutout(torch.ones(64, 3, 32, 32), 8, _gen())
    zeroed = (out == 0).all(dim=1)  # [B, H, W]
    areas = zeroed.flatten(1).sum(1)
    assert areas.max() == 64 and (areas >= 16).all()  # a full 8x8 square, or clipped at a border
    for mask in zeroed:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle


def test_random_erasing_probability_and_area():
    out = random_erasing(torch.ones(2000, 1, 20, 20), 0.5, _gen())
    erased = (out == 0).flatten(1).sum(1)
    assert 0.45 < (erased > 0).float().mean() < 0.55
    share = erased[erased > 0].float() / 400
    assert share.min() >= 0.01 and share.max() <= 0.45


def test_mixup_blends_images_and_targets_alike():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    targets = torch.eye(4)
    mixed, soft = mixup(images, targets, 0.4, _gen())
    lam = soft[0, 0].item()
    assert soft.sum(1).allclose(torch.ones(4))
    assert torch.allclose(mixed[0], lam * images[0] + (1 - lam) * images[3])


def test_cutmix_target_weights_equal_pasted_area():
    images = torch.cat([torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16)])
    mixed, soft = cutmix(images, torch.eye(2), 1.0, _gen(3))
    pasted = mixed[0].mean().item()  # image 0 is zeros: its ones came from image 1
    assert soft[0, 1].item() == pytest.approx(pasted)
    assert soft[0].sum().item() == pytest.approx(1.0)


def test_batch_augment_switches_and_keeps_hard_labels_when_not_mixing():
    labels = torch.tensor([0, 1, 2, 1])
    images = torch.randn(4, 3, 8, 8)
    plain = BatchAugment(cutout=4, num_classes=3)
    out, same = plain(images, labels, _gen())
    assert torch.equal(same, labels) and (out == 0).any()
    mixing = BatchAugment(mixup_alpha=0.2, cutmix_alpha=1.0, num_classes=3)
    _, soft = mixing(images, labels, _gen())
    assert soft.shape == (4, 3) and torch.allclose(soft.sum(1), torch.ones(4))
    never = BatchAugment(mixup_alpha=0.2, mix_prob=0.0, num_classes=3)
    assert torch.equal(never(images, labels, _gen())[1], labels)
    assert not BatchAugment().active
