"""Reports built from the fixture run ``tests/fixtures/report_run`` (see its ``generate.py``) against
values computed by hand: means, Student-t intervals, fractions of clean, ranks and ties."""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from ue_bench.authoring import fixture_run
from ue_bench.errors import UsageError
from ue_bench.reports import tables
from ue_bench.bench.render import build_report, parse_formats
from ue_bench.cli.report import add_report_parser
from ue_bench.engine.imperceptibility import imperceptibility
from ue_bench.results import load_run
from ue_bench.reports.retrieval_table import render_text
from ue_bench.reports.stats import summarise, t_quantile_975

FIXTURE = Path(__file__).parent / "fixtures" / "report_run"
T2 = 4.302652729749464  # t_{0.975, 2}: three seeds
# random-guess mean recall of the fixture's test split, 200 images x 5 captions (README, Metrics)
RANDOM_MEAN_RECALL = sum([1 - math.comb(995, k) / math.comb(1000, k) for k in (1, 5, 10)]
                         + [k / 200 for k in (1, 5, 10)]) / 6


@pytest.fixture(scope="module")
def run():
    return load_run(FIXTURE)


def test_t_quantiles_match_tables():
    assert t_quantile_975(1) == pytest.approx(12.706204736, rel=1e-9)
    assert t_quantile_975(2) == pytest.approx(T2, rel=1e-12)
    assert t_quantile_975(4) == pytest.approx(2.776445105, rel=1e-9)
    assert t_quantile_975(29) == pytest.approx(2.045229642, rel=1e-9)


def test_summary_without_spread_has_no_interval():
    s = summarise([0.4])
    assert (s.mean, s.n) == (0.4, 1) and math.isnan(s.half)
    assert summarise([]).n == 0


def test_generator_reproduces_the_checked_in_fixture(tmp_path):
    fixture_run.write(tmp_path)
    made = sorted(p.name for p in (tmp_path / "cells").glob("*.json"))
    assert made == sorted(p.name for p in (FIXTURE / "cells").glob("*.json"))
    for name in made:
        assert (tmp_path / "cells" / name).read_text() == (FIXTURE / "cells" / name).read_text()


def pick(long, **key):
    sel = long
    for k, v in key.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, key
    return sel.iloc[0]


def test_retrieval_means_intervals_and_ratios(run):
    long = tables.retrieval(run)
    clean = pick(long, attack="none", defense="none", victim="tiny-rn", metric="mean_recall")
    assert clean["mean"] == pytest.approx(0.62) and clean["n"] == 3
    assert clean["half"] == pytest.approx(T2 * 0.02 / math.sqrt(3))
    # mem <- tiny-rn, ratio 1, victim tiny-rn: clean (0.60, 0.62, 0.64) x fraction (0.04, 0.05, 0.06)
    values = [0.60 * 0.04, 0.62 * 0.05, 0.64 * 0.06]
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    mem = dict(attack="mem", surrogate="tiny-rn", defense="none", poison_ratio=1.0, victim="tiny-rn")
    row = pick(long, **mem, metric="mean_recall")
    assert row["mean"] == pytest.approx(mean) and row["half"] == pytest.approx(T2 * sd / math.sqrt(3))
    frac = pick(long, **mem, metric="frac_clean")
    assert frac["mean"] == pytest.approx(0.05) and frac["half"] == pytest.approx(T2 * 0.01 / math.sqrt(3))
    xr = pick(long, **mem, metric="x_random")
    assert xr["mean"] == pytest.approx(mean / RANDOM_MEAN_RECALL, rel=1e-12)
    assert pick(long, **mem, metric="i2t_r1")["mean"] == pytest.approx(0.5 * mean)
    rnd = pick(long, attack="random guess", victim="tiny-vit", metric="t2i_r5")
    assert rnd["mean"] == pytest.approx(5 / 200) and rnd["n"] == 0
    one = pick(long, attack="random", victim="tiny-rn", metric="mean_recall")
    assert one["n"] == 1 and math.isnan(one["half"]) and one["mean"] == pytest.approx(0.60 * 0.94)
    # jpeg protections are compared with the clean baseline trained under jpeg: (0.58, 0.60, 0.62)
    jpeg = pick(long, attack="mem", defense="jpeg", victim="tiny-rn", metric="frac_clean")
    assert jpeg["mean"] == pytest.approx(0.69)


def test_failed_cells_are_left_out(run):
    assert list(run.failed["attack"]) == ["tap"]
    assert "tap" not in set(tables.retrieval(run)["attack"])


def test_leaderboard_scores_ranks_and_ties(run):
    lb = tables.leaderboard(run)
    got = {(r.defense, r.attack, r.surrogate, r.poison_ratio): (r.score, r.n, r.rank, r.tied) for r in lb.itertuples()}
    h3 = lambda sd: T2 * sd / math.sqrt(3)  # noqa: E731
    expected = {  # score: mean of the per-seed fractions of clean; rank: 1 + #intervals entirely below
        ("none", "mem", "tiny-rn", 1.0): (0.06, 3, 1, True),     # [0.035, 0.085]
        ("none", "mem", "tiny-vit", 1.0): (0.08, 3, 1, True),    # [0.055, 0.105] overlaps the above
        ("none", "em", "tiny-rn", 1.0): (0.32, 3, 3, True),      # [0.270, 0.370]
        ("none", "em", "tiny-vit", 1.0): (0.36, 3, 3, True),     # [0.310, 0.410]
        ("none", "mem", "tiny-rn", 0.5): (0.55, 3, 5, True),     # [0.426, 0.674]
        ("none", "mem", "tiny-vit", 0.5): (0.60, 3, 5, True),    # [0.476, 0.724]
        ("none", "em", "tiny-rn", 0.5): (0.85, 3, 7, True),      # [0.726, 0.974]: just above 0.724
        ("none", "em", "tiny-vit", 0.5): (0.90, 3, 7, True),     # [0.776, 1.024]
        ("none", "random", "none", 1.0): (0.95, 1, 7, True),     # n = 1: the point 0.95, inside both
        ("jpeg", "mem", "tiny-rn", 1.0): (0.70, 3, 1, False),    # its own board
    }
    assert set(got) == set(expected)
    for key, (score, n, rank, tied) in expected.items():
        assert got[key][0] == pytest.approx(score), key
        assert got[key][1:] == (n, rank, tied), key
    first = lb[(lb["attack"] == "mem") & (lb["surrogate"] == "tiny-rn") & (lb["defense"] == "none") & (lb["poison_ratio"] == 1.0)]
    assert first["half"].iloc[0] == pytest.approx(h3(0.01))
    assert first["frac_tiny-rn"].iloc[0] == pytest.approx(0.05) and first["frac_tiny-vit"].iloc[0] == pytest.approx(0.07)


def test_costs_per_protection_artifact(run):
    c = tables.costs(run)
    mem = c[(c["attack"] == "mem") & (c["surrogate"] == "tiny-rn") & (c["poison_ratio"] == 1.0)].iloc[0]
    assert mem["l2_mean"] == pytest.approx(251.0) and mem["l2_mean_n"] == 3  # one per seed, not per victim
    assert mem["l2_mean_half"] == pytest.approx(T2 * 1.0 / math.sqrt(3))
    assert mem["psnr_mean"] == pytest.approx(34.1) and mem["protect_s"] == pytest.approx(121.0)
    em = c[(c["attack"] == "em") & (c["surrogate"] == "tiny-rn") & (c["poison_ratio"] == 1.0)].iloc[0]
    assert math.isnan(em["psnr_mean"]) and em["psnr_mean_n"] == 0


def test_report_command_writes_every_format(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE / "cells", run_dir / "cells")
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir)])
    assert args.func(args) == 0
    out = run_dir / "report"
    names = {p.name for p in out.iterdir()}
    for name in ("report.md", "report.html", "leaderboard.csv", "leaderboard.tex", "retrieval-table.csv",
                 "retrieval-table.tex", "cost.tex", "transferability.png", "poison-curve.png", "cells.csv"):
        assert name in names
    md = (out / "report.md").read_text()
    assert "| 1= | mem | tiny-rn | 1 | 0.060 ± 0.025 | 0,1,2 |" in md
    assert "| 7= | random | none | 1 | 0.950 (n=1) | 0 |" in md
    assert "| mem | tiny-rn | 1 | 8.0 ± 0.0 | 251.0 ± 2.5 | 34.10 ± 0.25 | 0.910 ± 0.000 | 121.0 ± 2.5 | cpu |" in md
    assert "| em | tiny-rn | 1 | 8.0 ± 0.0 | 311.0 ± 2.5 | — | — | 61.0 ± 2.5 | cpu |" in md
    assert "(transferability.png)" in md and "1 failed" in md
    assert (out / "transferability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("<details class='cell'") == 69 + 56  # every cell once, plus each of the 56 protected cells under its leaderboard entry
    assert r"\begin{tabular}" in (out / "leaderboard.tex").read_text()


def test_a_run_without_protections_writes_csvs_with_their_header(tmp_path):
    """A clean-only run has no leaderboard or cost rows; its CSVs still say what they would hold (they
    were one newline)."""
    (tmp_path / "run" / "cells").mkdir(parents=True)
    for path in (FIXTURE / "cells").glob("*.json"):
        if json.loads(path.read_text())["config"]["attack"]["name"] == "none":
            shutil.copy(path, tmp_path / "run" / "cells" / path.name)
    assert list((tmp_path / "run" / "cells").iterdir())
    build_report(tmp_path / "run", fmts=("csv",))
    out = tmp_path / "run" / "report"
    assert (out / "leaderboard.csv").read_text().startswith("dataset,attack,surrogate,poison_ratio,defense,")
    assert "linf_mean,linf_mean_half" in (out / "cost.csv").read_text().splitlines()[0]


def test_bad_format_and_empty_run_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--format"):
        parse_formats("md,pdf")
    with pytest.raises(UsageError, match="no cell results"):
        build_report(tmp_path)


def test_several_run_directories_report_as_one(tmp_path):
    """The fixture's cells split over two run directories, one cell copied into both, give the report of
    the whole fixture; a cell whose two copies differ but for their timings, or several directories
    without --out, are refused."""
    first, second = tmp_path / "a" / "cells", tmp_path / "b" / "cells"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    paths = sorted((FIXTURE / "cells").glob("*.json"))
    for i, path in enumerate(paths):
        shutil.copy(path, (first if i % 2 else second) / path.name)
    shutil.copy(paths[1], second / paths[1].name)
    merged = load_run([tmp_path / "a", tmp_path / "b"])
    assert merged.name == "a + b" and len(merged.cells) == len(paths)
    row = merged.frame[merged.frame["cell_id"] == paths[1].stem].iloc[0]
    assert merged.sources[paths[1].stem] == first / paths[1].name and row["source"] == str(first / paths[1].name)
    build_report(FIXTURE, ["md"], out_dir=tmp_path / "whole")
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "md",
                              "--out", str(tmp_path / "split")])
    assert args.func(args) == 0
    whole, split = ((tmp_path / d / "report.md").read_text().split("\n", 1)[1] for d in ("whole", "split"))
    assert split == whole
    with pytest.raises(UsageError, match="--out"):
        build_report([tmp_path / "a", tmp_path / "b"], ["md"])
    cell = json.loads((second / paths[1].name).read_text())
    cell["wall_s"], cell["train"]["eval_s"] = cell["wall_s"] + 7, 3.5   # another job's timings of the same cell
    (second / paths[1].name).write_text(json.dumps(cell))
    merged = load_run([tmp_path / "a", tmp_path / "b"])
    assert merged.cells[paths[1].stem] == json.loads((first / paths[1].name).read_text())
    cell["metrics"]["i2t_r1"] += 0.01
    (second / paths[1].name).write_text(json.dumps(cell))
    with pytest.raises(UsageError, match=f"different results for cell {paths[1].stem}"):
        load_run([tmp_path / "a", tmp_path / "b"])


def test_cells_with_one_label_but_different_settings_are_refused(tmp_path):
    """Two runs made before and after a default changed: ``tiny-rn`` names two victims; one row of a
    table would average them, so the report refuses and names both files."""
    paths = sorted((FIXTURE / "cells").glob("*.json"))
    cell = json.loads(paths[0].read_text())
    for name in ("a", "b"):
        (tmp_path / name / "cells").mkdir(parents=True)
    (tmp_path / "a" / "cells" / paths[0].name).write_text(json.dumps(cell))
    cell["config"]["victim"]["params"]["lr"] = 0.5          # another victim, under the same label
    cell["config"]["seed"] = cell["labels"]["seed"] = cell["labels"]["seed"] + 100
    cell["cell_id"] = "f" * 16
    (tmp_path / "b" / "cells" / ("f" * 16 + ".json")).write_text(json.dumps(cell))
    with pytest.raises(UsageError, match="both labelled .* different victim settings"):
        load_run([tmp_path / "a", tmp_path / "b"])
    cell["config"]["victim"]["params"]["lr"] = json.loads(paths[0].read_text())["config"]["victim"]["params"]["lr"]
    (tmp_path / "b" / "cells" / ("f" * 16 + ".json")).write_text(json.dumps(cell))
    assert len(load_run([tmp_path / "a", tmp_path / "b"]).cells) == 2   # another seed of the same setting


def test_render_text_still_prints_the_run_table(run):
    text = render_text(run.frame)
    assert text.startswith("retrieval on the clean test split") and "0.620 (0.026)" in text
    rows = [line.split()[:3] for line in text.splitlines()[2:]]  # attack, surrogate, defense
    defenses = [r[2] for r in rows]
    assert defenses == sorted(defenses, key=lambda d: d != "none"), defenses  # undefended rows first
    for defense in set(defenses):  # the clean baseline before the protections of its defense
        attacks = [r[0] for r in rows if r[2] == defense]
        assert attacks == sorted(attacks, key=lambda a: a != "none"), (defense, attacks)


def test_imperceptibility_by_hand():
    clean = np.full((2, 16, 16, 3), 100, np.uint8)
    moved = clean.copy()
    moved[0] += 8  # constant +8: MSE 64; SSIM = luminance term only, (2·100·108 + C1)/(100² + 108² + C1)
    out = imperceptibility(clean, moved)
    assert out["psnr_mean"] == pytest.approx(10 * math.log10(255 ** 2 / 64))
    c1 = (0.01 * 255) ** 2
    assert out["ssim_mean"] == pytest.approx(((2 * 100 * 108 + c1) / (100 ** 2 + 108 ** 2 + c1) + 1) / 2)
    assert out["n_unchanged"] == 1
    with pytest.raises(ValueError, match="uint8"):
        imperceptibility(clean.astype(np.int16), moved.astype(np.int16))


def test_a_run_under_two_victim_views_reports_each_protection_under_both(tmp_path):
    """``--victims tiny-rn,tiny-rn:augment=openclip``: the same architecture under two training views is
    two victims, told apart by label, in the retrieval table and in the leaderboard's per-victim columns."""
    openclip = "tiny-rn:augment=openclip"
    (tmp_path / "cells").mkdir()
    for cell in fixture_run.cells():
        if cell["labels"]["victim"] == "tiny-vit":
            cell["labels"]["victim"] = openclip
            cell["config"]["victim"] = {**fixture_run.victim_spec("tiny-rn")}
            cell["config"]["victim"]["params"] = {**cell["config"]["victim"]["params"], "augment": "openclip"}
            cell["cell_id"] = "v" + cell["cell_id"][1:]
        (tmp_path / "cells" / f"{cell['cell_id']}.json").write_text(json.dumps(cell))
    run = load_run(tmp_path)
    table = tables.retrieval(run)
    for attack in ("none", "mem", "em"):
        assert set(table.loc[table["attack"] == attack, "victim"]) == {"tiny-rn", openclip}
    board = tables.leaderboard(run)
    assert {"frac_tiny-rn", f"frac_{openclip}"} <= set(board.columns)
    mem = board[(board["attack"] == "mem") & (board["defense"] == "none")].iloc[0]
    assert mem[f"frac_{openclip}"] > mem["frac_tiny-rn"]          # the fixture's second victim keeps more
    build_report(tmp_path, ["md"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert openclip in text and text.count(openclip) >= 2
