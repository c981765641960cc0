"""Cell results: the per-cell JSON files of a run directory, ``results.csv``, and the reports' view of them.

A cell's JSON (``RUN_DIR/cells/<cell_id>.json``, written atomically by the runner) is the source of
truth; ``results.csv`` and every report are derived from those files alone. Several run directories
can be read as one run (:func:`load_run`), so that seeds or attacks run as separate jobs are summarised
together without copying their cells into a new folder. Column names come from :mod:`ue_bench.schema`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ue_bench.store.atomic import write_file
from ue_bench.errors import UsageError
from ue_bench.schema import BASELINE_FLAGS, BY_KEY, LABELS, METRIC_KEYS, PEAK_COLUMNS, PROTECTION_FIELDS, RESULT_COLUMNS

log = logging.getLogger("ue_bench.results")

#: Keys every cell record has (written by ``ue_bench.bench.runner``).
CELL_KEYS = ("cell_id", "config", "labels", "status")


def cell_title(labels: dict[str, Any]) -> str:
    """One line naming a cell from its labels: ``dataset · attack ← surrogate · defense · victim · seed s
    · ratio r`` (progress lines and the reports' provenance)."""
    return (f"{labels['dataset']} · {labels['attack']} ← {labels['surrogate']} · {labels['defense']}"
            f" · {labels['victim']} · seed {labels['seed']} · ratio {labels['poison_ratio']:g}")


def cell_path(run_dir: Path, cell_id: str) -> Path:
    return Path(run_dir) / "cells" / f"{cell_id}.json"


def cell_finished(run_dir: Path, cell_id: str, dataset: str) -> bool:
    """A cell is finished when its result JSON exists, says ``ok`` (failed cells are retried) and was
    computed on ``dataset``, the fingerprint of the data the cell would use now
    (:meth:`~ue_bench.data.PairDataset.fingerprint`). The cell id names the configuration, not the
    data, so a cell of the same id computed on data that has changed since is run again, with a
    warning."""
    path = cell_path(run_dir, cell_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if record.get("status") != "ok":
        return False
    was = record.get("hashes", {}).get("dataset")
    if was != dataset:
        log.warning("%s was computed on other data (dataset %s, now %s): it is run again", path,
                    (was or "not recorded")[:12], dataset[:12])
        return False
    return True


def baseline_flags(cell: dict[str, Any]) -> dict[str, bool]:
    """Whether the cell's attack is the clean baseline and its defense the no-defense baseline, as the
    cell records it. Cells written before the record existed (``docs/results`` of 2026-11) lack it;
    for them the planner of that time made the attack ``none`` the clean one and ``none`` the
    no-defense one, which is what is read here."""
    if "baseline" in cell:
        return {k: bool(cell["baseline"][k]) for k in BASELINE_FLAGS}
    labels = cell["labels"]
    return {"clean_attack": labels["attack"] == "none", "baseline_defense": labels["defense"] == "none"}


def curve_points(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of a cell's learning curve (``{"epoch": e, <metric>: value}``, by epoch), or ``[]`` for a
    cell without one: written before curves existed (2026-12-06), or with ``eval_every=0``."""
    curve = cell.get("curve") or {}
    return sorted(curve.get("points") or [], key=lambda p: p["epoch"])


def curve_peaks(cell: dict[str, Any]) -> dict[str, Any]:
    """``<metric>_peak`` and ``<metric>_peak_epoch`` for every metric (:data:`~ue_bench.schema.PEAK_COLUMNS`):
    the best value over the cell's learning curve (the highest recall, the lowest median rank) and the
    earliest epoch reaching it; NaN and None for a cell without a curve (never filled in from the final
    value)."""
    points = curve_points(cell)
    out: dict[str, Any] = {}
    for k in METRIC_KEYS:
        values = [(p[k], p["epoch"]) for p in points if _number(p.get(k))]
        if not values:
            out.update({f"{k}_peak": math.nan, f"{k}_peak_epoch": None})
            continue
        sign = 1 if BY_KEY[k].higher_is_better else -1
        best = max(v * sign for v, _ in values) * sign
        out.update({f"{k}_peak": best, f"{k}_peak_epoch": min(e for v, e in values if v == best)})
    return out


def result_row(cell: dict[str, Any]) -> dict[str, Any]:
    """The flat ``results.csv`` row of one cell record: labels, each metric with its peak over the
    learning curve and the peak's epoch (:func:`curve_peaks`), the random-guess levels, status."""
    row = {k: cell["labels"][k] for k in LABELS}
    row.update(cell.get("metrics", {}))
    if cell.get("status") == "ok":
        row.update(curve_peaks(cell))
    row.update(status=cell["status"], wall_s=round(cell["wall_s"], 2), cell_id=cell["cell_id"],
               error=cell.get("error", ""))
    return row


def write_results_csv(run_dir: Path, cell_ids: list[str]) -> pd.DataFrame:
    """``RUN_DIR/results.csv``: one row per cell of ``cell_ids``, in that order."""
    rows = [result_row(json.loads(cell_path(run_dir, c).read_text())) for c in cell_ids]
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for col in PEAK_COLUMNS[1::2]:  # epochs are whole numbers, blank without a curve
        df[col] = df[col].astype("Int64")
    write_file(Path(run_dir) / "results.csv", df.to_csv(index=False))
    return df


@dataclass
class RunResults:
    """The raw cell records and the file each came from (for provenance), and one flat row per cell
    (for aggregation; columns: labels, metrics, ``random_<metric>``, protection fields, baseline flags,
    status, times, ``cell_id``, ``source``)."""

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
    metrics = cell.get("metrics") or {}
    row: dict[str, Any] = {k: cell["labels"][k] for k in LABELS}
    row["poison_ratio"] = float(row["poison_ratio"])
    row.update({k: metrics.get(k, math.nan) for k in METRIC_KEYS})
    row.update({f"random_{k}": metrics.get(f"random_{k}", math.nan) for k in METRIC_KEYS})
    row.update({k: math.nan if v is None else v for k, v in curve_peaks(cell).items()})
    row.update({k: prot.get(k, math.nan) if prot.get(k) is not None else math.nan for k in PROTECTION_FIELDS})
    row.update(baseline_flags(cell))
    row.update(
        protection_key=prot.get("key", ""), protection_device=prot.get("device", ""),
        train_s=(cell.get("train") or {}).get("train_s", math.nan),
        defended_key=(cell.get("defense") or {}).get("key", ""),
        defend_s=(cell.get("defense") or {}).get("defend_s", math.nan),
        device=(cell.get("provenance") or {}).get("device", ""),
        status=cell["status"], wall_s=cell.get("wall_s", math.nan), cell_id=cell["cell_id"],
        error=cell.get("error", ""))
    return row


def _read_cell(path: Path) -> dict[str, Any]:
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable cell result: {exc}") from None
    problem = cell_problem(cell)
    if problem:
        raise UsageError(f"{path} is not a ue-bench cell result ({problem})")
    return cell


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell_problem(cell: Any) -> str | None:
    """What makes ``cell`` unusable as a cell record (None: nothing): the keys and types the reports read."""
    missing = [k for k in CELL_KEYS if not isinstance(cell, dict) or k not in cell]
    if missing:
        return f"no {missing[0]!r}"
    labels = cell["labels"]
    if not isinstance(labels, dict) or not all(k in labels for k in LABELS):
        return "incomplete labels"
    if not _number(labels["seed"]) or not _number(labels["poison_ratio"]):
        return "labels seed and poison_ratio must be numbers"
    if not isinstance(cell["cell_id"], str) or cell["status"] not in ("ok", "failed"):
        return "cell_id must be a string and status 'ok' or 'failed'"
    if "wall_s" in cell and not _number(cell["wall_s"]):
        return "wall_s is not a number"
    for key in ("metrics", "protection", "train", "provenance", "baseline"):
        if cell.get(key) is not None and not isinstance(cell[key], dict):
            return f"{key!r} is not an object"
    if cell["status"] == "ok":
        metrics = cell.get("metrics") or {}
        bad = next((k for k in METRIC_KEYS if not _number(metrics.get(k))), None)
        if bad:
            return f"status ok without a numeric metrics.{bad}"
    prot = cell.get("protection") or {}
    bad = next((k for k in PROTECTION_FIELDS if prot.get(k) is not None and not _number(prot[k])), None)
    if bad:
        return f"protection.{bad} is not a number"
    curve = cell.get("curve")
    if curve is not None:
        points = curve.get("points") if isinstance(curve, dict) else None
        if not isinstance(points, list) or not all(isinstance(p, dict) and _number(p.get("epoch")) for p in points):
            return "curve is not an object whose points each have a numeric epoch"
    return None


def _without_timings(cell: dict[str, Any]) -> dict[str, Any]:
    """``cell`` less what its own command timed (``wall_s``, ``train.eval_s``): two jobs that share a cell,
    the clean baseline say, evaluate the same cached victim at different speeds."""
    out = {k: v for k, v in cell.items() if k != "wall_s"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "eval_s"}
    return out


def load_run(run_dirs: Path | str | Sequence[Path | str]) -> RunResults:
    """All ``cells/*.json`` of one run directory or several. A folder without any is a usage error (exit
    code 2), as is a file that is not a cell. A cell in two folders is read once, from the first folder
    that holds it, if both records are equal but for their timings (a copied cell, or one that two jobs
    both ran, such as the clean baseline) and is a usage error if they differ otherwise: the report could
    not say which it shows."""
    dirs = (Path(run_dirs),) if isinstance(run_dirs, (str, Path)) else tuple(Path(d) for d in run_dirs)
    cells: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for run_dir in dirs:
        paths = sorted((run_dir / "cells").glob("*.json"))
        if not paths:
            raise UsageError(f"{run_dir} holds no cell results (expected {run_dir / 'cells'}/*.json)")
        for p in paths:
            cell = _read_cell(p)
            cid = cell["cell_id"]
            if cid in cells and _without_timings(cells[cid]) != _without_timings(cell):
                raise UsageError(f"{p} and {sources[cid]} hold different results for cell {cid}: "
                                 "report the two run directories separately")
            cells.setdefault(cid, cell)
            sources.setdefault(cid, p)
    _check_labels(cells, sources)
    frame = pd.DataFrame([_row(c) for c in cells.values()])
    frame["source"] = [str(sources[c]) for c in frame["cell_id"]]
    return RunResults(dirs, cells, sources, frame)


def _check_labels(cells: dict[str, dict[str, Any]], sources: dict[str, Path]) -> None:
    """Refuse (UsageError) cells that every table would put in one row — the same labels but for the
    seed — while their settings differ: e.g. runs made before and after a plugin's default changed, where
    ``tiny-rn`` names two different victims. Seeds of one setting differ in ``seed`` alone."""
    seen: dict[str, tuple[dict[str, Any], str]] = {}
    for cid, cell in cells.items():
        key = json.dumps({k: v for k, v in cell["labels"].items() if k != "seed"}, sort_keys=True, default=str)
        config = {k: v for k, v in (cell.get("config") or {}).items() if k != "seed"}
        if key not in seen:
            seen[key] = (config, cid)
            continue
        other, first = seen[key]
        differ = sorted(k for k in set(config) | set(other) if config.get(k) != other.get(k))
        if differ:
            labels = ", ".join(f"{k} {v}" for k, v in cell["labels"].items() if k != "seed")
            raise UsageError(f"{sources[cid]} and {sources[first]} are both labelled {labels} but were made "
                             f"with different {' and '.join(differ)} settings, which a report would mix in one "
                             f"row: report them separately")
