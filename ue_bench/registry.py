"""One registry for every plugin family, fed by entry points.

Built-in plugins are declared in ``pyproject.toml`` under the same entry-point groups a third-party
package uses (``ue_bench.attacks``, ``ue_bench.victims``, ...), so there is one discovery path and the
built-ins double as examples. A plugin is a class with a ``Params`` dataclass (see ``params.py``), a
``version`` string that enters cache keys, and a one-line docstring shown by ``ue-bench list``.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

from .errors import UsageError
from .params import NoParams, build_params, parse_specs

FAMILIES = ("attacks", "victims", "datasets", "defenses", "reports")


class Plugin:
    """Base of all plugins: holds the registered name and the validated parameters."""

    Params: ClassVar[type] = NoParams
    version: ClassVar[str] = "1"

    def __init__(self, params: Any = None, name: str | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.name = name or type(self).__name__.lower()

    def spec(self) -> dict[str, Any]:
        """Everything that identifies this configured plugin: the basis of cache keys and provenance."""
        return {"name": self.name, "version": self.version, "params": dataclasses.asdict(self.params)}

    def label(self) -> str:
        """``name`` or ``name:k=v,...`` listing only the parameters that differ from their defaults."""
        default = dataclasses.asdict(self.Params())
        changed = {k: v for k, v in dataclasses.asdict(self.params).items() if default.get(k) != v}
        return self.name if not changed else self.name + ":" + ",".join(f"{k}={v}" for k, v in changed.items())

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


@dataclass
class _Entry:
    name: str
    target: str
    loader: Any


def _entries(family: str) -> dict[str, _Entry]:
    group = f"ue_bench.{family}"
    return {ep.name: _Entry(ep.name, ep.value, ep.load) for ep in entry_points(group=group)}


def names(family: str) -> list[str]:
    _check_family(family)
    return sorted(_entries(family))


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise UsageError(f"unknown plugin family {family!r}; families: {', '.join(FAMILIES)}")


def get(family: str, name: str) -> type[Plugin]:
    """The plugin class registered as ``name`` in ``family``; a typo gets the nearest known name."""
    _check_family(family)
    entries = _entries(family)
    if name not in entries:
        elsewhere = [f for f in FAMILIES if f != family and name in _entries(f)]
        if elsewhere:
            raise UsageError(
                f"{name!r} is not one of the {family}: it is a {elsewhere[0][:-1]}; "
                f"put it in --{elsewhere[0]} (e.g. --{elsewhere[0]} {name})")
        hint = difflib.get_close_matches(name, list(entries), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(
            f"unknown {family[:-1]} {name!r}{extra}; known {family}: {', '.join(sorted(entries)) or '(none)'}"
        )
    cls = entries[name].loader()
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise UsageError(f"entry point {family}:{name} -> {entries[name].target} is not a ue_bench Plugin class")
    return cls


def create(family: str, name: str, values: dict[str, Any] | None = None) -> Plugin:
    """Instantiate a plugin with validated parameters (a ``""`` key sets the first parameter)."""
    cls = get(family, name)
    values = dict(values or {})
    if "" in values:
        first = [f.name for f in dataclasses.fields(cls.Params)]
        if not first:
            raise UsageError(f"{family[:-1]} {name!r} takes no parameters, got {values['']!r}")
        values[first[0]] = values.pop("")
    return cls(build_params(f"{family[:-1]} {name!r}", cls.Params, values), name=name)


def create_many(family: str, text: str, flag: str) -> list[Plugin]:
    """Parse and instantiate a flag value such as ``mem:trigger_len=5,eps=8,em``."""
    return [create(family, name, values) for name, values in parse_specs(text, flag)]
