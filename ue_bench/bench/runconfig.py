"""A run as data: flags, a TOML file equal to them, and packaged presets, merged in one place.

Precedence, highest first: command-line flags, the ``-c`` TOML file, the preset it (or ``--preset``)
names, the built-in defaults. Plugin parameters follow the same order: a value written in a flag
(``--victims tiny-rn:epochs=3``) beats ``[params.victims.tiny-rn]`` in a file, which beats
``[params.victims."*"]`` (applied to every plugin of the family that has that parameter), which beats
the plugin's own values for the active preset (``Plugin.presets[name]``: the one place a plugin's
``tiny`` and ``paper`` values are written, so third-party plugins take part in presets too).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ue_bench import registry
from ue_bench.errors import UsageError
from ue_bench.params import parse_specs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).parents[1] / "presets"  # ue_bench/presets/

#: TOML key → (flag, family or None) for the matrix axes.
AXES = {
    "dataset": ("--dataset", "datasets"),
    "attacks": ("--attacks", "attacks"),
    "surrogates": ("--surrogates", "victims"),
    "defenses": ("--defenses", "defenses"),
    "victims": ("--victims", "victims"),
}
SCALARS = {"seeds": "--seeds", "poison_ratio": "--poison-ratio", "device": "--device", "executor": "--executor",
           "threads": "--threads"}
#: TOML keys naming folders (a run file's own: relative paths are read from the file's folder).
PATHS = ("out", "cache")
DEFAULTS = {"dataset": "synthetic", "attacks": "none", "surrogates": "tiny-rn", "defenses": "none",
            "victims": "tiny-rn", "seeds": "0", "poison_ratio": "1.0", "device": "auto", "executor": "local",
            "threads": None}


@dataclass
class RunConfig:
    values: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    preset: str | None = None

    def plugins(self, key: str, forced: dict[str, Any] | None = None) -> list[registry.Plugin]:
        """Instantiate one axis, merging file/preset parameters under the flag's own; ``forced``
        parameters (from flags such as ``--victim-init``) apply to every plugin of the axis."""
        flag, family = AXES[key]
        fam_params = self.params.get(family, {})
        plugins = []
        for name, values in parse_specs(str(self.values[key]), flag):
            with registry.named_by(flag):
                cls = registry.get(family, name)
                fields = {f.name for f in dataclasses.fields(cls.Params)}
                merged = {k: v for k, v in fam_params.get("*", {}).items() if k in fields}
                merged.update(fam_params.get(name, {}))
                merged.update(values)
                merged.update(forced or {})
                plugins.append(registry.create(family, name, merged, self.preset))
        return plugins


def _as_text(key: str, value: Any, origin: str) -> Any:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, (str, int, float)):
        return value
    raise UsageError(f"{origin}: key {key!r} expects a string or a list, got {type(value).__name__}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"-c: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"-c: {path} is not valid TOML: {exc}") from None


def preset_path(name: str) -> Path:
    known = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    if name not in known:
        raise UsageError(f"--preset: unknown preset {name!r}; known presets: {', '.join(known)}")
    return PRESET_DIR / f"{name}.toml"


def _layer(cfg: RunConfig, data: dict[str, Any], origin: str, base: Path | None = None) -> None:
    """Set ``cfg`` from one TOML layer; ``base`` is the folder of a run file (which may name ``out``
    and ``cache``; a preset may not)."""
    for key, value in data.items():
        if key in ("preset",):
            continue
        if key == "params":
            if not isinstance(value, dict):
                raise UsageError(f"{origin}: [params] must be a table of families")
            for family, table in value.items():
                if family not in registry.FAMILIES or not isinstance(table, dict):
                    raise UsageError(f"{origin}: [params.{family}] is not a plugin family; "
                                     f"families: {', '.join(registry.FAMILIES)}")
                for name, params in table.items():
                    if not isinstance(params, dict):
                        raise UsageError(f"{origin}: [params.{family}.{name}] must be a table of parameters")
                    cfg.params.setdefault(family, {}).setdefault(name, {}).update(params)
        elif key in AXES or key in SCALARS:
            cfg.values[key] = _as_text(key, value, origin)
        elif key in PATHS and base is not None:
            if not isinstance(value, str) or not value:
                raise UsageError(f"{origin}: key {key!r} expects a folder path as a string")
            cfg.values[key] = str(base / Path(value).expanduser())
        else:
            known = ", ".join([*AXES, *SCALARS, *(PATHS if base is not None else ()), "preset", "params"])
            raise UsageError(f"{origin}: unknown key {key!r}; known keys: {known}")
    cfg.sources.append(origin)


def build_run_config(flags: dict[str, Any], config_file: str | None, preset: str | None) -> RunConfig:
    """Merge defaults, preset, file and flags (flags given as None are unset)."""
    cfg = RunConfig(values=dict(DEFAULTS))
    file_data = read_toml(Path(config_file)) if config_file else {}
    preset = preset or file_data.get("preset")
    if preset:
        _layer(cfg, read_toml(preset_path(preset)), f"preset {preset}")
        cfg.preset = preset
    if config_file:
        _layer(cfg, file_data, str(config_file), Path(config_file).parent)
    for key, value in flags.items():
        if value is not None:
            cfg.values[key] = value
    return cfg
