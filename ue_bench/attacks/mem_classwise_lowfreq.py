"""Pseudo-class-wise MEM with low-frequency noise and expectation over the trainer's crops.

A research variant for issue 27's search (a protection that survives open_clip's trainer), not a paper's
attack. Of the protections measured under open_clip's view, two things each helped on one dataset:
``mem-classwise``'s pattern shared by a pseudo-class, on ``emoji`` (tiny-rn .43×, tiny-vit .28× of clean
i2t R@1 at seed 0, against MEM's .55×/.40×), and ``mem-lowfreq``'s noise constant over ``block`` ×
``block`` squares, optimised over random resize-crops, on the synthetic set (tiny-vit .54× over three
seeds, against ``mem-classwise``'s .94×) (``docs/results/2026-12-06/attack-search``). This plugin has both:
``mem-classwise``'s pseudo-classes (k-means on a clean-trained surrogate's image features by default),
one noise and one HotFlip trigger per class, whose noise is one value per square of pixels as
``mem-lowfreq``'s (nearest-neighbour, so the published delta is the optimised one on the 1/255 grid), and
``mem-eot``'s PGD loss averaged over ``eot_samples`` random resize-crops. Each PGD step moves a class's
block by the sign of the gradient summed over its pixels in all the class's images of the batch.
``block=1, eot_samples=1`` is ``mem-classwise`` with the same remaining parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ue_bench import param

from ._minmin import ClassNoise, FixedNoise
from ._surrogate import SplitTensors
from .mem_classwise import MEMClasswise, MEMClasswiseParams
from .mem_eot import ResizeCrops
from .mem_lowfreq import MEMLowFreq, MEMLowFreqParams


@dataclass(frozen=True)
class MEMClasswiseLowFreqParams(MEMLowFreqParams, MEMClasswiseParams):
    """``mem-lowfreq``'s parameters (block, EOT views) and ``mem-classwise``'s (pseudo-classes, no shuffle)."""

    shuffle: bool = param(False, help="during PGD, pair each image with a random batch caption carrying its own "
                                      "trigger, redrawn every step (off, as mem-classwise)")
    block: int = param(4, lo=1, hi=64, help="side in pixels of the squares that share one noise value "
                                            "(1: per-pixel class noise, as mem-classwise's)")
    eot_samples: int = param(2, lo=1, hi=64, help="random resize-crops per image and PGD step whose losses "
                                                  "are averaged (1: the images as published, as mem-classwise)")


class MEMClasswiseLowFreq(MEMLowFreq, MEMClasswise):
    """Class-wise MEM with block-constant (low-frequency) noise and EOT over resize-crops (research variant).

    Each pseudo-class's noise is constant over ``block`` × ``block`` squares and PGD averages its loss over
    random resize-crops. Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units
    (out of 255), the same noise for every image of a pseudo-class (each clipped to its own pixel range),
    and one trigger of ``trigger_len`` words per pseudo-class, prefixed to the captions of its images.
    Costs about what ``mem-lowfreq`` costs, plus the clean-trained surrogate of k-means. Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMClasswiseLowFreqParams
    version = "1"
    presets = {"tiny": {**MEMClasswise.presets["tiny"], "block": 4}}

    def pgd_views(self, seed: int) -> ResizeCrops | None:
        return super().pgd_views(seed) if self.params.eot_samples > 1 else None

    def noise(self, data: SplitTensors, fixed: FixedNoise, group: torch.Tensor | None, k: int,
              device: torch.device) -> ClassNoise:
        return ClassNoise(data, self.params.eps, group, k, self.params.block)
