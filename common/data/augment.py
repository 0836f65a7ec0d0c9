"""Batched, on-device data augmentation with independent random parameters for every image.

Why this exists: torchvision transforms work one image at a time on the CPU, which starves a GPU on
CIFAR-sized images. Here each transform runs on a whole uint8 batch [N, C, H, W] on whatever device the
batch lives on, while the *parameters* are drawn per image with the same distributions the matching
torchvision transforms use (independently per image, including ColorJitter's per-call op order).

Each augmentation is split in two:
- `sample(n, size, generator)` draws every random number on the CPU from the given `torch.Generator`, in a
  fixed order documented on each method, and returns small CPU tensors with leading dim n. The stream is
  therefore identical whatever device trains, the generator state can be checkpointed, and the global RNG is
  never touched. Everything is always drawn (even when a probability or strength is 0), so the stream layout
  does not depend on the configuration.
- `apply(images, params)` is deterministic: uint8 [N, C, H, W] -> float32 in [0, 1] of the same shape.
  Normalisation is left to the caller.

Fidelity note: the authors fed PIL images, so their pipeline rounds to uint8 between colour ops. We follow
torchvision's *tensor* semantics (`torchvision.transforms.v2.functional` on float images, including its
0.2989/0.587/0.114 grayscale weights), so results differ from theirs by that tiny quantisation only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

ATTEMPTS = 10  # RandomResizedCrop.get_params tries this many boxes before falling back to a central crop
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # op ids, as in torchvision's ColorJitter


def _coin(n: int, p: float, generator: torch.Generator) -> Tensor:
    """Per-image Bernoulli(p), drawn like torchvision's `torch.rand(1) < p` (so p=0 never, p=1 always fires)."""
    return torch.rand(n, generator=generator) < p


def _to_float(images: Tensor) -> Tensor:
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float().div_(255)


def _take(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Per-image pixel grid x[n, :, rows[n, i], cols[n, j]] -> contiguous [N, C, len(rows), len(cols)], one gather."""
    n, c, _, w = x.shape
    idx = (rows[:, :, None] * w + cols[:, None, :]).flatten(1)
    return x.flatten(2).gather(2, idx[:, None, :].expand(n, c, -1)).view(n, c, rows.shape[1], cols.shape[1])


def _window(start: Tensor, length: int, flip: Tensor) -> Tensor:
    """Source indices [N, length] of a window starting at `start`. A flip applied after a crop is the same
    window read backwards, so crops and flips cost a single gather."""
    ar = torch.arange(length, device=start.device)
    return start[:, None] + torch.where(flip[:, None], length - 1 - ar, ar)


def _bilinear_taps(start: Tensor, length: Tensor, out: int, flip: Tensor | None = None):
    """Per-image source indices (lo, hi) and weight of hi for resizing a window of `length` pixels to `out`,
    with F.interpolate's align_corners=False rule. Coordinates are clamped inside the window, so pixels
    outside the crop are never read (exactly like interpolating the cropped image on its own)."""
    dst = torch.arange(out, device=start.device, dtype=torch.float32).expand(len(start), out)
    if flip is not None:  # a flip after the resize reads the output grid backwards
        dst = torch.where(flip[:, None], out - 1 - dst, dst)
    src = ((dst + 0.5) * (length[:, None].float() / out) - 0.5).clamp_(min=0)
    lo = src.floor().long()
    hi = torch.minimum(lo + 1, length[:, None] - 1)
    return start[:, None] + lo, start[:, None] + hi, src - lo


def _resized_crop(x: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor, hflip: Tensor) -> Tensor:
    """Crop each image to its own box, resize back to x's size with bilinear interpolation, then h-flip.
    Boxes are never larger than the image, so this only ever upsamples (or copies): antialiasing would
    change nothing, which is why it matches torchvision's resized_crop(..., antialias=True)."""
    r0, r1, wr = _bilinear_taps(top, height, x.shape[-2])
    c0, c1, wc = _bilinear_taps(left, width, x.shape[-1], hflip)
    wr, wc = wr[:, None, :, None], wc[:, None, None, :]
    upper = _take(x, r0, c0) * (1 - wc) + _take(x, r0, c1) * wc
    lower = _take(x, r1, c0) * (1 - wc) + _take(x, r1, c1) * wc
    return upper * (1 - wr) + lower * wr


def _grayscale(x: Tensor) -> Tensor:
    """torchvision's rgb_to_grayscale weights, [N, 1, H, W]."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """RGB -> HSV (torchvision's channel priority r, g, b for ties), rotate hue by `shift` [N], -> RGB."""
    r, g, b = x.unbind(1)
    v, mn = x.amax(1), x.amin(1)
    chroma = v - mn
    grey = chroma == 0  # hue undefined, saturation 0: avoid dividing by zero
    s = chroma / torch.where(grey, 1.0, v)
    c = torch.where(grey, 1.0, chroma)
    h = torch.where(v == r, (g - b) / c, torch.where(v == g, (b - r) / c + 2, (r - g) / c + 4))
    h6 = ((h / 6 + shift[:, None, None]) % 1.0) * 6
    # Closed form of the six-sector HSV -> RGB table: channel = v * (1 - s * clamp(min(k, 4 - k), 0, 1)).
    rgb = [(k + h6) % 6 for k in (5, 3, 1)]
    return torch.stack([v - v * s * torch.minimum(k, 4 - k).clamp(0, 1) for k in rgb], 1)


def _color_op(op: int, x: Tensor, factor: Tensor) -> Tensor:
    """One ColorJitter op with a per-image factor [N], as torchvision.transforms.v2.functional on floats."""
    if op == HUE:
        return _adjust_hue(x, factor)
    f = factor[:, None, None, None]
    if op == BRIGHTNESS:
        return (x * f).clamp_(0, 1)
    gray = _grayscale(x)
    target = gray.mean((1, 2, 3), keepdim=True) if op == CONTRAST else gray
    return (x * f + target * (1 - f)).clamp_(0, 1)


@dataclass(frozen=True)
class SupervisedAugment:
    """RandomCrop(size, padding) -> RandomVerticalFlip(p) -> RandomHorizontalFlip(p) (the authors' supervised pipeline)."""

    padding: int = 4  # zero padding of RandomCrop; crop size = image size
    vertical_flip: float = 0.5  # probability; the authors' code uses RandomVerticalFlip(0.5); 0 disables
    horizontal_flip: float = 0.5

    def sample(self, n: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Draw order: top [n], left [n] (each randint over [0, 2 * padding], i.e. RandomCrop.get_params on the
        padded image), vertical-flip coin [n], horizontal-flip coin [n]."""
        offsets = 2 * self.padding + 1
        return dict(
            top=torch.randint(0, offsets, (n,), generator=generator),
            left=torch.randint(0, offsets, (n,), generator=generator),
            vflip=_coin(n, self.vertical_flip, generator),
            hflip=_coin(n, self.horizontal_flip, generator),
        )

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        p = {k: v.to(images.device, non_blocking=True) for k, v in params.items()}
        padded = F.pad(images, (self.padding,) * 4)
        rows = _window(p["top"], images.shape[-2], p["vflip"])
        cols = _window(p["left"], images.shape[-1], p["hflip"])
        return _to_float(_take(padded, rows, cols))


@dataclass(frozen=True)
class ContrastiveAugment:
    """SupCon view: RandomResizedCrop(size, scale, ratio) -> RandomHorizontalFlip(0.5) ->
    RandomApply([ColorJitter(b, c, s, h)], p=jitter_p) -> RandomGrayscale(grayscale_p)."""

    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    horizontal_flip: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.2

    def sample(self, n: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Draw order: area fractions [n, 10], log-aspects [n, 10], top and left uniforms [n] each,
        horizontal-flip coin [n], jitter coin [n], jitter factor uniforms [n, 4] (brightness, contrast,
        saturation, hue), op-order uniforms [n, 4] (argsort = a uniform permutation), grayscale coin [n].

        The box follows RandomResizedCrop.get_params (in float64, like its Python-float arithmetic): the
        first of 10 attempts that fits wins, else torchvision's central crop with the aspect ratio clamped."""
        g, area = generator, size * size
        frac = torch.empty(n, ATTEMPTS, dtype=torch.float64).uniform_(*self.scale, generator=g)
        log_ratio = torch.empty(n, ATTEMPTS, dtype=torch.float64)
        aspect = log_ratio.uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]), generator=g).exp()
        w = torch.round(torch.sqrt(area * frac * aspect))  # round half to even, as Python's round
        h = torch.round(torch.sqrt(area * frac / aspect))
        fits = (w > 0) & (w <= size) & (h > 0) & (h <= size)
        first = fits.byte().argmax(1, keepdim=True)  # index of the first fitting attempt
        found = fits.any(1)
        fb_h, fb_w = self._fallback_box(size)
        height = torch.where(found, h.gather(1, first)[:, 0], fb_h).long()
        width = torch.where(found, w.gather(1, first)[:, 0], fb_w).long()
        # randint(0, size - height + 1) per image, via floor(U * count); the fallback box is centred instead.
        top = (torch.rand(n, dtype=torch.float64, generator=g) * (size - height + 1)).long()
        left = (torch.rand(n, dtype=torch.float64, generator=g) * (size - width + 1)).long()
        top = torch.where(found, top, (size - height) // 2)
        left = torch.where(found, left, (size - width) // 2)

        hflip = _coin(n, self.horizontal_flip, g)
        jitter = _coin(n, self.jitter_p, g)
        b, c, s, hue = self.brightness, self.contrast, self.saturation, self.hue
        lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -hue], dtype=torch.float64)
        hi = torch.tensor([1 + b, 1 + c, 1 + s, hue], dtype=torch.float64)
        factors = (lo + (hi - lo) * torch.rand(n, 4, dtype=torch.float64, generator=g)).float()
        order = torch.rand(n, 4, generator=g).argsort(1)
        gray = _coin(n, self.grayscale_p, g)
        return dict(top=top, left=left, height=height, width=width, hflip=hflip,
                    jitter=jitter, factors=factors, order=order, gray=gray)

    def _fallback_box(self, size: int) -> tuple[float, float]:
        """(height, width) of torchvision's fallback central crop of a square image."""
        lo, hi = min(self.ratio), max(self.ratio)
        if 1.0 < lo:
            return float(round(size / lo)), float(size)
        if 1.0 > hi:
            return float(size), float(round(size * hi))
        return float(size), float(size)

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        p = {k: v.to(images.device, non_blocking=True) for k, v in params.items()}
        x = _resized_crop(_to_float(images), p["top"], p["left"], p["height"], p["width"], p["hflip"])
        # ColorJitter with a per-image op order: at step k each image runs op order[:, k]. Exactly one op is
        # chosen per image per step, so running the four ops one after another behind masks is exact.
        strengths = (self.brightness, self.contrast, self.saturation, self.hue)
        for k in range(4):
            for op in range(4):
                if strengths[op] == 0:  # torchvision skips disabled ops (and hue 0 is not an exact identity)
                    continue
                chosen = (p["jitter"] & (p["order"][:, k] == op))[:, None, None, None]
                x = torch.where(chosen, _color_op(op, x, p["factors"][:, op]), x)
        return torch.where(p["gray"][:, None, None, None], _grayscale(x).expand_as(x), x)


def two_views(aug: ContrastiveAugment, images_uint8: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two independently augmented views of each image (params sampled for view 1, then for view 2)."""
    n, size = images_uint8.shape[0], images_uint8.shape[-1]
    first = aug.apply(images_uint8, aug.sample(n, size, generator))
    second = aug.apply(images_uint8, aug.sample(n, size, generator))
    return first, second


def supervised_augment(config, image_size: int) -> SupervisedAugment:
    """A recipe's supervised pipeline: RandomCrop(32, padding=4) on CIFAR, the padding keeping that 1/8 ratio on
    other image sizes; the vertical flip as `config.vertical_flip` says."""
    return SupervisedAugment(padding=image_size // 8, vertical_flip=0.5 if config.vertical_flip else 0.0)


@dataclass(frozen=True)
class ExemplarAugment(ContrastiveAugment):
    """Exemplar's view (Caron et al. 2020, appendix): the contrastive view, then a small random rotation about the
    image centre (bilinear, zero fill)."""

    # small random rotations, uniform in +-degrees, as Caron et al.'s appendix: "data color augmentation and random
    # small rotations on top of standard data augmentation"
    degrees: float = 20.0

    def sample(self, n: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Draw order: the parent's parameters, then one angle per image [n] (degrees, uniform in +-degrees; drawn
        even when degrees is 0, so the stream layout does not depend on the configuration)."""
        params = super().sample(n, size, generator)
        angle = torch.empty(n, dtype=torch.float64).uniform_(-self.degrees, self.degrees, generator=generator)
        return dict(params, angle=angle)

    def apply(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        return _rotate(super().apply(images, params), params["angle"].to(images.device, non_blocking=True))


def _rotate(x: Tensor, degrees: Tensor) -> Tensor:
    """Rotate each image [N, C, H, W] counter-clockwise (torchvision's and torch.rot90's sense) by its angle about
    its centre: bilinear, zero fill, align_corners=False. An angle of exactly 0 returns the image untouched
    (resampling at the pixel centres would be the identity only up to rounding)."""
    radians = degrees.to(torch.float64).deg2rad()
    cos, sin = radians.cos(), radians.sin()
    h, w = x.shape[-2:]
    # affine_grid maps output to input coordinates in [-1, 1] per axis; h/w and w/h keep the rotation rigid on
    # non-square images
    theta = torch.stack([torch.stack([cos, -sin * h / w, torch.zeros_like(cos)], -1),
                         torch.stack([sin * w / h, cos, torch.zeros_like(cos)], -1)], -2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    rotated = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where((degrees == 0)[:, None, None, None], x, rotated)


def exemplar_augment(contrastive: ContrastiveAugment, degrees: float) -> ExemplarAugment:
    """A dataset's contrastive view pipeline with Exemplar's small rotations on top."""
    return ExemplarAugment(**{f.name: getattr(contrastive, f.name) for f in fields(ContrastiveAugment)},
                           degrees=degrees)
