"""MEM (Multi-step Error Minimization, Liu et al., ACM MM 2024, arXiv 2407.16307): image noise and text
triggers together, with the reference code's parameters and nothing else (variants are plugins of their
own, e.g. ``mem-patterns``)."""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench.params import param

from ._minmin import MinMinAttack, MinMinParams


@dataclass(frozen=True)
class MEMParams(MinMinParams):
    """MEM's parameters: EM's plus the trigger's (the reference's values are in the ``paper`` preset)."""

    hotflip_iters: int = param(4, lo=0, hi=1000, help="outer iterations (the first ones) that update the triggers")
    candidates: int = param(16, lo=1, hi=4096, help="HotFlip top-k tokens per position scored exactly")
    trigger_len: int = param(3, lo=1, hi=8, help="trigger words per image, after the start token (MEM-3, MEM-5)")
    shuffle: bool = param(True, help="pair each image with a random batch caption carrying its own trigger "
                                     "during PGD/HotFlip")

    def trigger(self) -> MEMParams:
        """MEM always has a trigger: these parameters are its settings."""
        return self


class MEM(MinMinAttack):
    """MEM: per-image error-minimising noise bound to a HotFlip-optimised text trigger (the seed paper).

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255) and one
    trigger of ``trigger_len`` whole words per image, prefixed to its captions when published. Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = MEMParams
    version = "1"
    presets = {
        "tiny": {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "hotflip_iters": 1, "candidates": 4,
                 "batch_size": 16},
        # the reference implementation's settings
        "paper": {"eps": 8, "step": 1, "pgd_steps": 8, "outer_iters": 20, "surrogate_steps": 200, "candidates": 16,
                  "batch_size": 128},
    }
