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

from dataclasses import dataclass

import torch

from ue_bench import param

from ._minmin import ClassNoise, FixedNoise, SampleNoise
from ._surrogate import SplitTensors
from .mem_eot import MEMEOT, MEMEOTParams


@dataclass(frozen=True)
class MEMLowFreqParams(MEMEOTParams):
    """``mem-eot``'s parameters plus the block side of the noise grid."""

    block: int = param(4, lo=1, hi=64, help="side in pixels of the squares that share one noise value "
                                            "(1: per-pixel noise, mem-eot)")


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
        # per-image block noise: one class per image
        return ClassNoise(data, self.params.eps, torch.arange(data.n), data.n, self.params.block)
