"""``ue-bench plugin new FAMILY NAME --dir DIR``: an installable plugin package to start from.

The package holds a ``pyproject.toml`` declaring the entry point ``NAME`` under ``ue_bench.<FAMILY>``,
one module with a minimal working plugin of that family (it passes :mod:`ue_bench.testing`'s checks as
written), a test running those checks, and a README with the commands that follow. Everything is
validated before anything is written: an existing non-empty ``DIR``, an unknown family, a name that is
not a usable entry-point name or one the family already has is a :class:`UsageError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from ue_bench import registry
from ue_bench.errors import UsageError

#: What ``--attacks a:k=v,b`` can carry: no ``:``, ``,``, ``=`` or spaces; letters, digits, ``.``, ``_``, ``-``.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")

PLUGINS = {
    "attacks": '''\
"""$title: a seeded ±eps sign pattern per image, tiled from a small patch (replace with your attack)."""

from dataclasses import dataclass

import numpy as np

from ue_bench import Attack, Protection, param


@dataclass(frozen=True)
class Params:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255")
    patch: int = param(4, lo=1, hi=64, help="side in pixels of the ±eps patch tiled over each image")


class $cls(Attack):
    """A seeded ±eps sign pattern per image, tiled from a small patch."""

    Params = Params
    version = "1"  # bump when the same parameters start producing a different protection
    uses_surrogate = False  # True (the default) if protect() trains or queries the surrogate
    presets = {"tiny": {"patch": 2}, "paper": {"patch": 8}}

    def protect(self, split, surrogate, seed, device):
        n, h, w, _ = split.images.shape  # uint8 [N, H, W, 3]: read it, never modify it
        p = self.params
        rng = np.random.default_rng(seed)
        tiles = rng.choice(np.array([-1, 1], dtype=np.int16), size=(n, p.patch, p.patch, 3))
        reps = (1, -(-h // p.patch), -(-w // p.patch), 1)
        delta = np.tile(tiles, reps)[:, :h, :w] * np.int16(p.eps)  # int16 [N, H, W, 3], |delta| <= eps
        return Protection(delta=delta, meta={"patch": p.patch})
''',
    "defenses": '''\
"""$title: flips a seeded fraction of the images left to right (replace with your defense)."""

from dataclasses import dataclass

import numpy as np

from ue_bench import Defense, PairSplit, param


@dataclass(frozen=True)
class Params:
    fraction: float = param(0.5, lo=0.0, hi=1.0, help="fraction of the images flipped, chosen by the seed")


class $cls(Defense):
    """Flips a seeded fraction of the images left to right."""

    Params = Params
    version = "1"  # bump when the same parameters start producing different output
    transforms_data = True

    def transform(self, split, seed):
        rng = np.random.default_rng(seed)
        flip = rng.random(len(split)) < self.params.fraction
        images = np.array(split.images)  # a copy: the input split is never modified
        images[flip] = images[flip, :, ::-1]
        return PairSplit(images, [list(c) for c in split.captions], meta=dict(split.meta))
''',
    "victims": '''\
"""$title: ue-bench's CPU-scale tiny-rn architecture with its own recipe (replace arch and recipe)."""

from dataclasses import dataclass

import ue_bench.victims  # noqa: F401  (registers ue-bench's tiny-rn config with open_clip)
from ue_bench import Recipe, Victim, param


@dataclass(frozen=True)
class Params(Recipe):
    lr: float = param(5e-4, lo=0.0, hi=1.0, help="AdamW peak learning rate")


class $cls(Victim):
    """tiny-rn (open_clip ModifiedResNet CLIP) trained with AdamW at 5e-4."""

    arch = "tiny-rn"  # any open_clip model name, e.g. "RN50" or one added with open_clip.add_model_config
    Params = Params
    version = "1"
    presets = {"tiny": {"epochs": 2, "batch_size": 16}, "paper": {"epochs": 32, "batch_size": 128}}
''',
    "datasets": '''\
"""$title: solid-colour squares captioned with their colour (replace with your loader)."""

from dataclasses import dataclass

import numpy as np

from ue_bench import Dataset, PairDataset, PairSplit, param

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


@dataclass(frozen=True)
class Params:
    size: int = param(256, lo=1, hi=100000, help="train pairs")
    test_size: int = param(64, lo=1, hi=100000, help="test pairs")
    resolution: int = param(32, lo=8, hi=512, help="image side in pixels")


class $cls(Dataset):
    """Solid-colour squares captioned with their colour."""

    Params = Params
    version = "1"  # bump when the same parameters start loading different bytes
    presets = {"tiny": {"size": 32, "test_size": 8}}

    def _split(self, n: int, offset: int) -> PairSplit:
        names = list(COLOURS)
        picked = [names[(offset + i) % len(names)] for i in range(n)]
        r = self.params.resolution
        images = np.stack([np.full((r, r, 3), COLOURS[c], dtype=np.uint8) for c in picked])
        return PairSplit(images, [[f"a {c} square", f"a square in {c}"] for c in picked])

    def load(self, imports=None):  # imports: the store's import stage, for a plugin that decodes files
        p = self.params
        return PairDataset(self.name, self._split(p.size, 0), self._split(p.test_size, p.size))
''',
    "reports": '''\
"""$title: how many cells of a run finished, per attack (replace with your table)."""

from ue_bench import Report


class $cls(Report):
    """Cells per attack and status."""

    formats = ("md", "csv", "text")
    title = "Cells per attack"
    order = 90  # position on the page among all report plugins (built-ins use 10..80)

    def render(self, run, fmt):
        table = run.frame.groupby(["attack", "status"]).size().unstack(fill_value=0)
        if fmt == "csv":
            return table.to_csv()
        if fmt == "md":
            return f"## {self.title}\\n\\n```\\n{table.to_string()}\\n```\\n"
        return table.to_string()
''',
}

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$article $singular plugin for ue-bench"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ue-bench"]

[project.optional-dependencies]
test = ["pytest"]

# The entry point is how ue-bench finds the plugin: adding or renaming one needs
# `pip install -e .` again; editing the code does not.
[project.entry-points."ue_bench.$family"]
$name = "$module:$cls"

[tool.setuptools]
packages = ["$module"]
'''

TEST = '''\
"""The checks ue-bench runs on every $singular (``ue-bench plugin check $name`` prints the same)."""

from ue_bench.testing import assert_conforms, check_plugin


def test_${module}_conforms():
    assert_conforms(check_plugin("$family", "$name"))
'''

README = '''\
# $dist

A ue-bench $singular plugin, `$name` (`$module:$cls`). Written by `ue-bench plugin new`; the guide
is ue-bench's `docs/plugins.md`.

```bash
pip install -e .                      # again whenever an entry point is added or renamed
ue-bench list $family -v              # $name and its parameters
ue-bench plugin check $name --family $family   # the harness's checks, one line each
python -m pytest tests                # the same checks as a test
$run
```
'''

RUNS = {
    "attacks": "ue-bench run --preset tiny --attacks $name   # a tiny matrix; --preset paper --device cuda on a GPU",
    "defenses": "ue-bench run --preset tiny --attacks random --defenses none,$name",
    "victims": "ue-bench run --preset tiny --victims $name",
    "datasets": "ue-bench run --preset tiny --dataset $name",
    "reports": "ue-bench report runs/<a run>          # every report plugin, this one included",
}


def _class_name(name: str) -> str:
    cls = "".join(part.capitalize() for part in re.split(r"[._-]+", name) if part)
    return cls if cls[0].isalpha() else "Plugin" + cls


def validate(family: str, name: str, folder: Path) -> None:
    """Raise :class:`UsageError` (one line) for an unknown family, an unusable name, a name the family
    already has, or a ``folder`` that exists and is not an empty directory."""
    if family not in registry.FAMILIES:
        raise UsageError(f"unknown plugin family {family!r}; families: {', '.join(registry.FAMILIES)}")
    if not NAME.match(name):
        raise UsageError(f"{name!r} is not a valid entry-point name: use lower-case letters, digits, '.', '_' "
                         f"and '-', starting with a letter or digit (it is what --{family} takes)")
    if name in registry.names(family):
        raise UsageError(f"{family[:-1]} {name!r} already exists (ue-bench list {family}); pick another name")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"--dir {folder} already exists and is not an empty directory")


def new_plugin(family: str, name: str, folder: Path) -> list[Path]:
    """Write the package for plugin ``name`` of ``family`` into ``folder`` (see :func:`validate`) and
    return the files written."""
    validate(family, name, folder)
    module = "ue_bench_" + re.sub(r"[.-]", "_", name)
    values = {"family": family, "singular": family[:-1], "article": "An" if family[0] in "aeiou" else "A",
              "name": name, "module": module,
              "cls": _class_name(name), "dist": "ue-bench-" + name.replace("_", "-").replace(".", "-"),
              "title": f"ue-bench {family[:-1]} {name!r}"}
    values["run"] = Template(RUNS[family]).substitute(values)
    files = {
        folder / "pyproject.toml": PYPROJECT,
        folder / module / "__init__.py": PLUGINS[family],
        folder / "tests" / f"test_{module}.py": TEST,
        folder / "README.md": README,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values))
    return list(files)
