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
import re
from typing import Any, ClassVar

from ue_bench.params import NoParams, spec_values



def plain_text(text: str) -> str:
    """``text`` with reST markup a terminal would show raw unwrapped: ``x`` and :role:`~a.b.x` become x."""
    text = re.sub(r":[a-z]+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)

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
        """The docstring's first line as plain text (reST literals and roles unwrapped), for ``ue-bench list``."""
        return plain_text((cls.__doc__ or "").strip().splitlines()[0]) if cls.__doc__ else ""
