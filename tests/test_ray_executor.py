"""The Ray executor gives the same results.csv as the local one."""

import subprocess
import sys

import pandas as pd
import pytest

pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'ue-bench[ray]'")

MATRIX = ["--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks", "none,mem",
          "--surrogates", "tiny-rn", "--victims", "tiny-rn,tiny-vit", "--threads", "1"]


def run(tmp_path, name, *extra):
    out = tmp_path / name
    cmd = [sys.executable, "-m", "ue_bench.cli", "run", *MATRIX, "--out", str(out),
           "--cache", str(tmp_path / f"cache-{name}"), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_csv(out / "results.csv").drop(columns=["wall_s"])


def test_ray_equals_local(tmp_path):
    local = run(tmp_path, "local")
    ray = run(tmp_path, "ray", "--executor", "ray")
    assert len(local) == 4 and set(local["status"]) == {"ok"}
    pd.testing.assert_frame_equal(ray, local)
