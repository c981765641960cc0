"""MEM with expectation over transformation (EOT): noise that survives a trainer's random resize-crops.

open_clip's trainer does not train on the published pixels but on ``RandomResizedCrop(scale 0.9–1.0)``
views of them, resampled bicubically every epoch, and through that view a CLIP model learns from MEM's
data (``docs/results/2026-11-30/trainer-view``). Following Athalye et al., "Synthesizing Robust
Adversarial Examples" (ICML 2018, arXiv 1707.07397), the PGD step of ``mem-eot`` minimises the
*expected* loss over such views: each PGD step draws ``eot_samples`` fresh crops per image, seeded, and
averages their CLIP losses. Everything else — surrogate steps, HotFlip, the integer delta within ±eps —
is MEM's (``mem``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ue_bench.engine.training import PGD_STEP_COST
from ue_bench.engine.views import crop_boxes
from ue_bench import param

from ._minmin import cost_steps
from .mem import MEM, MEMParams


@dataclass(frozen=True)
class MEMEOTParams(MEMParams):
    """MEM's parameters plus the transformations PGD takes the expectation over."""

    eot_samples: int = param(2, lo=1, hi=64, help="random resize-crops per image and PGD step whose losses "
                                                  "are averaged (PGD's cost grows in proportion)")
    eot_scale: float = param(0.9, lo=0.05, hi=1.0, help="smallest crop area as a fraction of the image "
                                                        "(open_clip's default RandomResizedCrop: 0.9 to 1)")


class ResizeCrops:
    """``samples`` random resize-crops of each image per call, drawn as torchvision's
    ``RandomResizedCrop(scale=(scale, 1), ratio=(3/4, 4/3))`` draws them (its own ``get_params``) and
    resampled back to the input size, bicubic with antialiasing, differentiably (torch ops).

    The crops of call ``c`` come from torch's generator forked and seeded by ``seed`` and ``c``, so a
    protection is reproducible and the caller's random stream is untouched. Takes float ``[B, 3, H, W]``
    and returns ``[samples * B, 3, H, W]``, sample after sample.
    """

    def __init__(self, samples: int, scale: float, seed: int) -> None:
        self.samples, self.scale = samples, (scale, 1.0)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        order = [image for _ in range(self.samples) for image in images]
        boxes = crop_boxes(images[0], len(order), self.scale, self.gen)
        return torch.stack([TF.resized_crop(image, *box, [h, w], interpolation=InterpolationMode.BICUBIC,
                                            antialias=True) for image, box in zip(order, boxes)])


class MEMEOT(MEM):
    """MEM whose PGD minimises the expected loss over random resize-crops (EOT, Athalye et al. 2018).

    Returns what ``mem`` returns: a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of
    255) and one trigger of ``trigger_len`` words per image. Each PGD step costs about ``eot_samples``
    of ``mem``'s. Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMEOTParams
    version = "2"  # 2: MEM's loop as the reference's (batch-shared HotFlip rank, own-caption scoring, per-step shuffle)

    def pgd_views(self, seed: int) -> ResizeCrops:
        return ResizeCrops(self.params.eot_samples, self.params.eot_scale, seed)

    def cost_steps(self, n_images: int) -> float:
        p = self.params
        nb = -(-n_images // max(2, min(p.batch_size, n_images))) if n_images else 0
        k = self.surrogate_count()
        return cost_steps(p, n_images, k) + k * (p.eot_samples - 1) * p.outer_iters * nb * p.pgd_steps * PGD_STEP_COST
