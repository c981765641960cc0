"""The defense plugin interface (family ``ue_bench.defenses``).

A defense is what a scraper may do to published data before or while training: transform the data
(:meth:`Defense.transform`, e.g. JPEG) and/or replace the per-batch loss (:meth:`Defense.batch_loss`,
e.g. adversarial augmentation). The identity defense ``none`` is the baseline.
"""

from __future__ import annotations

from .data import PairSplit
from .registry import Plugin


class Defense(Plugin):
    """Base class of defenses: both hooks default to doing nothing."""

    #: True for defenses that override :meth:`transform`; their output is cached as an artifact.
    transforms_data: bool = False

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        return split

    def batch_loss(self, seed: int, total_steps: int):
        """A ``batch_loss(model, unit_images, tokens, step)`` callable for training, or None;
        ``total_steps`` is the number of optimiser steps of the whole run, for schedules."""
        return None
