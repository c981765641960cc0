"""UEraser's augmentation pipeline, vectorised over a batch of [0, 1] images.

The reference (lafeat/ueraser, ``ueraser.py``) composes four kornia transforms, each drawn per
sample: plasma brightness (p = 1, roughness 0.1–0.7, intensity 0–1), plasma contrast (p = 1,
roughness 0.1–0.7), channel shuffle (p = 0.5) and TrivialAugment. They are re-implemented here on
whole batches because applying torchvision's ``TrivialAugmentWide`` one image at a time costs ~10 ms
per image on a CPU, i.e. seconds per training step with K views, while one masked tensor expression
per op costs about as much for 64 images as for one.

Every random draw comes from a ``torch.Generator`` on the CPU seeded by the caller, and the global
RNG is never touched, so a training run is the same for the same seed on any device and the
victim's own randomness is not shifted by the defense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ue_bench import param

# TrivialAugmentWide's 31 magnitude bins (Müller & Hutter 2021; torchvision's "wide" space).
_BINS = 31
_GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
_PHOTOMETRIC = ("identity", "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
                "autocontrast", "equalize")
_HUE = ("color", "solarize", "autocontrast", "equalize")  # drop or shift colour: per-channel or inverting


@dataclass(frozen=True)
class ViewParams:
    """Which of UEraser's ops a view applies, and how strongly.

    The reference's ops were chosen for class labels (CIFAR), which survive a hue change or a move.
    A caption that says "a red circle at the top left" does not. UEraser's clean mean recall on the
    default synthetic set, as a fraction of training without it (tiny-rn, seed 0): the full reference
    pipeline .25× (H100); without geometric ops and channel shuffle .56×; also without the hue ops and
    at plasma .5, .88×; at plasma .25 (the defaults), .96× (.93× over seeds 0–2). The reference is
    ``geometric=true,channel_shuffle=0.5,hue_ops=true,plasma=1``.
    """

    geometric: bool = param(False, help="TrivialAugment's shear/translate/rotate ops (they move what captions call "
                                        "'top left'; reference: on)")
    channel_shuffle: float = param(0.0, lo=0.0, hi=1.0, help="probability of permuting an image's colour channels "
                                                             "(turns 'red' into 'blue'; reference: 0.5)")
    hue_ops: bool = param(False, help="TrivialAugment's colour, solarize, autocontrast and equalize ops, which drop "
                                      "or shift hue (reference: on)")
    plasma: float = param(0.25, lo=0.0, hi=1.0, help="strength of the plasma brightness and contrast maps "
                                                    "(reference: 1)")


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def plasma(gen: torch.Generator, n: int, h: int, w: int, roughness: torch.Tensor) -> torch.Tensor:
    """Fractal ("plasma") noise ``[n, 1, h, w]`` in [0, 1], one map per sample.

    Spectral synthesis instead of the reference's diamond-square recursion: octaves of random grids
    2, 4, 8, … px wide, bilinearly upsampled, the amplitude of each finer octave multiplied by the
    sample's ``roughness`` (so larger roughness = more fine detail, as in diamond-square), then
    rescaled to [0, 1] per sample.
    """
    out = torch.zeros(n, 1, h, w)
    amp = torch.ones(n, 1, 1, 1)
    cells = 2
    while True:
        grid = torch.rand(n, 1, cells, cells, generator=gen)
        out += amp * F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
        if cells >= max(h, w):
            break
        amp = amp * roughness.view(n, 1, 1, 1)
        cells *= 2
    lo = out.amin(dim=(1, 2, 3), keepdim=True)
    hi = out.amax(dim=(1, 2, 3), keepdim=True)
    return (out - lo) / (hi - lo).clamp_min(1e-8)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageEnhance``: ``other + factor·(x − other)``, clamped."""
    return (other + factor.view(-1, 1, 1, 1) * (x - other)).clamp(0, 1)


def _sharpness_base(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH kernel (centre 5, others 1, /13) on the interior; the border stays as is."""
    k = torch.ones(3, 1, 3, 3, device=x.device, dtype=x.dtype)
    k[:, :, 1, 1] = 5.0
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = F.conv2d(x, k / 13.0, groups=3)
    return out


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel histogram equalisation on the 256 grey levels."""
    b, c, h, w = x.shape
    q = (x * 255).round().long().view(b * c, h * w)
    hist = torch.zeros(b * c, 256, device=x.device).scatter_add_(1, q, torch.ones_like(q, dtype=torch.float))
    cdf = hist.cumsum(1)
    first = cdf.gather(1, (hist > 0).float().argmax(1, keepdim=True))  # count of the darkest level
    lut = ((cdf - first) / (h * w - first).clamp_min(1)).clamp(0, 1)
    return lut.gather(1, q).view(b, c, h, w)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-8), x)


def trivial_augment(x: torch.Tensor, gen: torch.Generator, view: ViewParams) -> torch.Tensor:
    """One TrivialAugmentWide op per image, among those ``view`` switches on: op and magnitude bin
    uniform, sign of signed ops 50/50."""
    b, _, h, w = x.shape
    geometric = view.geometric
    ops = tuple(o for o in _PHOTOMETRIC if view.hue_ops or o not in _HUE) + (_GEOMETRIC if geometric else ())
    op = torch.randint(len(ops), (b,), generator=gen)
    level = torch.randint(_BINS, (b,), generator=gen).float() / (_BINS - 1)  # 0 … 1
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    op, level, sign = op.to(x.device), level.to(x.device), sign.to(x.device)

    def mask(name: str) -> torch.Tensor:
        """The images drawn for op ``name``; none when the op is switched off."""
        return (op == (ops.index(name) if name in ops else -1)).view(b, 1, 1, 1)

    enhance = 1.0 + sign * 0.99 * level  # factors 0.01 … 1.99
    out = x
    out = torch.where(mask("brightness"), _blend(x, torch.zeros_like(x), enhance), out)
    out = torch.where(mask("color"), _blend(x, _gray(x), enhance), out)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
    out = torch.where(mask("contrast"), _blend(x, mean, enhance), out)
    out = torch.where(mask("sharpness"), _blend(x, _sharpness_base(x), enhance), out)
    levels = torch.exp2(8 - (level * 6).round()).view(b, 1, 1, 1)  # 8 … 2 bits kept
    out = torch.where(mask("posterize"), torch.floor(x * 255 / (256 / levels)) * (256 / levels) / 255, out)
    threshold = (1.0 - level).view(b, 1, 1, 1)
    out = torch.where(mask("solarize"), torch.where(x >= threshold, 1.0 - x, x), out)
    out = torch.where(mask("autocontrast"), _autocontrast(x), out)
    out = torch.where(mask("equalize"), _equalize(x), out)
    if geometric:
        theta = torch.eye(2, 3, device=x.device).repeat(b, 1, 1)
        amount = sign * level
        theta[:, 0, 1] += torch.where(op == ops.index("shear_x"), 0.99 * amount, 0.0)
        theta[:, 1, 0] += torch.where(op == ops.index("shear_y"), 0.99 * amount, 0.0)
        theta[:, 0, 2] += torch.where(op == ops.index("translate_x"), 2 * 32.0 * amount / w, 0.0)
        theta[:, 1, 2] += torch.where(op == ops.index("translate_y"), 2 * 32.0 * amount / h, 0.0)
        angle = torch.where(op == ops.index("rotate"), math.radians(135.0) * amount, 0.0)
        rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], 1), torch.stack([angle.sin(), angle.cos()], 1)], 1)
        theta[:, :, :2] = rot @ theta[:, :, :2]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        moved = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        is_geo = torch.isin(op, torch.tensor([ops.index(g) for g in _GEOMETRIC], device=x.device)).view(b, 1, 1, 1)
        out = torch.where(is_geo, moved, out)
    return out


def ueraser_view(x: torch.Tensor, gen: torch.Generator, view: ViewParams = ViewParams()) -> torch.Tensor:
    """One strong augmented view of ``x`` (``[B,3,H,W]`` in [0, 1]), as UEraser's kornia sequence.

    The plasma and channel draws are the same whatever ``view`` says, so two settings differ only in
    what the ops do.
    """
    b, c, h, w = x.shape
    with torch.no_grad():
        intensity = _uniform(gen, b, 0.0, 1.0).view(b, 1, 1, 1)
        brightness = (2 * plasma(gen, b, h, w, _uniform(gen, b, 0.1, 0.7)) - 1) * intensity * view.plasma
        x = (x + brightness.to(x.device, x.dtype)).clamp(0, 1)
        contrast = 1 + view.plasma * (4 * plasma(gen, b, h, w, _uniform(gen, b, 0.1, 0.7)) - 1)
        x = ((x - 0.5) * contrast.to(x.device, x.dtype) + 0.5).clamp(0, 1)
        shuffle = torch.rand(b, generator=gen) < view.channel_shuffle
        perm = torch.argsort(torch.rand(b, c, generator=gen), dim=1)
        perm = torch.where(shuffle.view(b, 1), perm, torch.arange(c).expand(b, c)).to(x.device)
        x = x.gather(1, perm.view(b, c, 1, 1).expand_as(x))
        return trivial_augment(x, gen, view)
