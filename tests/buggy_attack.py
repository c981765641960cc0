"""An attack with switchable bugs, shared by the conformance tests and the ``plugin check`` tests."""

from dataclasses import dataclass

import numpy as np

from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection


@dataclass(frozen=True)
class BuggyParams:
    eps: int = param(4, lo=0, hi=32, help="L∞ budget, pixel units out of 255")
    overshoot: int = param(0, lo=0, hi=8, help="pixels by which sample 3 leaves the budget (a bug)")
    nan: bool = param(False, help="put NaN into sample 5's delta (a bug)")
    trigger: str = param("", help="a trigger for every image ('' for none)")
    clean_epochs: int = param(0, lo=-1, hi=8, help="what clean_surrogate_epochs gives (-1: a bug)")


class BuggyAttack(Attack):
    """Throwaway attack: a seeded ±eps sign pattern per image, with switchable bugs."""

    Params = BuggyParams
    uses_surrogate = False

    def clean_surrogate_epochs(self):
        return self.params.clean_epochs

    def protect(self, split, surrogate, seed, device):
        delta = (np.random.default_rng(seed).choice([-1, 1], split.images.shape) * self.params.eps).astype(np.int16)
        delta[3] += np.int16(self.params.overshoot)
        if self.params.nan:
            delta = delta.astype(np.float32)
            delta[5, 0, 0, 0] = np.nan
        triggers = [self.params.trigger] * len(split) if self.params.trigger else None
        return Protection(delta=delta, triggers=triggers)
