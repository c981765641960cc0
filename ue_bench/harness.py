"""The protect → defend → train → evaluate pipeline over a matrix of cells.

A cell is one (dataset, attack, surrogate, defense, victim, seed, poison ratio). Each cell's result
is written as its own JSON file, atomically, with its full configuration and provenance; tables are
built from those files alone (see ``reports``), as CLIP_benchmark separates evaluation from building.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import stages
from .attack import Attack
from .cache import ArtifactStore
from .data import PairDataset
from .defense import Defense
from .metrics import METRIC_KEYS
from .provenance import environment
from .registry import Plugin

log = logging.getLogger("ue_bench.harness")

RESULT_COLUMNS = (
    "dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio",
    *METRIC_KEYS, *(f"random_{k}" for k in METRIC_KEYS), "status", "wall_s", "cell_id", "error",
)


@dataclass(frozen=True)
class Cell:
    dataset: Plugin
    attack: Attack
    surrogate: Plugin | None
    defense: Defense
    victim: Plugin
    seed: int
    poison_ratio: float

    def config(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.spec(),
            "attack": self.attack.spec(),
            "surrogate": self.surrogate.spec() if self.surrogate else None,
            "defense": self.defense.spec(),
            "victim": self.victim.spec(),
            "seed": self.seed,
            "poison_ratio": self.poison_ratio,
        }

    def labels(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.label(),
            "attack": self.attack.label(),
            "surrogate": self.surrogate.label() if self.surrogate else "none",
            "defense": self.defense.label(),
            "victim": self.victim.label(),
            "seed": self.seed,
            "poison_ratio": self.poison_ratio,
        }

    @property
    def cell_id(self) -> str:
        return digest(self.config())[:16]


def digest(obj: Any) -> str:
    """sha256 of a JSON-serialisable object in canonical form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


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


def dataset_key(plugin: Plugin) -> str:
    """The identity of a configured dataset plugin, under which its loaded data is shared."""
    return digest(plugin.spec())


def cell_finished(out_dir: Path, cell_id: str) -> bool:
    """A cell is finished when its result JSON exists and says ``ok`` (failed cells are retried)."""
    try:
        return json.loads((out_dir / "cells" / f"{cell_id}.json").read_text()).get("status") == "ok"
    except (OSError, ValueError):
        return False


class Runner:
    """Runs cells in-process against an artifact store; a finished cell (its JSON says ``ok``) is
    skipped, so re-running the same command after a crash resumes where it stopped."""

    def __init__(self, out_dir: Path, cache_dir: Path, device: torch.device,
                 datasets: dict[str, PairDataset] | None = None) -> None:
        """``datasets``: already loaded datasets by :func:`dataset_key`, so they are not loaded again."""
        self.out_dir = out_dir
        self.device = device
        self.store = ArtifactStore(cache_dir)
        self._datasets: dict[str, PairDataset] = dict(datasets or {})
        self._env = environment(device)

    def dataset(self, plugin: Plugin) -> PairDataset:
        key = dataset_key(plugin)
        if key not in self._datasets:
            self._datasets[key] = plugin.load()
        return self._datasets[key]

    def result_path(self, cell: Cell) -> Path:
        return self.out_dir / "cells" / f"{cell.cell_id}.json"

    def finished(self, cell: Cell) -> bool:
        return cell_finished(self.out_dir, cell.cell_id)

    def protect_only(self, cell: Cell) -> None:
        """Build (or find) the cell's protection; errors surface again, recorded, in :meth:`run_cell`."""
        if self.finished(cell):
            return
        try:
            stages.protect(self.store, cell, self.dataset(cell.dataset), self.device)
        except Exception as exc:
            log.error("protection for cell %s failed: %s", cell.cell_id, exc)

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        if self.finished(cell):
            return json.loads(self.result_path(cell).read_text())
        start = time.perf_counter()
        result: dict[str, Any] = {"cell_id": cell.cell_id, "config": cell.config(), "labels": cell.labels()}
        try:
            data = self.dataset(cell.dataset)
            prot_key, prot_info = stages.protect(self.store, cell, data, self.device)
            published = stages.load_published(self.store, prot_key, data.train)
            defended_key, defended = stages.defend(self.store, cell, prot_key, published)
            model, train_info = stages.train_victim(self.store, cell, defended_key, defended, self.device)
            metrics, eval_s = stages.evaluate(cell, model, data.test, self.device)
            result.update(
                status="ok",
                metrics=metrics,
                protection={"key": prot_key, **prot_info},
                train={**train_info, "eval_s": eval_s},
                hashes={"dataset": data.fingerprint(), "published_train": published.fingerprint(),
                        "trained_on": defended.fingerprint(), "protection": prot_key,
                        "defended": defended_key, "victim": train_info["key"]},
            )
        except Exception as exc:  # a failing cell is recorded and the matrix goes on
            log.error("cell %s failed: %s", cell.cell_id, exc)
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        result["wall_s"] = time.perf_counter() - start
        result["provenance"] = {**self._env, "seed": cell.seed}
        write_json_atomic(self.result_path(cell), result)
        return result


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write to a temporary file in the same folder and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def result_row(result: dict[str, Any]) -> dict[str, Any]:
    """The flat results.csv row of one cell result."""
    row = {k: result["labels"][k] for k in ("dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio")}
    row.update(result.get("metrics", {}))
    row.update(status=result["status"], wall_s=round(result["wall_s"], 2), cell_id=result["cell_id"],
               error=result.get("error", ""))
    return row


def load_results(run_dir: Path, cell_ids: list[str] | None = None) -> pd.DataFrame:
    """Cell results of a run directory as one table (one row per cell JSON, in ``cell_ids`` order)."""
    paths = ([run_dir / "cells" / f"{c}.json" for c in cell_ids] if cell_ids is not None
             else sorted((run_dir / "cells").glob("*.json")))
    rows = [result_row(json.loads(p.read_text())) for p in paths]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def write_results_csv(run_dir: Path, cell_ids: list[str] | None = None) -> pd.DataFrame:
    df = load_results(run_dir, cell_ids)
    path = run_dir / "results.csv"
    tmp = path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return df

