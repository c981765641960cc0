"""The matrix harness: resume after SIGKILL, reuse of artifacts, equal results however it is run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

MATRIX = ["--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8",
          "--attacks", "mem,em", "--surrogates", "tiny-rn,tiny-vit", "--victims", "tiny-rn,tiny-vit",
          "--threads", "1"]
STABLE = ["dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio", "i2t_r1", "i2t_r5",
          "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_medr", "t2i_medr", "mean_recall", "status", "cell_id"]


def command(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ue_bench.cli", "run", *MATRIX, "--out", str(out), "--cache", str(cache), *extra]


def snapshot(*roots: Path) -> dict[str, float]:
    """mtime of every finished artifact manifest and cell result under the given folders."""
    files = {}
    for root in roots:
        for p in list(root.rglob("manifest.json")) + list(root.rglob("cells/*.json")):
            files[str(p)] = p.stat().st_mtime_ns
    return files


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")[STABLE]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    done = subprocess.run(command(root / "run", root / "cache"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_matrix_has_every_cell(reference):
    df = table(reference / "run")
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    names = {(a.split(":")[0], s.split(":")[0]) for a, s in zip(df["attack"], df["surrogate"])}
    assert names == {(a, s) for a in ("mem", "em") for s in ("tiny-rn", "tiny-vit")}


def test_the_clean_baseline_is_one_cell_at_ratio_zero_whatever_the_ratios():
    """What the README says of ``results.csv``: ``none`` protects nothing, so it is planned once, at 0."""
    from ue_bench import registry
    from ue_bench.bench.matrix import plan

    attacks = [registry.create("attacks", "none"), registry.create("attacks", "random")]
    cells = plan([registry.create("datasets", "synthetic")], attacks, [registry.create("victims", "tiny-rn")],
                 [registry.create("defenses", "none")], [registry.create("victims", "tiny-rn")], [0], [0.5, 1.0])
    assert sorted((c.attack.name, c.poison_ratio) for c in cells) == [("none", 0.0), ("random", 0.5), ("random", 1.0)]


def test_every_cell_names_the_cpu_kernels_it_ran_on(reference):
    """A rebuild on a CPU with another instruction set may round differently: the provenance says which."""
    for cell in (reference / "run" / "cells").glob("*.json"):
        prov = json.loads(cell.read_text())["provenance"]
        assert prov["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and prov["device"] == "cpu:1 threads"


def test_sigkill_then_resume_equals_uninterrupted_run_and_rebuilds_nothing(reference, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.Popen(command(out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((out / "cells").glob("*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = snapshot(out, cache)
    assert 3 <= len(list((out / "cells").glob("*.json"))) < 8, "the kill should land mid-matrix"
    done = subprocess.run(command(out, cache), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    after = snapshot(out, cache)
    assert {p: after[p] for p in before} == before, "a finished artifact or cell was rebuilt"
    assert not list(cache.rglob(".tmp-*")), "the killed run's partial artifact was not cleaned up"
    pd.testing.assert_frame_equal(table(out), table(reference / "run"))


def test_changing_the_victim_reuses_protections(reference, tmp_path):
    out = tmp_path / "run"
    cache = reference / "cache"
    protections = snapshot(cache / "protection")
    done = subprocess.run(command(out, cache, "--victims", "tiny-rn:epochs=1"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(cache / "protection") == protections
    assert len(table(out)) == 4


def test_dry_run_reports_cached_stages_and_writes_nothing(reference, tmp_path):
    done = subprocess.run(command(reference / "run", reference / "cache", "--dry-run"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 cell(s); 8 already done" in done.stdout
    fresh = subprocess.run(command(tmp_path / "new", reference / "cache", "--dry-run"), capture_output=True, text=True)
    assert fresh.returncode == 0 and "estimated total" in fresh.stdout and "cached" in fresh.stdout
    assert not (tmp_path / "new").exists()


def test_a_finished_cell_on_data_that_changed_since_is_run_again(tmp_path):
    """The cell id names the configuration, not the data: resuming into the same ``--out`` after a
    photo changed must not keep the result computed on the old photos."""
    import json

    import numpy as np
    from PIL import Image

    (tmp_path / "img").mkdir()
    for i in range(24):
        Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    (tmp_path / "p.csv").write_text("filepath,title\n" + "".join(f"img/{i}.png,picture {i}\n" for i in range(24)))
    args = [sys.executable, "-m", "ue_bench.cli", "run", "--dataset",
            f"csv:{tmp_path / 'p.csv'},resolution=32,test_fraction=0.25", "--victims", "tiny-rn:epochs=1,batch_size=8",
            "--surrogates", "tiny-rn:batch_size=8",
            "--threads", "1", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")]

    def run():
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        cell = next((tmp_path / "run" / "cells").glob("*.json"))
        return done.stderr, json.loads(cell.read_text())["hashes"]["dataset"]

    _, first = run()
    err, resumed = run()
    assert resumed == first and "computed on other data" not in err  # unchanged data: the cell is kept
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(tmp_path / "img" / "3.png")  # a photo replaced
    err, changed = run()
    assert changed != first and "was computed on other data" in err
