"""The root of every plugin family: a registered name, validated parameters and a version.

A plugin is a class with a frozen ``Params`` dataclass whose fields are declared with
:func:`ue_bench.params.param` (typed, bounded), a ``version`` string that enters every cache key built
from it (bump it when the same parameters start producing different output), a docstring whose first
line ``ue-bench list`` shows, and ``presets``: the parameter values it takes under a named preset
(``--preset tiny`` uses ``presets["tiny"]``, the one place a plugin's tiny values are written).
Each family derives its own base from this one (``ue_bench.attack.Attack``, ``ue_bench.defense.Defense``,
``ue_bench.victim.Victim``, ``ue_bench.dataset.Dataset``, ``ue_bench.report.Report``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ue_bench.params import NoParams, spec_values


class Plugin:
    """Base of all plugins: holds the registered name and the validated parameters."""

    Params: ClassVar[type] = NoParams
    version: ClassVar[str] = "1"
    #: preset name → parameter values under that preset (e.g. ``{"tiny": {"epochs": 2}}``).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, params: Any = None, name: str | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.name = name or type(self).__name__.lower()

    def spec(self) -> dict[str, Any]:
        """Everything that identifies this configured plugin: the basis of cache keys and provenance
        (its parameters as :func:`~ue_bench.params.spec_values` gives them)."""
        return {"name": self.name, "version": self.version, "params": spec_values(self.params)}

    def label(self) -> str:
        """``name`` or ``name:k=v,...`` listing only the parameters that differ from their defaults."""
        default = dataclasses.asdict(self.Params())
        changed = {k: v for k, v in dataclasses.asdict(self.params).items() if default.get(k) != v}
        return self.name if not changed else self.name + ":" + ",".join(f"{k}={v}" for k, v in changed.items())

    @classmethod
    def contract_problem(cls) -> str | None:
        """What a family base checks beyond the registry's generic checks (one line), or None."""
        return None

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
