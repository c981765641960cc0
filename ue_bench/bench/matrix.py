"""The matrix: cells and their planning.

A cell is one (dataset, attack, surrogate, defense, victim, seed, poison ratio). Its id hashes its
configuration (every plugin's name, version and parameters; seed; poison ratio), so the same cell has
the same id in every run and a rerun of a command finds the cells it already finished.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ue_bench.attack import Attack
from ue_bench.store.artifacts import canonical_sha256
from ue_bench.dataset import Dataset
from ue_bench.defense import Defense
from ue_bench.schema import NO_SURROGATE
from ue_bench.victim import Victim


@dataclass(frozen=True)
class Cell:
    dataset: Dataset
    attack: Attack
    surrogate: Victim | None
    defense: Defense
    victim: Victim
    seed: int
    poison_ratio: float

    def _plugins(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "attack": self.attack, "surrogate": self.surrogate,
                "defense": self.defense, "victim": self.victim}

    def config(self) -> dict[str, Any]:
        """What identifies the cell: every plugin's spec, the seed and the poison ratio."""
        specs = {k: p.spec() if p is not None else None for k, p in self._plugins().items()}
        return {**specs, "seed": self.seed, "poison_ratio": self.poison_ratio}

    def labels(self) -> dict[str, Any]:
        """The short names the tables show (``name:k=v`` for non-default parameters)."""
        names = {k: p.label() if p is not None else NO_SURROGATE for k, p in self._plugins().items()}
        return {**names, "seed": self.seed, "poison_ratio": self.poison_ratio}

    def baseline(self) -> dict[str, bool]:
        """Which baselines the cell is: the reports compare against these instead of matching names."""
        return {"clean_attack": self.attack.is_clean, "baseline_defense": self.defense.is_baseline}

    @property
    def cell_id(self) -> str:
        return canonical_sha256(self.config())[:16]


def plan(datasets, attacks, surrogates, defenses, victims, seeds, ratios) -> list[Cell]:
    """The cells of a matrix, without duplicates: an attack that uses no surrogate gets one cell
    instead of one per surrogate, and the clean baseline one cell instead of one per poison ratio."""
    cells, seen = [], set()
    for ds, atk, sur, dfn, vic, seed, ratio in itertools.product(
            datasets, attacks, surrogates, defenses, victims, seeds, ratios):
        sur = sur if atk.uses_surrogate else None
        ratio = 0.0 if atk.is_clean else ratio
        cell = Cell(ds, atk, sur, dfn, vic, seed, ratio)
        if cell.cell_id not in seen:
            seen.add(cell.cell_id)
            cells.append(cell)
    return cells


def dataset_key(plugin: Dataset) -> str:
    """The identity of a configured dataset plugin, under which its loaded data is shared."""
    return canonical_sha256(plugin.spec())
