"""The dataset plugin interface (family ``ue_bench.datasets``).

A dataset plugin turns its parameters (a path, a size, ...) into a :class:`~ue_bench.data.PairDataset`:
a train split to protect and learn from and a clean test split to evaluate retrieval on.

A plugin that reads image files also implements :meth:`Dataset.originals`, which hands them, as
given and in :meth:`Dataset.load`'s order, to ``ue-bench protect``'s full-resolution copy.

Contract (checked by :mod:`ue_bench.testing`): :meth:`Dataset.load` returns splits whose images are
uint8 ``[N, H, W, 3]`` with H = W (the resolution every model of a run is built for) and, per image, a
non-empty list of non-empty caption strings; the same parameters load the same bytes. Bad input is a
:class:`~ue_bench.errors.UsageError` naming the file and row (exit code 2), never a traceback.
"""

from __future__ import annotations

import abc
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ue_bench.data import PairDataset
from ue_bench.plugin import Plugin

if TYPE_CHECKING:
    from ue_bench.store.imports import ImportStage


class Original(Protocol):
    """One original image file of a dataset, as :meth:`Dataset.originals` hands it over (read-only
    attributes, e.g. a frozen dataclass)."""

    @property
    def where(self) -> str:
        """Where the image comes from, for error messages (file and row, shard and sample)."""

    @property
    def name(self) -> str:
        """The relative output name: a POSIX path without extension (``photos/cat``)."""

    @property
    def captions(self) -> tuple[str, ...]:
        """The image's clean captions, as :meth:`Dataset.load` gives them."""

    def read(self) -> bytes:
        """The image file's bytes as given (raises OSError when it cannot be read)."""


class Dataset(Plugin, abc.ABC):
    """Base class of datasets; subclasses implement :meth:`load`."""

    @abc.abstractmethod
    def load(self, imports: ImportStage | None = None) -> PairDataset:
        """The train and test splits (raises :class:`~ue_bench.errors.UsageError` on bad input).

        ``imports``: the import stage of the artifact store the caller works with
        (:class:`~ue_bench.store.imports.ImportStage`), where a plugin that decodes files caches them
        (``ue_bench.datasets._imports.load_cached`` takes it); None: the default store's
        (:func:`~ue_bench.store.imports.default_imports`). A plugin that decodes nothing ignores it."""

    @classmethod
    def contract_problem(cls) -> str | None:
        try:
            inspect.signature(cls.load).bind(None, None)
        except TypeError:
            return f"{cls.__name__}.load must take the import stage: def load(self, imports=None)"
        return None

    def export_layout(self) -> dict[str, Any]:
        """How ``ue-bench protect`` writes a copy of this dataset: ``{"format": "csv"}`` (open_clip's
        defaults) unless the input had its own layout (``ue_bench.publish.export.Layout`` fields)."""
        return {"format": "csv"}

    def originals(self) -> tuple[list[Original], list[Original]] | None:
        """The original image files behind :meth:`load`'s splits, for ``ue-bench protect``'s
        full-resolution copy: ``(train, test)``, lists of :class:`Original` (``where``, ``name``,
        ``captions``, ``read()``), or None for a dataset with no original files (the default; e.g.
        ``synthetic``, which renders its images).

        Contract: the lists have exactly the order and length of ``self.load().train`` and ``.test``
        (item i is image i, with the same captions); each ``name`` is a relative POSIX path without
        extension, unique within its list, that mirrors the input's file name; ``read()`` returns the
        file's bytes as given, which ``ue_bench.engine.images.decode_image`` decodes (as :meth:`load` did).
        Bad input raises :class:`~ue_bench.errors.UsageError`, as in :meth:`load`; an image file that
        is missing or went away since :meth:`load` raises OSError from ``read()``."""
        return None

    @classmethod
    def example(cls, folder: Path) -> dict[str, Any]:
        """Parameters that load a small example of this dataset, writing any files it needs into
        ``folder`` (used by the conformance checks); the default is the plugin's ``tiny`` preset."""
        return dict(cls.presets.get("tiny", {}))
