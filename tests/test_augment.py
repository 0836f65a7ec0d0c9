"""The batched augmentations must equal torchvision's per-image transforms given the same parameters, and
their parameters must follow torchvision's distributions, independently per image."""

import itertools
import math

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

from common.data.augment import ContrastiveAugment, SupervisedAugment, two_views

SIZE = 32
N_DIST = 20_000  # draws for distribution tests
SE = 5  # tolerance in standard errors


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=64, seed=0):
    """Random uint8 images; half are quantised to {0, 128, 255} to hit ties and flat regions (hue edge cases)."""
    x = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=gen(seed), dtype=torch.uint8)
    coarse = torch.randint(0, 3, (n // 2, 3, SIZE, SIZE), generator=gen(seed + 1)) * 127.5
    x[: n // 2] = coarse.round().to(torch.uint8)
    return x


def rate_ok(coins, p):
    return abs(coins.float().mean().item() - p) <= SE * math.sqrt(p * (1 - p) / coins.numel()) + 1e-9


# ---- equality with torchvision, image by image -------------------------------------------------------------


def reference_supervised(aug, img, p, i):
    out = TF.pad(img, [aug.padding])
    out = TF.crop(out, int(p["top"][i]), int(p["left"][i]), SIZE, SIZE)
    if p["vflip"][i]:
        out = TF.vertical_flip(out)
    if p["hflip"][i]:
        out = TF.horizontal_flip(out)
    return TF.to_dtype(out, torch.float32, scale=True)


def reference_contrastive(aug, img, p, i):
    out = TF.to_dtype(img, torch.float32, scale=True)
    box = [int(p[k][i]) for k in ("top", "left", "height", "width")]
    out = TF.resized_crop(out, *box, [SIZE, SIZE], antialias=True)
    if p["hflip"][i]:
        out = TF.horizontal_flip(out)
    if p["jitter"][i]:
        ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for op in p["order"][i].tolist():
            out = ops[op](out, float(p["factors"][i, op]))
    if p["gray"][i]:
        out = TF.rgb_to_grayscale(out, num_output_channels=3)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_supervised_matches_torchvision(seed):
    aug, x = SupervisedAugment(), images(seed=seed)
    p = aug.sample(len(x), SIZE, gen(seed))
    out = aug.apply(x, p)
    assert out.dtype == torch.float32 and out.shape == x.shape
    for i in range(len(x)):
        torch.testing.assert_close(out[i], reference_supervised(aug, x[i], p, i), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrastive_matches_torchvision(seed):
    aug, x = ContrastiveAugment(), images(seed=seed)
    p = aug.sample(len(x), SIZE, gen(seed))
    out = aug.apply(x, p)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    for i in range(len(x)):
        torch.testing.assert_close(out[i], reference_contrastive(aug, x[i], p, i), atol=1e-5, rtol=0)


def test_contrastive_strong_jitter_matches_torchvision():
    """Every image jittered with large factors (hue up to +-0.5) and extreme boxes, to stress hue wrap-around."""
    aug = ContrastiveAugment(scale=(0.01, 1.0), brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5, jitter_p=1.0)
    x = images(seed=3)
    p = aug.sample(len(x), SIZE, gen(3))
    out = aug.apply(x, p)
    for i in range(len(x)):
        torch.testing.assert_close(out[i], reference_contrastive(aug, x[i], p, i), atol=1e-5, rtol=0)


def test_apply_is_deterministic_and_two_views_resample():
    aug, x = ContrastiveAugment(), images()
    p = aug.sample(len(x), SIZE, gen())
    assert torch.equal(aug.apply(x, p), aug.apply(x, p))
    v1, v2 = two_views(aug, x, gen(5))
    g = gen(5)
    assert torch.equal(v1, aug.apply(x, aug.sample(len(x), SIZE, g)))
    assert torch.equal(v2, aug.apply(x, aug.sample(len(x), SIZE, g)))
    assert not torch.equal(v1, v2)


def test_identity_when_everything_disabled():
    x = images()
    sup = SupervisedAugment(padding=0, vertical_flip=0, horizontal_flip=0)
    assert torch.equal(sup.apply(x, sup.sample(len(x), SIZE, gen())), x.float() / 255)
    # scale > 1 never fits, so every box is the fallback: the full (square) image.
    con = ContrastiveAugment(scale=(1.5, 2.0), horizontal_flip=0, jitter_p=0, grayscale_p=0)
    torch.testing.assert_close(con.apply(x, con.sample(len(x), SIZE, gen())), x.float() / 255, atol=1e-6, rtol=0)


# ---- parameter distributions ---------------------------------------------------------------------------------


def test_supervised_params():
    aug = SupervisedAugment()
    p = aug.sample(N_DIST, SIZE, gen())
    for k in ("top", "left"):
        assert p[k].min() == 0 and p[k].max() == 2 * aug.padding  # whole inclusive range is reached
        assert p[k].bincount().min() > N_DIST / (2 * aug.padding + 1) * 0.8
    assert rate_ok(p["vflip"], 0.5) and rate_ok(p["hflip"], 0.5)


def test_resized_crop_boxes():
    aug = ContrastiveAugment()
    p = aug.sample(N_DIST, SIZE, gen())
    top, left, h, w = (p[k].double() for k in ("top", "left", "height", "width"))
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= SIZE).all() and (left + w <= SIZE).all()
    # The unrounded box (w, h each +-0.5) must have had an area fraction within scale and aspect within ratio.
    lo_area, hi_area = (w - 0.5) * (h - 0.5) / SIZE**2, (w + 0.5) * (h + 0.5) / SIZE**2
    assert (hi_area >= aug.scale[0]).all() and (lo_area <= aug.scale[1]).all()
    lo_aspect, hi_aspect = (w - 0.5) / (h + 0.5), (w + 0.5) / (h - 0.5)
    assert (hi_aspect >= aug.ratio[0]).all() and (lo_aspect <= aug.ratio[1]).all()
    # Offsets are uniform over the valid range: the mean relative position is 1/2.
    for pos, extent in ((top, h), (left, w)):
        rel = pos / (SIZE - extent).clamp(min=1)
        assert abs(rel[extent < SIZE].mean().item() - 0.5) < 0.02


def test_resized_crop_box_distribution_matches_torchvision():
    aug, n = ContrastiveAugment(), 4000
    torch.manual_seed(0)
    dummy = torch.zeros(3, SIZE, SIZE)
    ref = torch.tensor([T.RandomResizedCrop.get_params(dummy, list(aug.scale), list(aug.ratio)) for _ in range(n)])
    p = aug.sample(n, SIZE, gen())
    ours = torch.stack([p[k] for k in ("top", "left", "height", "width")], 1)
    for col in range(4):
        a, b = ours[:, col].double(), ref[:, col].double()
        se = math.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < SE * se


def test_resized_crop_fallback():
    """Nothing fits when scale > 1: torchvision's central crop, with the ratio clamped for a square image."""
    p = ContrastiveAugment(scale=(1.5, 2.0), ratio=(2.0, 3.0)).sample(100, SIZE, gen())
    assert (p["height"] == 16).all() and (p["width"] == 32).all()
    assert (p["top"] == 8).all() and (p["left"] == 0).all()


def test_contrastive_coins_and_factors():
    aug = ContrastiveAugment()
    p = aug.sample(N_DIST, SIZE, gen())
    assert rate_ok(p["hflip"], 0.5) and rate_ok(p["jitter"], 0.8) and rate_ok(p["gray"], 0.2)
    f = p["factors"]
    for col, strength in enumerate((aug.brightness, aug.contrast, aug.saturation)):
        assert f[:, col].min() >= 1 - strength and f[:, col].max() <= 1 + strength
        assert abs(f[:, col].mean().item() - 1) < 0.01
    assert f[:, 3].min() >= -aug.hue and f[:, 3].max() <= aug.hue
    assert abs(f[:, 3].mean().item()) < 0.01
    orders = {tuple(o) for o in p["order"].tolist()}
    assert orders == set(itertools.permutations(range(4)))  # all 24 orders occur, and only permutations


def test_zero_probability_disables():
    p = SupervisedAugment(vertical_flip=0, horizontal_flip=0).sample(N_DIST, SIZE, gen())
    assert not p["vflip"].any() and not p["hflip"].any()
    p = ContrastiveAugment(horizontal_flip=0, jitter_p=0, grayscale_p=0).sample(N_DIST, SIZE, gen())
    assert not p["hflip"].any() and not p["jitter"].any() and not p["gray"].any()
    p = SupervisedAugment(vertical_flip=1, horizontal_flip=1).sample(100, SIZE, gen())
    assert p["vflip"].all() and p["hflip"].all()


# ---- reproducibility and independence --------------------------------------------------------------------------


@pytest.mark.parametrize("aug", [SupervisedAugment(), ContrastiveAugment()], ids=["supervised", "contrastive"])
def test_seeded_reproducible_per_image_and_global_rng_untouched(aug):
    state = torch.get_rng_state()
    a, b = aug.sample(256, SIZE, gen(7)), aug.sample(256, SIZE, gen(7))
    assert torch.equal(torch.get_rng_state(), state)  # only the generator passed in is consumed
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = aug.sample(256, SIZE, gen(8))
    assert any(not torch.equal(a[k], c[k]) for k in a)
    for v in a.values():
        assert v.device.type == "cpu" and v.shape[0] == 256
    # Images in one batch get their own params.
    boxes = torch.stack([a["top"], a["left"]] + ([a["height"], a["width"]] if "height" in a else []), 1)
    assert len(boxes.unique(dim=0)) > 32
    if "factors" in a:
        assert len(a["factors"].unique(dim=0)) == 256 and len(a["order"].unique(dim=0)) > 16


def test_generator_state_resumes():
    """Checkpointing the generator state reproduces the continuation of the stream."""
    aug, g = ContrastiveAugment(), gen(3)
    aug.sample(10, SIZE, g)
    state = g.get_state()
    a = aug.sample(10, SIZE, g)
    g2 = torch.Generator()
    g2.set_state(state)
    b = aug.sample(10, SIZE, g2)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("aug", [SupervisedAugment(), ContrastiveAugment()], ids=["supervised", "contrastive"])
def test_cuda_matches_cpu(aug):
    x = images()
    p = aug.sample(len(x), SIZE, gen())
    out = aug.apply(x.cuda(), p)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), aug.apply(x, p), atol=1e-5, rtol=0)
