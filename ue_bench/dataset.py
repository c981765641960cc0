"""The dataset plugin interface (family ``ue_bench.datasets``).

A dataset plugin turns its parameters (a path, a size, ...) into a :class:`~ue_bench.data.PairDataset`:
a train split to protect and learn from and a clean test split to evaluate retrieval on.

A plugin that reads image files also implements :meth:`Dataset.originals`, which hands them, as
given and in :meth:`Dataset.load`'s order, to ``ue-bench protect``'s full-resolution copy, and may
derive its ``Params`` from :class:`PublishParams` (``publish`` and the lift settings), so that a run
can train its victims on that copy, made as a data owner makes it (:meth:`Dataset.publishes_originals`,
:meth:`Dataset.lift`).

Contract (checked by :mod:`ue_bench.testing`): :meth:`Dataset.load` returns splits whose images are
uint8 ``[N, H, W, 3]`` with H = W (the resolution every model of a run is built for) and, per image, a
non-empty list of non-empty caption strings; the same parameters load the same bytes. Bad input is a
:class:`~ue_bench.errors.UsageError` naming the file and row (exit code 2), never a traceback.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ue_bench.data import PairDataset
from ue_bench.engine.lift import LiftSettings
from ue_bench.params import param
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


#: What a run's victims train on (``PublishParams.publish``): ``import``, the protection added to the
#: imported images; ``original``, the full-size files ``ue-bench protect`` publishes (the noise carried
#: onto the original pixels by ``ue_bench.engine.lift``), read back through the import's resize + crop.
PUBLISH = ("import", "original")

_LIFT = LiftSettings()


@dataclass(frozen=True)
class PublishParams:
    """What a run's victims train on (``publish``) and how a full-size copy is made (the ``lift_*``
    settings of :class:`~ue_bench.engine.lift.LiftSettings`: Adam steps of ``lift_lr`` pixel units,
    out of 255, carrying each image's noise from the ``resolution``-px view onto its original pixels;
    ``lift_eot_views`` random resize-crops per step of at least ``lift_eot_scale`` of the image's area).

    ``ue-bench protect`` makes its full-resolution copy with these settings (its ``--lift-*`` flags
    are aliases of them), and a run with ``publish=original`` trains on the copy made with the same
    ones, so the two cannot disagree. The lift settings are left out of the dataset's spec while at
    their defaults (``keyed_at_default=False``), so cell ids and cache keys made before they were
    parameters stay valid. A dataset's ``Params`` take these fields by deriving from this class
    *before* its own fields' class, ``class Params(PublishParams, OwnFields)``: a dataclass lists the
    fields of its last base first, so the dataset's first (positional) parameter stays first."""

    publish: str = param("import", choices=PUBLISH,
                         help="what victims train on: import (the protected import; default) or original (the "
                              "full-size protected files a data owner publishes, resized and cropped as a "
                              "trainer reads them)")
    lift_steps: int = param(_LIFT.steps, lo=0, keyed_at_default=False,
                            help="Adam steps carrying each image's noise onto its full-size pixels (publish=original "
                                 "and protect's full-resolution copy)")
    lift_lr: float = param(_LIFT.lr, lo=0.001, hi=255.0, keyed_at_default=False,
                           help="step size of that optimisation, in pixel units out of 255")
    lift_eot_views: int = param(_LIFT.eot_views, lo=0, keyed_at_default=False,
                                help="random resize-crops (open_clip's RandomResizedCrop) per lift step besides the "
                                     "central view (0: the central view only; more lifts through the whole image, ~165 "
                                     "bytes of memory per pixel)")
    lift_eot_scale: float = param(_LIFT.eot_scale, lo=0.05, hi=1.0, keyed_at_default=False,
                                  help="smallest crop area of those views, a fraction of the image")

    def lift_settings(self, seed: int) -> LiftSettings:
        """The :class:`~ue_bench.engine.lift.LiftSettings` of these parameters, its views seeded by ``seed``."""
        return LiftSettings(steps=self.lift_steps, lr=self.lift_lr, eot_views=self.lift_eot_views,
                            eot_scale=self.lift_eot_scale, seed=seed)

    def lift_changed(self) -> dict[str, Any]:
        """The lift settings that differ from their defaults, by parameter name (``{}``: none)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(PublishParams)
                if f.name.startswith("lift_") and getattr(self, f.name) != f.default}


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

    def publishes_originals(self) -> bool:
        """Whether a run's victims train on the full-size copy a data owner publishes (the dataset's
        ``publish=original``) rather than on the protected import (``publish=import``, or no ``publish``
        parameter)."""
        return getattr(self.params, "publish", "import") == "original"

    def lift(self, seed: int) -> LiftSettings:
        """The lift that carries a protection onto this dataset's original files, for ``ue-bench
        protect``'s full-resolution copy and a run that :meth:`publishes_originals`: the
        :class:`PublishParams` settings (the defaults for a dataset whose ``Params`` do not derive from
        it), its random views seeded by ``seed``."""
        if isinstance(self.params, PublishParams):
            return self.params.lift_settings(seed)
        return dataclasses.replace(_LIFT, seed=seed)

    @classmethod
    def example(cls, folder: Path) -> dict[str, Any]:
        """Parameters that load a small example of this dataset, writing any files it needs into
        ``folder`` (used by the conformance checks); the default is the plugin's ``tiny`` preset."""
        return dict(cls.presets.get("tiny", {}))
