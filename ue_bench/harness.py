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

import numpy as np
import pandas as pd
import torch

from .attack import Attack
from .data import PairDataset, PairSplit
from .defense import Defense
from .errors import ProtectionRejected
from .evaluate import evaluate_retrieval
from .metrics import METRIC_KEYS
from .protection import Protection, publish, verify
from .provenance import environment
from .registry import Plugin
from .training import train_clip

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


def poisoned_indices(n: int, ratio: float, seed: int) -> np.ndarray:
    """The sorted subset of train images that gets protected: fixed per (seed, ratio)."""
    k = int(round(n * ratio))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504F4953]))
    return np.sort(rng.permutation(n)[:k])


def protect_split(cell: Cell, train: PairSplit, device: torch.device) -> tuple[PairSplit, dict]:
    """Run the attack on the chosen subset, verify it, and return the published train split."""
    idx = poisoned_indices(len(train), cell.poison_ratio, cell.seed)
    subset = PairSplit(train.images[idx], [train.captions[i] for i in idx], meta=train.meta)
    start = time.perf_counter()
    prot: Protection = cell.attack.protect(subset, cell.surrogate, cell.seed, device)
    seconds = time.perf_counter() - start
    tokenizer = cell.surrogate.tokenizer() if cell.surrogate else None
    if prot.triggers is not None and tokenizer is None:
        raise ProtectionRejected(f"attack {cell.attack.name!r} returned triggers but has no tokenizer to check them")
    verify(cell.attack.name, prot, subset, cell.attack.budget(), tokenizer)
    protected = publish(subset, prot)
    images = train.images.copy()
    images[idx] = protected.images
    captions = list(train.captions)
    for j, i in enumerate(idx):
        captions[i] = protected.captions[j]
    info = {
        "protect_s": seconds,
        "protection_sha256": prot.fingerprint(),
        "poisoned_indices_sha256": hashlib.sha256(idx.tobytes()).hexdigest(),
        "n_poisoned": int(len(idx)),
        "attack_meta": prot.meta,
    }
    if prot.delta is not None:
        d = prot.delta.reshape(len(idx), -1).astype(np.float64)
        info["linf_mean"] = float(np.abs(d).max(1).mean()) if len(idx) else 0.0
        info["l2_mean"] = float(np.sqrt((d ** 2).sum(1)).mean()) if len(idx) else 0.0
    return PairSplit(images, captions, meta={**train.meta, "protected": True}), info


class Runner:
    """Runs cells in-process, reusing loaded datasets and protections between cells of one run."""

    def __init__(self, out_dir: Path, device: torch.device) -> None:
        self.out_dir = out_dir
        self.device = device
        self._datasets: dict[str, PairDataset] = {}
        self._published: dict[str, tuple[PairSplit, dict]] = {}
        self._env = environment(device)

    def dataset(self, plugin: Plugin) -> PairDataset:
        key = digest(plugin.spec())
        if key not in self._datasets:
            self._datasets[key] = plugin.load()
        return self._datasets[key]

    def published(self, cell: Cell, data: PairDataset) -> tuple[PairSplit, dict]:
        key = digest([data.fingerprint(), cell.attack.spec(), cell.surrogate.spec() if cell.surrogate else None,
                      cell.seed, cell.poison_ratio])
        if key not in self._published:
            self._published[key] = protect_split(cell, data.train, self.device)
        return self._published[key]

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        start = time.perf_counter()
        result: dict[str, Any] = {"cell_id": cell.cell_id, "config": cell.config(), "labels": cell.labels()}
        try:
            data = self.dataset(cell.dataset)
            published, prot_info = self.published(cell, data)
            defended = cell.defense.transform(published, cell.seed)
            model = cell.victim.create_model(data.train.resolution, self.device)
            tokenizer = cell.victim.tokenizer()
            t0 = time.perf_counter()
            recipe = cell.victim.params
            losses = train_clip(
                model, tokenizer, defended, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                weight_decay=recipe.weight_decay, warmup=recipe.warmup, seed=cell.seed, device=self.device,
                desc=f"{cell.victim.name}|{cell.attack.name}", batch_loss=cell.defense.batch_loss(cell.seed))
            train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            metrics = evaluate_retrieval(model, tokenizer, data.test, self.device)
            result.update(
                status="ok",
                metrics=metrics,
                protection=prot_info,
                train={"loss_per_epoch": losses, "train_s": train_s, "eval_s": time.perf_counter() - t0},
                hashes={"dataset": data.fingerprint(), "published_train": published.fingerprint(),
                        "trained_on": defended.fingerprint()},
            )
        except Exception as exc:  # a failing cell is recorded and the matrix goes on
            log.error("cell %s failed: %s", cell.cell_id, exc)
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        result["wall_s"] = time.perf_counter() - start
        result["provenance"] = {**self._env, "seed": cell.seed}
        write_json_atomic(self.out_dir / "cells" / f"{cell.cell_id}.json", result)
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


def load_results(run_dir: Path) -> pd.DataFrame:
    """All cell results of a run directory as one table (one row per cell JSON)."""
    rows = [result_row(json.loads(p.read_text())) for p in sorted((run_dir / "cells").glob("*.json"))]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def write_results_csv(run_dir: Path) -> pd.DataFrame:
    df = load_results(run_dir)
    path = run_dir / "results.csv"
    tmp = path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return df

