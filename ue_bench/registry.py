"""One registry for every plugin family, fed by entry points (and, in-process, by :func:`register`).

Built-in plugins are declared in ``pyproject.toml`` under the same entry-point groups a third-party
package uses (``ue_bench.attacks``, ``ue_bench.victims``, ...), so there is one discovery path and the
built-ins double as examples. Entry points are read from the installed distributions' metadata: a
plugin added to (or renamed in) a ``pyproject.toml`` is seen after ``pip install -e .`` of that
package again; editing the code of an already declared plugin needs no reinstall. :func:`register`
adds a class in the running process only (tests, notebooks), as timm's ``register_model`` does.

Every class is checked against its family's base when it is loaded (:data:`BASES`): an attack declared
as a defense, a class without a ``Params`` dataclass or with unimplemented abstract methods is refused
with an error naming the entry point and its distribution. A plugin that cannot be imported or fails
that check is *broken*: :func:`broken` lists it, ``ue-bench list`` shows it, and nothing that does not
ask for it is affected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ue_bench.attack import Attack
from ue_bench.dataset import Dataset
from ue_bench.defense import Defense
from ue_bench.errors import UsageError
from ue_bench.params import build_params, parse_specs
from ue_bench.plugin import Plugin
from ue_bench.report import Report
from ue_bench.victim import Victim

#: Each family's entry-point group is ``ue_bench.<family>``; its classes must derive from its base.
BASES: dict[str, type[Plugin]] = {"attacks": Attack, "victims": Victim, "datasets": Dataset,
                                  "defenses": Defense, "reports": Report}
FAMILIES = tuple(BASES)

_REGISTERED: dict[str, dict[str, type]] = {f: {} for f in FAMILIES}

#: The distribution an in-process registration (:func:`register`) is listed with.
IN_PROCESS = "registered in-process"

#: The entry points found per family, and the ``sys.path`` they were read under: scanned once per
#: process (a changed ``sys.path``, which is where installed metadata is found, scans again).
_SCANNED: dict[str, tuple[tuple[str, ...], dict[str, Entry]]] = {}
#: Each entry point's class, or the reason it is broken, loaded once per process.
_LOADED: dict[tuple[str, str, str, str], type[Plugin] | str] = {}


@dataclass(frozen=True)
class Entry:
    """Where a plugin comes from: its entry point (``target``, ``module:Class``) and distribution."""

    family: str
    name: str
    target: str
    distribution: str
    load: Any

    def where(self) -> str:
        return f"entry point ue_bench.{self.family}:{self.name} -> {self.target} ({self.distribution})"


@dataclass(frozen=True)
class Broken:
    """A plugin that cannot be used, with the reason (one line)."""

    entry: Entry
    error: str


def _entries(family: str) -> dict[str, Entry]:
    path = tuple(sys.path)
    if family not in _SCANNED or _SCANNED[family][0] != path:
        scanned = {}
        for ep in entry_points(group=f"ue_bench.{family}"):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
            scanned[ep.name] = Entry(family, ep.name, ep.value, dist, ep.load)
        _SCANNED[family] = (path, scanned)
    found = dict(_SCANNED[family][1])
    for name, cls in _REGISTERED[family].items():
        found[name] = Entry(family, name, f"{cls.__module__}:{cls.__qualname__}", IN_PROCESS,
                            lambda cls=cls: cls)
    return found


def register(family: str, name: str, cls: type | None = None):
    """Register ``cls`` as plugin ``name`` of ``family`` in this process (checked like an entry point);
    without ``cls``, a class decorator. Returns the class."""
    _check_family(family)

    def add(c: type) -> type:
        problem = contract_problem(family, c)
        if problem:
            raise UsageError(f"cannot register {c.__module__}:{c.__qualname__} as {family[:-1]} {name!r}: {problem}")
        _REGISTERED[family][name] = c
        return c

    return add(cls) if cls is not None else add


def unregister(family: str, name: str) -> None:
    """Remove an in-process registration (entry points are not affected)."""
    _REGISTERED[family].pop(name, None)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise UsageError(f"unknown plugin family {family!r}; families: {', '.join(FAMILIES)}")


def contract_problem(family: str, cls: Any) -> str | None:
    """Why ``cls`` is not a valid plugin of ``family`` (one line), or None if it is."""
    base = BASES[family]
    if not isinstance(cls, type):
        return f"expected a class deriving from {base.__module__}.{base.__name__}, got {type(cls).__name__}"
    if not issubclass(cls, base):
        other = next((f for f, b in BASES.items() if issubclass(cls, b)), None)
        also = f" (it is a {BASES[other].__name__}: register it under ue_bench.{other})" if other else ""
        return f"{cls.__name__} does not derive from {base.__module__}.{base.__name__}{also}"
    if not (dataclasses.is_dataclass(cls.Params) and cls.Params.__dataclass_params__.frozen):
        return f"{cls.__name__}.Params must be a frozen dataclass (fields declared with ue_bench.params.param)"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        return f"{cls.__name__} does not implement {missing}"
    own = cls.contract_problem()
    if own:
        return own
    if not cls.summary():
        return f"{cls.__name__} has no docstring (its first line is what ue-bench list shows)"
    for preset, values in cls.presets.items():
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls.Params)})
        if unknown:
            return f"{cls.__name__}.presets[{preset!r}] sets unknown parameter {unknown[0]!r}"
    return None


def _load(entry: Entry) -> type[Plugin]:
    """The entry's class, checked against its family's base; loaded once per entry point (an
    in-process registration is checked when registered). Raises UsageError for a broken plugin."""
    if entry.distribution == IN_PROCESS:
        return entry.load()
    key = (entry.family, entry.name, entry.target, entry.distribution)
    if key not in _LOADED:
        _LOADED[key] = _load_checked(entry)
    found = _LOADED[key]
    if isinstance(found, str):
        raise UsageError(found)
    return found


def _load_checked(entry: Entry) -> type[Plugin] | str:
    """The entry's class, or why it is broken (one line)."""
    try:
        cls = entry.load()
    except Exception as exc:  # any import-time error of a third-party module: the plugin is broken
        return f"{entry.where()} cannot be imported: {type(exc).__name__}: {exc}"
    problem = contract_problem(entry.family, cls)
    if problem:
        return f"{entry.where()} is not a valid {entry.family[:-1]}: {problem}"
    return cls


def names(family: str) -> list[str]:
    """Every registered name of ``family``, broken plugins included (see :func:`broken`)."""
    _check_family(family)
    return sorted(_entries(family))


def distribution(family: str, name: str) -> str:
    """Where plugin ``name`` of ``family`` comes from: ``"<distribution> <version>"`` of its entry point,
    or :data:`IN_PROCESS`. Raises :class:`KeyError` for an unknown name."""
    _check_family(family)
    return _entries(family)[name].distribution


def usable(family: str) -> list[str]:
    """The names of ``family`` that load and satisfy the family's contract."""
    bad = {b.entry.name for b in broken(family)}
    return [n for n in names(family) if n not in bad]


def broken(family: str) -> list[Broken]:
    """Plugins of ``family`` that fail to import or to satisfy the family's base, with the reason."""
    _check_family(family)
    out = []
    for entry in _entries(family).values():
        try:
            _load(entry)
        except UsageError as exc:
            out.append(Broken(entry, str(exc)))
    return sorted(out, key=lambda b: b.entry.name)


def get(family: str, name: str) -> type[Plugin]:
    """The plugin class registered as ``name`` in ``family``; a typo gets the nearest known name.

    Raises :class:`UsageError` for an unknown name, a name of another family, or a broken plugin."""
    _check_family(family)
    entries = _entries(family)
    if name not in entries:
        elsewhere = [f for f in FAMILIES if f != family and name in _entries(f)]
        if elsewhere:
            raise UsageError(
                f"{name!r} is not one of the {family}: it is {'an' if elsewhere[0][0] in 'aeiou' else 'a'} "
                f"{elsewhere[0][:-1]}; "
                f"put it in --{elsewhere[0]} (e.g. --{elsewhere[0]} {name})")
        hint = difflib.get_close_matches(name, list(entries), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(
            f"unknown {family[:-1]} {name!r}{extra}; known {family}: {', '.join(sorted(entries)) or '(none)'}"
        )
    return _load(entries[name])


def create(family: str, name: str, values: dict[str, Any] | None = None, preset: str | None = None) -> Plugin:
    """Instantiate a plugin with validated parameters (a ``""`` key sets the first parameter); with
    ``preset``, the plugin's values for it (``Plugin.presets``) come first and ``values`` win."""
    cls = get(family, name)
    values = {**(cls.presets.get(preset, {}) if preset else {}), **(values or {})}
    if "" in values:
        first = [f.name for f in dataclasses.fields(cls.Params)]
        if not first:
            raise UsageError(f"{family[:-1]} {name!r} takes no parameters, got {values['']!r}")
        values[first[0]] = values.pop("")
    params = build_params(f"{family[:-1]} {name!r}", cls.Params, values,
                          elsewhere=lambda param: _parameter_elsewhere(family, name, param))
    return cls(params, name=name)


def _parameter_elsewhere(family: str, name: str, param: str) -> str:
    """``"; 'block' is a parameter of mem-lowfreq, …"`` where other plugins of ``family`` have ``param``
    (or the name nearest to it), else ``""``: a parameter given to the wrong plugin of a family."""
    owners: dict[str, list[str]] = {}
    for other in usable(family):
        if other != name:
            fields = [f.name for f in dataclasses.fields(get(family, other).Params)]
            for match in difflib.get_close_matches(param, fields, n=1):
                owners.setdefault(match, []).append(other)
    if not owners:
        return ""
    match = param if param in owners else difflib.get_close_matches(param, list(owners), n=1)[0]
    return f"; {match!r} is a parameter of {', '.join(sorted(owners[match]))}"


@contextlib.contextmanager
def named_by(flag: str):
    """Prefix ``flag`` to a :class:`UsageError` raised inside (``--surrogates: unknown victim …``): the
    family alone does not say which flag was wrong, as ``--surrogates`` and ``--victims`` both name victims."""
    try:
        yield
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def create_many(family: str, text: str, flag: str, preset: str | None = None) -> list[Plugin]:
    """Parse and instantiate a flag value such as ``mem:trigger_len=5,eps=8,em``; with ``preset``, each
    plugin's values for it (``Plugin.presets``) come first and the flag's own win. Errors name ``flag``."""
    specs = parse_specs(text, flag)
    with named_by(flag):
        return [create(family, name, values, preset) for name, values in specs]
