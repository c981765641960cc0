"""Learning curves in every cell and the early-stop defense (issue 29): the curve is recorded while the
victim trains without changing it, results.csv carries each metric's peak and its epoch, old cells
without a curve get blanks, and early-stop evaluates the model of its best validation epoch."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ue_bench import METRIC_KEYS, BY_KEY, Defense, PairSplit, Selection, registry
from ue_bench.bench import stages
from ue_bench.errors import UsageError
from ue_bench.results import curve_peaks, result_row
from ue_bench.schema import RESULT_COLUMNS
from ue_bench.store.artifacts import ArtifactStore

DATA = "synthetic:size=48,test_size=12"


def run(out: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ue_bench.cli", "run", "--preset", "tiny", "--dataset", DATA,
                           "--threads", "1", "--out", str(out), "--cache", str(cache), *args],
                          capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    done = run(root / "run", root / "cache", "--attacks", "none,random", "--victims", "tiny-rn:epochs=4,eval_every=3",
               "--defenses", "none,early-stop:patience=1")
    assert done.returncode == 0, done.stderr[-3000:]
    cells = [json.loads(p.read_text()) for p in sorted((root / "run" / "cells").glob("*.json"))]
    return root, cells, pd.read_csv(root / "run" / "results.csv")


def test_curve_epochs_are_every_kth_and_the_last():
    assert stages.curve_epochs(8, 3) == [3, 6, 8]
    assert stages.curve_epochs(6, 3) == [3, 6]
    assert stages.curve_epochs(4, 10) == [4]
    assert stages.curve_epochs(4, 0) == []


def test_every_cell_has_its_curve_and_the_last_point_is_the_final_metrics(matrix):
    _, cells, _ = matrix
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells)
    for c in cells:
        points = c["curve"]["points"]
        assert c["curve"]["every"] == 3
        selection = c["train"].get("selection")
        trained = selection["epochs_trained"] if selection else 4
        assert [p["epoch"] for p in points] == [e for e in stages.curve_epochs(4, 3) if e <= trained]
        if selection is None:
            assert {k: points[-1][k] for k in METRIC_KEYS} == {k: c["metrics"][k] for k in METRIC_KEYS}


def test_results_csv_has_each_metrics_peak_and_its_epoch_beside_it(matrix):
    _, cells, df = matrix
    assert list(df.columns) == list(RESULT_COLUMNS)
    for k in METRIC_KEYS:
        cols = list(df.columns)
        assert cols[cols.index(k) + 1:cols.index(k) + 3] == [f"{k}_peak", f"{k}_peak_epoch"]
    by_id = {c["cell_id"]: c for c in cells}
    for _, row in df.iterrows():
        points = by_id[row["cell_id"]]["curve"]["points"]
        for k in METRIC_KEYS:
            values = [p[k] for p in points]
            best = max(values) if BY_KEY[k].higher_is_better else min(values)
            assert row[f"{k}_peak"] == pytest.approx(best)
            assert row[f"{k}_peak_epoch"] == next(p["epoch"] for p in points if p[k] == best)


def test_early_stop_evaluates_the_model_of_its_best_validation_epoch(matrix):
    root, cells, _ = matrix
    stopped = [c for c in cells if c["labels"]["defense"].startswith("early-stop")]
    assert len(stopped) == 2
    for c in stopped:
        sel = c["train"]["selection"]
        scores = [s["mean_recall"] for s in sel["scores"]]
        assert [s["epoch"] for s in sel["scores"]] == list(range(1, sel["epochs_trained"] + 1))
        assert sel["epoch"] == 1 + scores.index(max(scores))  # the earliest best
        # patience 1: training stops one epoch after the last improvement, or at the recipe's end
        assert sel["epochs_trained"] == min(4, sel["epoch"] + 1)
        assert sel["n_validation"] == round(0.25 * 48) and sel["n_train"] == 48 - sel["n_validation"]
        assert len(c["train"]["loss_per_epoch"]) == sel["epochs_trained"]
        kept = [p for p in c["curve"]["points"] if p["epoch"] == sel["epoch"]]
        if kept:  # the curve sampled the kept epoch: the cell's metrics are that point's
            assert {k: kept[0][k] for k in METRIC_KEYS} == {k: c["metrics"][k] for k in METRIC_KEYS}


def test_curves_change_no_trained_weight_and_the_key_follows_the_test_split(tmp_path):
    """eval_every only samples the curve: the stored weights are those of a run without it, bit for bit;
    the victim key depends on the test split only when there is a curve."""
    torch.set_num_threads(1)
    data = registry.create("datasets", "synthetic", {"size": 48, "test_size": 12}).load()
    other = registry.create("datasets", "synthetic", {"size": 48, "test_size": 12, "seed": 1}).load()
    store = ArtifactStore(tmp_path)
    defense = registry.create("defenses", "none", {})
    defended = stages.DefendedData("k" * 16, data.train)
    models = {}
    for every in (0, 1):
        victim = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16, "eval_every": every})
        trained = stages.train(store, victim, defense, 0, defended, torch.device("cpu"), test=data.test)
        models[every] = trained
        keys = {stages.stage_keys(data.train, registry.create("attacks", "none", {}), None, defense, victim, 0, 1.0,
                                  test)["victim"] for test in (data.test, other.test)}
        assert len(keys) == (2 if every else 1)
    assert "curve" not in models[0].info and len(models[1].info["curve"]["points"]) == 2
    a, b = models[0].model.state_dict(), models[1].model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert models[0].info["loss_per_epoch"] == models[1].info["loss_per_epoch"]


def test_a_cell_without_a_curve_gets_blank_peaks_never_its_final_value():
    cell = {"cell_id": "x", "status": "ok", "wall_s": 1.0, "labels": {k: 0 for k in
            ("dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio")},
            "metrics": {k: 0.5 for k in METRIC_KEYS}}
    peaks = curve_peaks(cell)
    assert all(math.isnan(peaks[f"{k}_peak"]) and peaks[f"{k}_peak_epoch"] is None for k in METRIC_KEYS)
    assert math.isnan(result_row(cell)["i2t_r1_peak"]) and result_row(cell)["i2t_r1"] == 0.5


def test_medr_peaks_are_the_lowest_and_ties_go_to_the_earliest_epoch():
    points = [{"epoch": e, **{k: v for k in METRIC_KEYS}} for e, v in ((2, 3.0), (4, 1.0), (6, 1.0), (8, 2.0))]
    peaks = curve_peaks({"curve": {"every": 2, "points": points}})
    assert peaks["i2t_medr_peak"] == 1.0 and peaks["i2t_medr_peak_epoch"] == 4
    assert peaks["mean_recall_peak"] == 3.0 and peaks["mean_recall_peak_epoch"] == 2


def test_early_stop_holds_out_a_seeded_disjoint_share():
    split = registry.create("datasets", "synthetic", {"size": 40, "test_size": 8}).load().train
    es = registry.create("defenses", "early-stop", {"share": 0.2})
    a, b, c = es.selection(split, 0), es.selection(split, 0), es.selection(split, 1)
    assert len(a.validation) == 8 and len(a.train) == 32
    assert np.array_equal(a.validation_index, b.validation_index)
    assert not np.array_equal(a.validation_index, c.validation_index)
    assert not set(a.train_index) & set(a.validation_index)
    assert a.validation.fingerprint() == split.subset(a.validation_index).fingerprint()
    with pytest.raises(UsageError, match="share=0.5 of 3 images leaves 1"):
        registry.create("defenses", "early-stop", {"share": 0.5}).selection(split.subset(np.arange(3)), 0)


class _Overlapping(Defense):
    """A broken selection: validation images also in training."""

    def selection(self, split, seed):
        idx = np.arange(len(split))
        return Selection(split, split.subset(idx[:4]), idx, idx[:4])


def test_a_selection_that_breaks_the_contract_is_refused_naming_the_defense(tmp_path):
    data = registry.create("datasets", "synthetic", {"size": 32, "test_size": 8}).load()
    victim = registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 16})
    defense = _Overlapping()
    defense.name = "overlapping"
    with pytest.raises(UsageError, match="defense 'overlapping': selection train and validation share images"):
        stages.train(ArtifactStore(tmp_path), victim, defense, 0, stages.DefendedData("k" * 16, data.train),
                     torch.device("cpu"), test=data.test)


def test_bad_early_stop_parameter_is_one_line_exit_2(tmp_path):
    done = run(tmp_path / "run", tmp_path / "cache", "--defenses", "early-stop:share=0.9")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ue-bench: error: defense 'early-stop': parameter 'share'=0.9 is out of bounds [0.01, 0.5]"]
