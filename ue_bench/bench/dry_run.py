"""``ue-bench run --dry-run``: the planned cells, what the artifact store already holds, and what the
rest will cost on this device, from timing a few training steps of each model involved (an attack's
:meth:`~ue_bench.attack.Attack.cost_steps` plus its surrogate's clean training, a victim's
training times its defense's :meth:`~ue_bench.defense.Defense.train_cost`) and each defense's data
transform (:meth:`~ue_bench.defense.Defense.transform_seconds`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ue_bench.bench import stages
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.bench.cost import calibration_batch, step_seconds
from ue_bench.data import PairDataset
from ue_bench.bench.matrix import dataset_key
from ue_bench.attacks._surrogate import clean_training
from ue_bench.results import cell_finished

#: Evaluation embeds the test split once: about this many training steps' worth of work.
EVAL_STEP_FRACTION = 0.35


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.1f}min" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def describe_plan(cells, loaded: dict[str, PairDataset], out: Path | None, cache: Path, device: torch.device) -> str:
    """The plan as text: one row per cell with what the artifact store holds and the estimated seconds of
    each stage. ``out`` is the run folder named by ``--out`` (its finished cells count as done), or None
    when a run would start a new one."""
    store = ArtifactStore(cache)
    timings: dict[tuple, float] = {}
    transforms: dict[tuple, float | None] = {}

    def timing(model, data: PairDataset) -> float:
        key = (model.label(), data.train.resolution, model.params.batch_size)
        if key not in timings:
            timings[key] = step_seconds(model, data.train, model.params.batch_size, device)
        return timings[key]

    def transform_timing(defense, data: PairDataset) -> float | None:
        key = (defense.label(), id(data))
        if key not in transforms:
            transforms[key] = defense.transform_seconds(data.train)
        return transforms[key]

    rows, seen_prot, seen_victim, seen_defended = [], set(), set(), set()
    for cell in cells:
        data = loaded[dataset_key(cell.dataset)]
        keys = stages.stage_keys(data.train, cell.attack, cell.surrogate, cell.defense, cell.victim, cell.seed,
                                 cell.poison_ratio, data.test)
        done = out is not None and cell_finished(out, cell.cell_id, data.fingerprint())
        prot_state = store.status("protection", keys["protection"])
        vic_state = store.status("victim", keys["victim"])
        n_poisoned = len(stages.poisoned_indices(len(data.train), cell.poison_ratio, cell.seed))
        protect_s = 0.0
        if not done and prot_state != "cached" and keys["protection"] not in seen_prot:
            steps = cell.attack.cost_steps(n_poisoned)
            epochs = cell.attack.clean_surrogate_epochs()
            if steps is not None and epochs and cell.surrogate is not None:  # as trained_on_clean trains it
                clean = clean_training(cell.surrogate, data.train, epochs)
                steps += cell.surrogate.training_steps(data.train, **clean)
            protect_s = None if steps is None else steps * (timing(cell.surrogate, data) if steps else 0.0)
            seen_prot.add(keys["protection"])
        train_s = 0.0
        if not done and vic_state != "cached" and keys["victim"] not in seen_victim:
            train_s = cell.victim.training_steps(data.train) * timing(cell.victim, data) * cell.defense.train_cost()
            seen_victim.add(keys["victim"])
        defend_s = 0.0
        if (not done and vic_state != "cached" and keys["defended"] not in seen_defended
                and store.status("defended", keys["defended"]) != "cached"):
            defend_s = transform_timing(cell.defense, data)
            seen_defended.add(keys["defended"])
        eval_s = 0.0 if done else EVAL_STEP_FRACTION * timing(cell.victim, data) * max(1, len(data.test) // 64)
        if train_s:  # the learning curve's evaluations of the test split, made while training
            eval_s *= 1 + len(stages.curve_epochs(cell.victim.params.epochs, cell.victim.params.eval_every))
        rows.append({**cell.labels(), "cell": cell.cell_id, "result": "done" if done else "todo",
                     "protection": prot_state, "victim_model": vic_state,
                     "protect_est": protect_s, "defend_est": defend_s, "train_est": train_s,
                     "eval_est": eval_s})
    df = pd.DataFrame(rows)
    estimates = ["protect_est", "defend_est", "train_est", "eval_est"]
    known = df[estimates].apply(pd.to_numeric, errors="coerce")
    total = known.sum().sum()
    unknown = int(df["protect_est"].isna().sum())
    unknown_defended = int(df["defend_est"].isna().sum())
    shown = df.copy()
    for col in estimates:
        shown[col] = [_fmt_s(v) if v is not None and v == v else "unknown" for v in df[col]]
    def timed_at(batch: int) -> str:
        timed = calibration_batch(batch, device)
        return "" if timed == batch else f" (timed at b{timed}, scaled)"

    calib = ", ".join(f"{k[0]}@{k[1]}px/b{k[2]}: {v:.3f}s/step{timed_at(k[2])}"
                      for k, v in timings.items()) or "nothing to time"
    where = (f"{int((df['result'] == 'done').sum())} already done in {out}" if out is not None
             else "no --out, so a run would start in a new folder")
    lines = [
        f"{len(cells)} cell(s); {where}",
        (shown if shown["dataset"].nunique() > 1 else shown.drop(columns=["dataset"])).to_string(index=False),
        f"calibration on {device}: {calib}",
        f"estimated total: {_fmt_s(total)}" + (f" plus {unknown} protection(s) of unknown cost" if unknown else "")
        + (f" plus {unknown_defended} defense transform(s) of unknown cost" if unknown_defended else ""),
    ]
    return "\n".join(lines)

