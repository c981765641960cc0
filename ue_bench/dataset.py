"""The dataset plugin interface (family ``ue_bench.datasets``).

A dataset plugin turns its parameters (a path, a size, ...) into a :class:`~ue_bench.data.PairDataset`:
a train split to protect and learn from and a clean test split to evaluate retrieval on.

Contract (checked by :mod:`ue_bench.testing`): :meth:`Dataset.load` returns splits whose images are
uint8 ``[N, H, W, 3]`` with H = W (the resolution every model of a run is built for) and, per image, a
non-empty list of non-empty caption strings; the same parameters load the same bytes. Bad input is a
:class:`~ue_bench.errors.UsageError` naming the file and row (exit code 2), never a traceback.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from .data import PairDataset
from .plugin import Plugin


class Dataset(Plugin, abc.ABC):
    """Base class of datasets; subclasses implement :meth:`load`."""

    @abc.abstractmethod
    def load(self) -> PairDataset:
        """The train and test splits (raises :class:`~ue_bench.errors.UsageError` on bad input)."""

    def export_layout(self) -> dict[str, Any]:
        """How ``ue-bench protect`` writes a copy of this dataset: ``{"format": "csv"}`` (open_clip's
        defaults) unless the input had its own layout (``ue_bench.export.Layout`` fields)."""
        return {"format": "csv"}

    @classmethod
    def example(cls, folder: Path) -> dict[str, Any]:
        """Parameters that load a small example of this dataset, writing any files it needs into
        ``folder`` (used by the conformance checks); the default is the plugin's ``tiny`` preset."""
        return dict(cls.presets.get("tiny", {}))
