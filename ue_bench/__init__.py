"""ue-bench: a pluggable benchmark for unlearnable-example attacks on CLIP-style contrastive learning.

This package's top level is the plugin API: what a plugin of any family (attacks, victims, datasets,
defenses, reports) derives from, declares its parameters with, receives and returns. ``__all__`` lists
it; a plugin imports these names from ``ue_bench`` (and the conformance checks from
``ue_bench.testing``), plus, where it trains or decodes, the engine modules docs/plugins.md names. The
rest of the core lives in sub-packages that plugins do not import: ``engine/`` (decoding, training,
evaluation, the lift), ``store/`` (the artifact store and its import stage), ``bench/`` (cells, stages,
runner), ``publish/`` (a data owner's copy), ``authoring/`` (scaffold, fixture run) and ``cli/``.
"""

__version__ = "0.1.0"

from ue_bench.attack import Attack
from ue_bench.data import PairDataset, PairSplit, release
from ue_bench.dataset import Dataset, Original, PublishParams
from ue_bench.defense import Defense, Selection
from ue_bench.errors import ProtectionRejected, UsageError
from ue_bench.params import NoParams, param
from ue_bench.plugin import Plugin
from ue_bench.protection import Protection, delta_buffer, with_trigger_text
from ue_bench.registry import register, unregister
from ue_bench.report import FORMATS, Report
from ue_bench.results import RunResults, cell_title, curve_points
from ue_bench.schema import BY_KEY, DERIVED, METRIC_KEYS, NO_SURROGATE, PROTECTION
from ue_bench.seeds import role_seed
from ue_bench.store.imports import ImportStage, default_imports
from ue_bench.victim import Recipe, Victim

__all__ = [
    # every family's root, and the parameters of a plugin
    "Plugin", "param", "NoParams",
    # one base per family, with its contract
    "Attack", "Defense", "Selection", "Victim", "Recipe", "Dataset", "Original", "PublishParams", "Report",
    "FORMATS",
    # what plugins receive and return
    "PairSplit", "PairDataset", "release", "Protection", "delta_buffer", "with_trigger_text",
    "ImportStage", "default_imports", "RunResults", "cell_title", "curve_points",
    # the results' schema, which reports read
    "METRIC_KEYS", "BY_KEY", "DERIVED", "PROTECTION", "NO_SURROGATE",
    # seeds per role, errors, in-process registration
    "role_seed", "UsageError", "ProtectionRejected", "register", "unregister",
    "__version__",
]
