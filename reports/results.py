"""The cell results of one or more run directories, read from ``cells/*.json`` alone, as the reports need them.

``results.csv`` is not read: it holds only the retrieval columns, and every report must be rebuildable
from the per-cell JSON (the source of truth, written atomically by the harness). Several run directories
are read as one run, so that seeds or attacks run separately (one job per seed, say) are summarised
together without copying their cells into a new folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ue_bench.errors import UsageError
from ue_bench.metrics import METRIC_KEYS

LABELS = ("dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio")
# A protection's identity: what the harness keys its artifact on, minus the seed (which the reports average over).
PROTECTION = ("dataset", "attack", "surrogate", "poison_ratio")
# The clean baseline as the harness plans it: attack "none", nothing poisoned.
CLEAN_ATTACK = "none"
# Imperceptibility and cost fields of a cell's ``protection`` record; psnr/ssim are optional (see imperceptibility.py).
PROTECTION_FIELDS = ("linf_mean", "l2_mean", "psnr_mean", "ssim_mean", "protect_s")


@dataclass
class RunResults:
    """The raw cell records and the file each came from (for provenance), and one flat row per cell (for
    aggregation)."""

    run_dirs: tuple[Path, ...]
    cells: dict[str, dict[str, Any]]
    sources: dict[str, Path]
    frame: pd.DataFrame
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " + ".join(d.name for d in self.run_dirs)

    @property
    def ok(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] != "ok"]


def _row(cell: dict[str, Any]) -> dict[str, Any]:
    prot = cell.get("protection") or {}
    row: dict[str, Any] = {k: cell["labels"][k] for k in LABELS}
    row["poison_ratio"] = float(row["poison_ratio"])
    row.update({k: (cell.get("metrics") or {}).get(k, math.nan) for k in METRIC_KEYS})
    row.update({f"random_{k}": (cell.get("metrics") or {}).get(f"random_{k}", math.nan) for k in METRIC_KEYS})
    row.update({k: prot.get(k, math.nan) if prot.get(k) is not None else math.nan for k in PROTECTION_FIELDS})
    row.update(
        protection_key=prot.get("key", ""), protection_device=prot.get("device", ""),
        train_s=(cell.get("train") or {}).get("train_s", math.nan),
        device=(cell.get("provenance") or {}).get("device", ""),
        status=cell["status"], wall_s=cell.get("wall_s", math.nan), cell_id=cell["cell_id"],
        error=cell.get("error", ""))
    return row


def load_run(run_dirs: Path | str | Sequence[Path | str]) -> RunResults:
    """All ``cells/*.json`` of one run directory or several. A folder without any is a usage error (exit
    code 2). A cell in two folders is read once if both records are equal (a copied cell) and is a usage
    error if they differ: the report could not say which of the two results it shows."""
    dirs = (Path(run_dirs),) if isinstance(run_dirs, (str, Path)) else tuple(Path(d) for d in run_dirs)
    cells: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for run_dir in dirs:
        paths = sorted((run_dir / "cells").glob("*.json"))
        if not paths:
            raise UsageError(f"{run_dir} holds no cell results (expected {run_dir / 'cells'}/*.json)")
        for p in paths:
            try:
                cell = json.loads(p.read_text())
            except ValueError as exc:
                raise UsageError(f"{p} is not valid JSON: {exc}") from None
            cid = cell["cell_id"]
            if cid in cells and cells[cid] != cell:
                raise UsageError(f"{p} and {sources[cid]} hold different results for cell {cid}: "
                                 "report the two run directories separately")
            cells.setdefault(cid, cell)
            sources.setdefault(cid, p)
    frame = pd.DataFrame([_row(c) for c in cells.values()])
    frame["source"] = [str(sources[c]) for c in frame["cell_id"]]
    return RunResults(dirs, cells, sources, frame)
