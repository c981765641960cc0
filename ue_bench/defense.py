"""The defense plugin interface (family ``ue_bench.defenses``).

A defense is what a scraper may do to published data before or while training: transform the data
(:meth:`Defense.transform`, e.g. JPEG) and/or replace the per-batch loss (:meth:`Defense.batch_loss`,
e.g. adversarial augmentation). The identity defense ``none`` is the baseline.

Contract (checked by :mod:`ue_bench.testing`): ``transform`` returns a new
:class:`~ue_bench.data.PairSplit` with images of the same shape and dtype (uint8 ``[N, H, W, 3]``) and
one non-empty caption list per image, deterministic per seed, never modifying its input; the loss of
``batch_loss`` is a finite scalar tensor with a gradient.
"""

from __future__ import annotations

from typing import ClassVar

from ue_bench.data import PairSplit
from ue_bench.plugin import Plugin


class Defense(Plugin):
    """Base class of defenses: both hooks default to doing nothing."""

    #: True for defenses that override :meth:`transform`; their output is cached as an artifact.
    transforms_data: ClassVar[bool] = False
    #: True only for the no-defense baseline against which the reports compare defended training.
    is_baseline: ClassVar[bool] = False

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        """The defended split: uint8 ``[N, H, W, 3]`` images of the input's shape, captions per image."""
        return split

    def batch_loss(self, seed: int, total_steps: int):
        """A ``batch_loss(model, unit_images, tokens, step)`` callable for training, or None;
        ``unit_images``: float ``[B, 3, H, W]`` in [0, 1]; ``tokens``: int64 ``[B, L]``; returns a
        scalar loss tensor. ``total_steps`` is the number of optimiser steps of the whole run."""
        return None
