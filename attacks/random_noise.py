"""Uniform random noise: the floor every optimised attack should beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection


@dataclass(frozen=True)
class RandomParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255: each value uniform in [-eps, eps]")


class RandomNoise(Attack):
    """Uniform random integer noise in ±ε per pixel and sample (no model involved)."""

    Params = RandomParams
    uses_surrogate = False

    def protect(self, split, surrogate, seed, device):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x52414E44]))
        eps = self.params.eps
        delta = rng.integers(-eps, eps + 1, size=split.images.shape, dtype=np.int16)
        return Protection(delta=delta, meta={"distribution": f"uniform integers in [-{eps}, {eps}]"})
