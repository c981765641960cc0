"""Typed, bounded plugin parameters, settable from the CLI and from TOML.

A plugin declares its parameters as a dataclass whose fields carry bounds in their metadata
(``param(8, lo=0, hi=32, help=...)``). One coercion path serves ``--attacks mem:eps=8`` and a TOML
table alike, so a value is checked the same way wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from ue_bench.errors import UsageError


def param(default: Any, *, lo: float | None = None, hi: float | None = None,
          choices: tuple | None = None, help: str = "", keyed_at_default: bool = True) -> Any:
    """A dataclass field with bounds (inclusive), an optional set of choices and a help text.

    ``keyed_at_default=False`` leaves the parameter out of :func:`spec_values` (so of the plugin's
    spec: its cache keys, cell ids and recorded config) while it holds its default: for a parameter
    added to a plugin whose keys are already in use, so that every key made before it stays valid and
    only a value other than the default makes new ones."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "help": help,
                                            "keyed_at_default": keyed_at_default})


def spec_values(params: Any) -> dict[str, Any]:
    """The parameter values that identify ``params`` (a parameter dataclass instance): every field,
    except those declared ``keyed_at_default=False`` while they hold their default."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if f.metadata.get("keyed_at_default", True) or getattr(params, f.name) != f.default}


@dataclass(frozen=True)
class NoParams:
    """For plugins without parameters."""


def _base_type(tp: Any) -> tuple[type, bool]:
    """The concrete scalar type of a field annotation and whether it admits ``None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _coerce(owner: str, name: str, tp: type, raw: Any) -> Any:
    base, optional = _base_type(tp)
    if optional and (raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", ""))):
        return None
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if base is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(str(raw)) if not isinstance(raw, (int, float)) else int(raw)
        if base is float:
            return float(raw)
        if base is str:
            return str(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{owner}: parameter {name!r} expects {base.__name__}, got {raw!r}") from None
    raise TypeError(f"{owner}: unsupported parameter type {tp!r} for {name!r}")


def build_params(owner: str, cls: type, values: dict[str, Any],
                 elsewhere: Callable[[str], str] | None = None) -> Any:
    """Instantiate the parameter dataclass ``cls`` from raw values, enforcing types and bounds. An unknown
    parameter with no near name among ``cls``'s gets ``elsewhere(name)`` appended to its error (where else
    it is a parameter, e.g. of another plugin of the family)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(fields) or "(none)"
        hint = difflib.get_close_matches(unknown[0], list(fields), n=1)
        guess = f" (did you mean {hint[0]!r}?)" if hint else ""
        other = elsewhere(unknown[0]) if elsewhere and not hint else ""
        raise UsageError(f"{owner}: unknown parameter {unknown[0]!r}{guess}; known parameters: {known}{other}")
    kwargs = {}
    for name, raw in values.items():
        f = fields[name]
        value = _coerce(owner, name, hints[name], raw)
        meta = f.metadata
        if value is not None:
            if meta.get("choices") and value not in meta["choices"]:
                raise UsageError(f"{owner}: parameter {name!r} must be one of {list(meta['choices'])}, got {value!r}")
            lo, hi = meta.get("lo"), meta.get("hi")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"[{lo}, {hi}]" if lo is not None and hi is not None else (
                    f"(expected at least {lo})" if lo is not None else f"(expected at most {hi})")
                raise UsageError(f"{owner}: parameter {name!r}={value!r} is out of bounds {bounds}")
        kwargs[name] = value
    return cls(**kwargs)


def describe(cls: type) -> list[dict[str, Any]]:
    """Name, type, default, bounds and help of each parameter, for ``ue-bench list``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, optional = _base_type(hints[f.name])
        out.append({
            "name": f.name,
            "type": base.__name__ + (" | None" if optional else ""),
            "default": f.default,
            "lo": f.metadata.get("lo"),
            "hi": f.metadata.get("hi"),
            "choices": f.metadata.get("choices"),
            "help": f.metadata.get("help", ""),
        })
    return out


def parse_specs(text: str, flag: str) -> list[tuple[str, dict[str, str]]]:
    """Split a flag value such as ``mem:trigger_len=5,eps=8,em,jpeg:quality=10`` into plugin specs.

    Commas separate both plugins and parameters: an item with ``=`` belongs to the plugin before it,
    an item without one starts a new plugin. ``csv:data/pairs.csv`` (no ``=`` after the colon) sets
    the plugin's first parameter, so a path can be given positionally.
    """
    specs: list[tuple[str, dict[str, str]]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            raise UsageError(f"{flag}: empty entry in {text!r}")
        if ":" in item:
            name, rest = item.split(":", 1)
            params: dict[str, str] = {}
            if "=" in rest:
                key, val = rest.split("=", 1)
                params[key.strip()] = val.strip()
            elif rest:
                params[""] = rest.strip()
            specs.append((name.strip(), params))
        elif "=" in item:
            if not specs:
                raise UsageError(f"{flag}: parameter {item!r} comes before any plugin name")
            key, val = item.split("=", 1)
            specs[-1][1][key.strip()] = val.strip()
        else:
            specs.append((item, {}))
    return specs
