"""MEM-EOT with low-frequency noise: one noise value per ``block`` × ``block`` square of pixels.

A research variant for issue 27's search (a protection that survives open_clip's trainer), not a paper's
attack. MEM's per-pixel noise does not survive the trainer's ``RandomResizedCrop(scale 0.9–1)``, which
shifts the image by up to a few pixels and resamples it bicubically every epoch; ``mem-eot`` takes the
expectation of PGD's loss over such crops (Athalye et al., ICML 2018) and still leaves tiny-rn near
clean (``docs/results/2026-12-03/threat-model``). Perturbations that are smooth at the scale of that shift
are known to survive resampling and filtering far better than pixel-level noise (the low-frequency
adversarial perturbations of Guo, Frank and Weinberger, UAI 2019, arXiv 1809.08758; Sharma, Ding and
Brubaker, 2019, arXiv 1903.00073). Here the noise lives on a grid ``block`` times coarser than the
image (nearest-neighbour: each value repeated over its square, so the published delta is the optimised
one, on the 1/255 grid, with no rounding), each PGD step moves a block by the sign of the summed
gradient of its pixels, and everything else is ``mem-eot``'s: the surrogate steps, HotFlip triggers,
the EOT views, ±``eps`` in each image's pixel range. ``block=1`` is ``mem-eot`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ue_bench import param
from ue_bench.engine.pixel_box import project

from ._minmin import FixedNoise, MinMinParams, SampleNoise, SharedNoise
from ._pgd import pgd
from ._surrogate import SplitTensors
from ._tiles import expand_blocks
from .mem_eot import MEMEOT, MEMEOTParams


@dataclass(frozen=True)
class MEMLowFreqParams(MEMEOTParams):
    """``mem-eot``'s parameters plus the block side of the noise grid."""

    block: int = param(4, lo=1, hi=64, help="side in pixels of the squares that share one noise value "
                                            "(1: per-pixel noise, mem-eot)")


class BlockNoise(SharedNoise):
    """One integer noise value per ``block`` × ``block`` square of each image, repeated over the square.

    The coarse noise is int8 ``[N, 3, ceil(H / block), ceil(W / block)]`` within ±``eps`` (in memory: a
    ``block``²-th of the image data); an image publishes its expansion projected into its own pixel range.
    """

    def __init__(self, data: SplitTensors, eps: int, block: int) -> None:
        self.data, self.eps, self.block = data, eps, block
        self.words = torch.zeros(data.n, 0, dtype=torch.long)  # no fixed words
        h, w = data.images.shape[1:3]
        self.size = (h, w)
        self.coarse = torch.zeros(data.n, 3, -(-h // block), -(-w // block), dtype=torch.int8)

    def expand(self, coarse: torch.Tensor) -> torch.Tensor:
        """``[B, 3, h, w]`` block values as ``[B, 3, H, W]`` pixels (each value over its square)."""
        return expand_blocks(coarse, self.block, self.size)

    def current(self, idx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return project(self.expand(self.coarse[idx].to(images.device).float()), images, self.eps)

    def flipped(self, idx: torch.Tensor, trig: torch.Tensor) -> None:
        """Triggers are per image, as MEM's: nothing here depends on them."""

    def descend(self, idx: torch.Tensor, images: torch.Tensor, d: torch.Tensor, objective: tuple[Callable, Callable],
                p: MinMinParams) -> float:
        """PGD on the block values of ``idx``, each stepped by the sign of its pixels' summed gradient."""
        coarse, loss = pgd(*objective, images, self.coarse[idx].to(images.device).float(), eps=self.eps, step=p.step,
                           steps=p.pgd_steps, maximise=False, expand=self.expand)
        self.coarse[idx] = coarse.round().to(torch.int8).cpu()
        return loss


class MEMLowFreq(MEMEOT):
    """MEM-EOT whose image noise is constant over ``block`` × ``block`` squares (low-frequency; research variant).

    Returns what ``mem`` returns: a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units
    (out of 255) and one trigger of ``trigger_len`` words per image. Costs about what ``mem-eot`` costs.
    Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMLowFreqParams
    version = "1"

    def noise(self, data: SplitTensors, fixed: FixedNoise, group: torch.Tensor | None, k: int,
              device: torch.device):
        if self.params.block == 1:
            return SampleNoise(data, self.params.eps, fixed, device)
        return BlockNoise(data, self.params.eps, self.params.block)
