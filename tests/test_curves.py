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
        assert c["hashes"]["trained_on"] == c["train"]["trained_on_sha256"] != c["hashes"]["published_train"]
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
        "ue-bench: error: --defenses: defense 'early-stop': parameter 'share'=0.9 is out of bounds [0.01, 0.5]"]


def test_a_batch_larger_than_early_stops_training_share_is_refused_up_front(tmp_path):
    # batch 30 fits the 48 training images, not the 24 that early-stop:share=0.5 leaves to train on
    done = run(tmp_path / "run", tmp_path / "cache", "--victims", "tiny-rn:batch_size=30",
               "--defenses", "none,early-stop:share=0.5")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ue-bench: error: --victims tiny-rn:")
    assert "batch_size 30 is larger than the 24 of 48 training images" in lines[0]
    assert "--defenses early-stop:share=0.5 trains on" in lines[0]
    assert not (tmp_path / "run" / "cells").exists()


def test_early_stop_counts_its_training_share_without_copying_the_split(monkeypatch):
    defense = registry.create("defenses", "early-stop", {"share": 0.25})
    split = PairSplit(np.zeros((10, 8, 8, 3), np.uint8), [[f"pair {i}"] for i in range(10)])
    expected = len(defense.selection(split, 0).train)
    monkeypatch.setattr(PairSplit, "subset", lambda *a: pytest.fail("train_share copied the split"))
    assert defense.train_share(split, 0) == expected == 8
    with pytest.raises(UsageError, match="share=0.25 of 3 images leaves 1 to train on, expected at least 2"):
        defense.train_share(PairSplit(np.zeros((3, 8, 8, 3), np.uint8), [["a"], ["b"], ["c"]]), 0)


# --- reports: final against peak, learning curves, legible figures -------------------------------------

LONG = {"tiny-rn": "tiny-rn:augment=none,init=/work/checkpoints/tiny-rn-pretrained-on-cc3m.pt",
        "tiny-vit": "tiny-vit:augment=openclip-strong,lr=0.0003,epochs=40,eval_every=5"}


@pytest.fixture(scope="module")
def fixture_run_dir(tmp_path_factory):
    from ue_bench.authoring import fixture_run
    root = tmp_path_factory.mktemp("fixture")
    fixture_run.write(root)
    return root


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """The fixture run with long victim, surrogate and attack labels."""
    from ue_bench.authoring import fixture_run
    root = tmp_path_factory.mktemp("long")
    fixture_run.write(root)
    for p in (root / "cells").glob("*.json"):
        c = json.loads(p.read_text())
        c["labels"]["victim"] = LONG[c["labels"]["victim"]]
        c["labels"]["surrogate"] = LONG.get(c["labels"]["surrogate"], c["labels"]["surrogate"])
        if c["labels"]["attack"] == "mem":
            c["labels"]["attack"] = "mem:trigger_len=5,hotflip_select=sample,eps=8"
        p.write_text(json.dumps(c))
    from ue_bench.results import load_run
    return load_run(root)


def test_peak_table_shows_final_and_peak_and_says_when_a_cell_has_no_curve(fixture_run_dir):
    from ue_bench.authoring.fixture_run import CLEAN, PROTECTED_CURVE, SCORES, SPLIT
    from ue_bench.reports.tables import NO_CURVE, peaks
    from ue_bench.results import load_run
    run = load_run(fixture_run_dir)
    long = peaks(run)
    row = long[(long["attack"] == "mem") & (long["surrogate"] == "tiny-rn") & (long["poison_ratio"] == 1.0)
               & (long["defense"] == "none") & (long["victim"] == "tiny-rn") & (long["metric"] == "mean_recall")].iloc[0]
    clean = CLEAN["none"]["tiny-rn"]
    finals = [c * (f + SPLIT["tiny-rn"]) for c, f in zip(clean, SCORES[("mem", "tiny-rn", 1.0, "none")])]
    best = max(PROTECTED_CURVE)
    assert row["final"] == pytest.approx(np.mean(finals))
    assert row["peak"] == pytest.approx(np.mean([f + (c - f) * best for f, c in zip(finals, clean)]))
    assert row["peak_epochs"] == "10,10,10" and row["without_curve"] == 0
    jpeg = long[(long["defense"] == "jpeg") & (long["metric"] == "mean_recall")]
    assert (jpeg["peak_n"] == 0).all() and jpeg["peak"].isna().all() and (jpeg["without_curve"] == 3).all()
    md = registry.create("reports", "peak-table", {}).render(run, "md")
    assert NO_CURVE in md and "upper bound" in md
    csv = pd.read_csv(__import__("io").StringIO(registry.create("reports", "peak-table", {}).render(run, "csv")))
    assert set(csv["metric"]) == set(METRIC_KEYS)


def test_learning_curve_data_are_seed_means_per_epoch(fixture_run_dir):
    from ue_bench.authoring.fixture_run import CLEAN, CLEAN_CURVE, CURVE_EPOCHS
    from ue_bench.reports.tables import curves
    from ue_bench.results import load_run
    df = curves(load_run(fixture_run_dir))
    clean = df[df["clean_attack"] & (df["victim"] == "tiny-rn") & (df["defense"] == "none")].sort_values("epoch")
    assert list(clean["epoch"]) == list(CURVE_EPOCHS)
    assert clean["mean"].tolist() == pytest.approx([np.mean(CLEAN["none"]["tiny-rn"]) * f for f in CLEAN_CURVE])
    assert (clean["n"] == 3).all()
    assert not (df["defense"] == "jpeg").any()  # cells without a curve contribute nothing


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    import matplotlib.text
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = {id(t) for ax in fig.axes if not ax.axison for t in ax.findobj(matplotlib.text.Text)}  # panels turned off
    for ax in fig.axes:  # tick labels outside the view limits exist but are not drawn
        for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            span = (hi - lo) * 1e-9
            hidden |= {id(lab) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                       if not lo - span <= tick.get_loc() <= hi + span for lab in (tick.label1, tick.label2)}
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def test_the_overlap_check_sees_overlapping_texts():
    import matplotlib.pyplot as plt
    fig = plt.figure()
    fig.text(0.5, 0.5, "a long label here")
    fig.text(0.52, 0.5, "another long label")
    assert _overlapping_texts(fig)
    plt.close(fig)


@pytest.mark.parametrize("name", ["transfer", "curve", "learning"])
def test_figures_stay_legible_with_long_labels(long_run, name):
    import matplotlib.pyplot as plt
    from ue_bench.reports import figures, tables
    data = {"transfer": tables.transfer, "curve": tables.poison_curve, "learning": tables.curves}[name](long_run)
    with plt.rc_context(figures.STYLE):
        fig = getattr(figures, f"{name}_figure")(data)
        try:
            assert _overlapping_texts(fig) == []
        finally:
            plt.close(fig)


def test_a_run_without_any_curve_says_so_and_shows_no_figure(tmp_path):
    from ue_bench.authoring import fixture_run
    from ue_bench.results import load_run
    fixture_run.write(tmp_path)
    for p in (tmp_path / "cells").glob("*.json"):
        c = json.loads(p.read_text())
        c.pop("curve", None)
        p.write_text(json.dumps(c))
    run = load_run(tmp_path)
    report = registry.create("reports", "learning-curve", {})
    assert "No cell of this run recorded a learning curve" in report.render(run, "md")
    assert report.render(run, "png") == b""
    assert run.frame["mean_recall_peak"].isna().all() and run.frame["mean_recall"].notna().any()


def test_a_cell_whose_curve_is_malformed_is_refused_naming_the_file(tmp_path):
    from ue_bench.authoring import fixture_run
    from ue_bench.results import load_run
    fixture_run.write(tmp_path)
    path = next(p for p in sorted((tmp_path / "cells").glob("*.json")) if "curve" in json.loads(p.read_text()))
    cell = json.loads(path.read_text())
    cell["curve"]["points"][0].pop("epoch")
    path.write_text(json.dumps(cell))
    with pytest.raises(UsageError, match=f"{path} is not a ue-bench cell result .curve is not an object whose "
                                         "points each have a numeric epoch."):
        load_run(tmp_path)


def test_defense_cost_counts_each_transform_once_and_compares_with_the_undefended_training(fixture_run_dir):
    from ue_bench.authoring.fixture_run import DEFEND_S, SEEDS
    from ue_bench.reports.tables import defense_costs
    from ue_bench.results import load_run
    run = load_run(fixture_run_dir)
    df = defense_costs(run).set_index(["defense", "victim"])
    jpeg, none = df.loc[("jpeg", "tiny-rn")], df.loc[("none", "tiny-rn")]
    # one transform per protection and seed, shared by both victims; summarised over seeds
    assert jpeg["defend_n"] == jpeg["ratio_n"] == len(SEEDS)
    assert jpeg["defend"] == pytest.approx(DEFEND_S["jpeg"] + np.mean(SEEDS))
    ratios = [(DEFEND_S["jpeg"] + s + 95 + s) / (95 + s) for s in SEEDS]
    assert jpeg["ratio"] == pytest.approx(np.mean(ratios)) and jpeg["ratio"] > 1
    assert none["ratio"] == pytest.approx(1.0) and none["defend"] == 0.0
    md = registry.create("reports", "defense-cost", {}).render(run, "md")
    assert "## Defense cost" in md and "× undefended training" in md and f"{np.mean(ratios):.2f}" in md
