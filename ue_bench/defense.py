"""The defense plugin interface (family ``ue_bench.defenses``).

A defense is what a scraper may do to published data before or while training: transform the data
(:meth:`Defense.transform`, e.g. JPEG), replace the per-batch loss (:meth:`Defense.batch_loss`,
e.g. adversarial augmentation), and/or choose which epoch's model it keeps from scores on pairs it holds
out of training (:meth:`Defense.selection`, e.g. early stopping). The identity defense ``none`` is the
baseline.

Contract (checked by :mod:`ue_bench.testing`): ``transform`` returns a new
:class:`~ue_bench.data.PairSplit` with images of the same shape and dtype (uint8 ``[N, H, W, 3]``) and
one non-empty caption list per image, deterministic per seed, never modifying its input; the loss of
``batch_loss`` is a finite scalar tensor with a gradient; ``selection`` returns None or a
:class:`Selection` whose ``train`` and ``validation`` are disjoint subsets of the split it was given
(:func:`selection_problem`), deterministic per seed, never modifying its input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ue_bench.data import PairSplit
from ue_bench.plugin import Plugin
from ue_bench.schema import METRIC_KEYS


@dataclass(frozen=True)
class Selection:
    """Model selection on held-out published pairs, what :meth:`Defense.selection` returns.

    The victim trains on ``train`` instead of the whole published split; after every epoch the harness
    scores retrieval (:mod:`ue_bench.engine.metrics`) on ``validation`` — pairs as published, the only
    data a defender has — keeps the weights of the best epoch by ``metric`` (a ``METRIC_KEYS`` key; highest,
    or lowest for a median rank; the earliest epoch on a tie) and stops once ``patience`` epochs in a row
    have not improved on it (None: trains every epoch of the recipe). The model evaluated on the clean
    test split is the one of that best epoch. ``train_index`` and ``validation_index`` (int64, sorted,
    disjoint) are the rows of the given split each holds, recorded in the cell."""

    train: PairSplit
    validation: PairSplit
    train_index: np.ndarray
    validation_index: np.ndarray
    metric: str = "mean_recall"
    patience: int | None = None


def selection_problem(selection, split: PairSplit) -> str | None:
    """Why ``selection`` (what ``Defense.selection(split, seed)`` returned) cannot be used (None: it can):
    it must be a :class:`Selection` whose indices are sorted, disjoint rows of ``split`` matching the two
    splits' sizes, with at least two validation images (one has no negative to rank against) and a
    known metric."""
    if not isinstance(selection, Selection):
        return f"selection returned {type(selection).__name__}, expected None or a ue_bench.defense.Selection"
    if selection.metric not in METRIC_KEYS:
        return f"selection metric {selection.metric!r} is not one of {', '.join(METRIC_KEYS)}"
    if selection.patience is not None and selection.patience < 1:
        return f"selection patience {selection.patience} must be None or >= 1"
    tr, va = np.asarray(selection.train_index), np.asarray(selection.validation_index)
    for name, idx, part in (("train", tr, selection.train), ("validation", va, selection.validation)):
        if not isinstance(part, PairSplit):
            return f"selection {name} is a {type(part).__name__}, expected a PairSplit"
        if idx.ndim != 1 or len(idx) != len(part):
            return f"selection {name}_index holds {idx.size} rows for {len(part)} {name} images"
        if len(idx) and (idx.min() < 0 or idx.max() >= len(split) or np.any(np.diff(idx) <= 0)):
            return f"selection {name}_index must be sorted distinct rows of the {len(split)}-image split"
    if len(va) < 2:
        return f"selection holds out {len(va)} validation image(s), at least 2 are needed to rank retrieval"
    if np.intersect1d(tr, va).size:
        return "selection train and validation share images"
    return None


class Defense(Plugin):
    """Base class of defenses: both hooks default to doing nothing."""

    #: True for defenses that override :meth:`transform`; their output is cached as an artifact.
    transforms_data: ClassVar[bool] = False
    #: True only for the no-defense baseline against which the reports compare defended training.
    is_baseline: ClassVar[bool] = False
    #: Images the default :meth:`transform_seconds` times the transform on.
    calibration_images: ClassVar[int] = 16

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        """The defended split: uint8 ``[N, H, W, 3]`` images of the input's shape, captions per image."""
        return split

    def batch_loss(self, seed: int, total_steps: int):
        """A ``batch_loss(model, unit_images, tokens, step)`` callable for training, or None;
        ``unit_images``: float ``[B, 3, H, W]`` in [0, 1]; ``tokens``: int64 ``[B, L]``; returns a
        scalar loss tensor. ``total_steps`` is the number of optimiser steps of the whole run."""
        return None

    def train_cost(self) -> float:
        """The victim's training time under this defense over its undefended training, as ``--dry-run``
        estimates it (1.0: the same; a data transform's own time is :meth:`transform_seconds`)."""
        return 1.0

    def transform_seconds(self, split: PairSplit) -> float | None:
        """Estimated seconds of :meth:`transform` on ``split`` on this machine, for ``--dry-run`` (None:
        unknown). The default is 0.0 for a defense without a transform, else the transform of the first
        :attr:`calibration_images` pairs of ``split`` (seed 0), timed on its second call (the first imports
        and allocates) and scaled by the split's size: right for a per-image transform. A defense whose
        transform trains a model on the split (``dvae``) overrides it with a cheaper estimate."""
        if not self.transforms_data or not len(split):
            return 0.0
        sample = split.subset(np.arange(min(len(split), self.calibration_images)))
        self.transform(sample, 0)
        start = time.perf_counter()
        self.transform(sample, 0)
        return (time.perf_counter() - start) * len(split) / len(sample)

    def selection(self, split: PairSplit, seed: int) -> Selection | None:
        """None (the default: the victim trains on all of ``split``, the published and defended pairs, and
        its last epoch is evaluated), or a :class:`Selection`: the pairs to train on, the pairs held out
        to score each epoch on, and how the epoch is chosen. Deterministic per seed; must not modify
        ``split``. The harness checks the result (:func:`selection_problem`) and refuses a bad one."""
        return None

    def train_share(self, split: PairSplit, seed: int) -> int:
        """How many pairs of ``split`` the victim trains on (checked against its batch size before a run
        starts): the size of :meth:`selection`'s training share, all of ``split`` without one. A defense
        whose selection copies images may override it with the count alone, so the check costs no copy
        of a large split; it raises what :meth:`selection` raises."""
        selection = self.selection(split, seed)
        return len(split) if selection is None else len(selection.train)
