"""MEM (Multi-step Error Minimization, Liu et al., ACM MM 2024, arXiv 2407.16307): image noise and text
triggers together, as the reference code (thinwayliu/Multimodal-Unlearnable-Examples, ``src/poison.py``
and ``src/poison_train.py``) computes them, with its parameters and nothing else (variants are plugins
of their own, e.g. ``mem-eot``, ``mem-patterns``).

Where ue-bench departs from the reference, it fixes one of its defects (the README's *MEM* notes):
the trigger is inserted after the start token, as published text, where the reference overwrites the
caption's first ``trigger_len`` tokens; trigger words are whole, safe words of the CLIP vocabulary (the
reference draws ids below 30,522, BERT's vocabulary size, and may pick the start or end token); the noise
is one integer delta per image within ±``eps`` pixel units (the reference keeps one float noise per
caption row in normalised space, never quantised); surrogate gradients are zeroed every step (the
reference zeroes them once per outer iteration, so they accumulate over its 200 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench import param

from ._hotflip import SELECTIONS
from ._minmin import MinMinAttack, MinMinParams


@dataclass(frozen=True)
class MEMParams(MinMinParams):
    """MEM's parameters: EM's plus the trigger's (the reference's values are in the ``paper`` preset)."""

    hotflip_iters: int = param(5, lo=0, hi=1000, help="outer iterations (the first ones) that update the triggers "
                                                     "(the reference's 5)")
    candidates: int = param(16, lo=1, hi=4096, help="HotFlip top-k tokens per position scored exactly")
    hotflip_select: str = param("batch", choices=SELECTIONS,
                                help="batch: the candidate rank that minimises the batch loss, for all samples at "
                                     "once (the reference); sample: each sample's best single swap (not the "
                                     "reference's; applied together, the swaps may raise the batch loss)")
    trigger_len: int = param(3, lo=0, hi=8, help="trigger words per image, after the start token (MEM-3, MEM-5); "
                                                 "0: image noise only, no HotFlip, each image's own caption in "
                                                 "PGD (T2UE's MEM-without-trigger baseline)")
    shuffle: bool = param(True, help="during PGD, pair each image with a random batch caption carrying its own "
                                     "trigger, redrawn every step")

    def trigger(self) -> MEMParams | None:
        """These parameters as the trigger's settings; None when ``trigger_len`` is 0 (image noise only:
        with no trigger to bind the noise to, PGD pairs each image with its own caption, and ``shuffle``,
        ``hotflip_iters``, ``candidates`` and ``hotflip_select`` have nothing to act on)."""
        return self if self.trigger_len else None


class MEM(MinMinAttack):
    """MEM: per-image error-minimising noise bound to a HotFlip-optimised text trigger (the seed paper).

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255) and one
    trigger of ``trigger_len`` whole words per image, prefixed to its captions when published (none with
    ``trigger_len=0``: MEM's loop on the image noise alone, the MEM-without-trigger baseline of T2UE,
    Ma et al. 2025, arXiv 2508.03091). Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMParams
    #: 2: HotFlip keeps the batch's best candidate rank, scores on each image's own caption; PGD redraws its
    #: caption shuffle every step; triggers updated in the first 5 outer iterations (the reference's).
    version = "2"
    presets = {
        "tiny": {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "hotflip_iters": 1, "candidates": 4,
                 "batch_size": 16},
        # the reference's settings (src/poison_train.py): 20 outer iterations of 200 surrogate steps at AdamW
        # 1e-4, triggers updated in the first 5, 16 HotFlip candidates, 8 PGD steps of 1/255 within 8/255,
        # batch 128 (src/parser.py), MEM-3
        "paper": {"eps": 8, "step": 1, "pgd_steps": 8, "outer_iters": 20, "surrogate_steps": 200, "surrogate_lr": 1e-4,
                  "hotflip_iters": 5, "candidates": 16, "hotflip_select": "batch", "trigger_len": 3, "shuffle": True,
                  "batch_size": 128},
    }
