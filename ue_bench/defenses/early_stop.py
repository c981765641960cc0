"""Early stopping on held-out published pairs: the defender's model selection.

Unlearnable examples are learned early and forgotten: Sandoval-Segura et al. ("Poisons that are learned
faster are more effective", CVPR Workshops 2022) find a poisoned model's clean accuracy peaks in the first
epochs, and recommend reporting the peak over epochs. A defender has no clean test split to find that
peak with, only the published (protected) pairs; this defense does what a careful trainer does with them:
hold out a seeded ``share`` of the published training images (at least 2) with their captions as
published, train on the rest, score image–caption retrieval (``metric``, the benchmark's own metrics) on
the held-out pairs after every epoch, and keep the model of the best epoch (the earliest on a tie),
stopping once ``patience`` epochs in a row have not improved on it (``none``: every epoch of the
recipe is trained, the best kept). The cell's test metrics are those of that kept model. The
learning-rate schedule stays the one planned for the recipe's epochs on the training share. The peak
of the cell's learning curve on the test split is an upper bound on what this selection can reach.

Parameters are the usual ones of early stopping (Prechelt, "Early Stopping — But When?", 1998:
a validation set held out of training, patience); the validation share is seeded by the cell seed's
``defense-holdout`` role (:func:`ue_bench.role_seed`), apart from the victim's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ue_bench import METRIC_KEYS, Defense, PairSplit, Selection, UsageError, param, role_seed


@dataclass(frozen=True)
class EarlyStopParams:
    share: float = param(0.1, lo=0.01, hi=0.5, help="fraction of the published training images held out as the "
                                                     "validation share (rounded, at least 2 images)")
    patience: int | None = param(None, lo=1, hi=10000, help="stop after this many epochs in a row without a better "
                                                            "validation score (none: train every epoch, keep the best)")
    metric: str = param("mean_recall", choices=METRIC_KEYS, help="the validation retrieval metric to select on "
                                                                 "(highest recall, lowest median rank)")


class EarlyStop(Defense):
    """Early stopping: hold out a share of the published pairs, keep the epoch that retrieves them best."""

    Params = EarlyStopParams
    version = "1"
    presets = {"tiny": {"share": 0.25}}

    def selection(self, split: PairSplit, seed: int) -> Selection:
        """``round(share × N)`` (at least 2) images drawn without replacement with the ``defense-holdout``
        seed are the validation share, the rest the training share. Raises :class:`UsageError` when fewer
        than 2 images would remain to train on."""
        n = len(split)
        k = self._held_out(n)
        rng = np.random.default_rng(role_seed(seed, "defense-holdout"))
        held = np.sort(rng.permutation(n)[:k]).astype(np.int64)
        keep = np.setdiff1d(np.arange(n, dtype=np.int64), held)
        return Selection(train=split.subset(keep), validation=split.subset(held), train_index=keep,
                         validation_index=held, metric=self.params.metric, patience=self.params.patience)

    def train_share(self, split: PairSplit, seed: int) -> int:
        """``N − round(share × N)`` (held out: at least 2), without copying any image."""
        return len(split) - self._held_out(len(split))

    def _held_out(self, n: int) -> int:
        k = max(2, round(self.params.share * n))
        if n - k < 2:
            raise UsageError(f"defense {self.name!r}: share={self.params.share:g} of {n} images leaves {n - k} to "
                             f"train on, expected at least 2")
        return k
