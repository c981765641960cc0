"""Peak resident memory of ``ue-bench protect`` and ``ue-bench run`` against the dataset size.

Generates a CSV of distinct PNG images (``--res`` px) per size, then runs, each in a fresh child
process whose peak RSS is read back with ``resource.getrusage(RUSAGE_CHILDREN)`` (it counts the
memory-mapped file pages a process has resident, not only its heap):

* ``ue-bench protect --attack random`` (import of the CSV into a fresh memory-mapped cache, the
  protection, the export of the protected PNG copy);
* ``ue-bench run --attacks random --victims tiny-rn:epochs=1`` on a fresh cache of its own (import,
  protect, publish, train one epoch, evaluate: nothing is reused).

``--attack`` (with ``--surrogate``) measures another attack the same way, e.g. a one-pass ``mem``.

With ``--photo-res P`` the PNGs are ``P`` px and imported at ``--res``, so ``protect`` writes its
full-resolution copy through the lift (``--lift-steps``, default 40; memory does not depend on it).

Prints one JSON line per measurement and a summary with the least-squares slope in MB per 1k images
and the value at the largest size. Used by ``tests/benchmarks/test_bench_memory.py`` (slow)::

    python benchmarks/rss.py --sizes 5000,20000,80000 --res 64 --work /tmp/ue-rss
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
         "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")


def make_csv(folder: Path, n: int, res: int) -> Path:
    """``n`` distinct PNGs (a smooth two-colour gradient and a 4×4 block of random pixels each) and
    ``pairs.csv`` with one caption per image; reused when already there."""
    out = folder / "pairs.csv"
    if out.exists():
        return out
    from PIL import Image
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    ramp = np.linspace(0.0, 1.0, res, dtype=np.float32)[None, :, None]
    rows = []
    for i in range(n):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        img = (a * (1 - ramp) + b * ramp).repeat(res, 0).astype(np.uint8)
        y, x = rng.integers(0, res - 4, 2)
        img[y:y + 4, x:x + 4] = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / "img" / f"{i:06d}.png", compress_level=1)
        rows.append((f"img/{i:06d}.png", f"a gradient picture number {i} with a small patch"))
    with open(folder / "tmp.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filepath", "title"])
        w.writerows(rows)
    os.replace(folder / "tmp.csv", out)
    return out


def peak_mb(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS in MB of the command's process tree, seconds, exit code), in a fresh child."""
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CHILD, *cmd], env=env, capture_output=True, text=True)
    secs = time.perf_counter() - start
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("PEAK_KB")]
    if not line:
        raise RuntimeError(f"no measurement from {cmd}: {res.stderr[-2000:]}")
    _, kb, rc = line[-1].split()
    if int(rc):
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}: {res.stderr[-2000:]}")
    return int(kb) / 1024, secs, int(rc)


def fit(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares (slope in MB per 1k images, intercept in MB)."""
    slope, icpt = np.polyfit(np.asarray(sizes, float) / 1000, np.asarray(values, float), 1)
    return float(slope), float(icpt)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,20000,80000")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--work", default="/tmp/ue-bench-rss")
    ap.add_argument("--commands", default="protect,run")
    ap.add_argument("--attack", default="random", help="protect's and run's --attack(s), e.g. "
                    "'mem:outer_iters=1,surrogate_steps=4,pgd_steps=1,hotflip_iters=0' (with --surrogate)")
    ap.add_argument("--surrogate", default=None, help="--surrogate(s) for an attack that needs one")
    ap.add_argument("--run-sizes", default=None, help="sizes for `run` (default: --sizes)")
    ap.add_argument("--photo-res", type=int, default=None, help="side of the generated PNGs (default: --res)")
    ap.add_argument("--lift-steps", default="40", help="protect --lift-steps for full-size PNGs")
    a = ap.parse_args(argv)
    exe = str(Path(sys.executable).with_name("ue-bench"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    sizes = [int(s) for s in a.sizes.split(",")]
    run_sizes = [int(s) for s in (a.run_sizes or a.sizes).split(",")]
    table: dict[str, dict[int, float]] = {"protect": {}, "run": {}}
    for n in sorted(set(sizes) | set(run_sizes)):
        photo = a.photo_res or a.res
        folder = Path(a.work) / f"n{n}-r{photo}"
        data = make_csv(folder, n, photo)
        ds = f"csv:{data},resolution={a.res}"
        if "protect" in a.commands and n in sizes:
            out, cache = folder / "protected", folder / "cache-protect"
            subprocess.run(["rm", "-rf", str(out), str(cache)])  # from scratch: the import is measured too
            cmd = [exe, "protect", "--attack", a.attack, "--dataset", ds + ",test_fraction=0",
                   "--out", str(out), "--cache", str(cache), "--device", "cpu", "--lift-steps", a.lift_steps]
            cmd += ["--surrogate", a.surrogate] if a.surrogate else []
            mb, secs, _ = peak_mb(cmd, env)
            table["protect"][n] = mb
            print(json.dumps({"command": "protect", "attack": a.attack, "images": n, "res": a.res,
                              "photo_res": photo, "peak_rss_mb": round(mb, 1), "seconds": round(secs, 1)}), flush=True)
        if "run" in a.commands and n in run_sizes:
            runs, cache = folder / "run", folder / "cache-run"
            subprocess.run(["rm", "-rf", str(runs), str(cache)])  # nothing cached: import, protect, train, evaluate
            cmd = [exe, "run", "--dataset", ds, "--attacks", a.attack, "--victims", "tiny-rn:epochs=1",
                   "--out", str(runs), "--cache", str(cache), "--device", "cpu", "--threads", "1"]
            cmd += ["--surrogates", a.surrogate] if a.surrogate else []
            mb, secs, _ = peak_mb(cmd, env)
            table["run"][n] = mb
            print(json.dumps({"command": "run", "attack": a.attack, "images": n, "res": a.res,
                              "peak_rss_mb": round(mb, 1), "seconds": round(secs, 1)}), flush=True)
    summary = {}
    for name, vals in table.items():
        if len(vals) >= 2:
            ns = sorted(vals)
            slope, icpt = fit(ns, [vals[n] for n in ns])
            summary[name] = {"peak_rss_mb": {str(n): round(vals[n], 1) for n in ns},
                             "slope_mb_per_1k": round(slope, 2), "intercept_mb": round(icpt, 1),
                             "largest": ns[-1], "at_largest_mb": round(vals[ns[-1]], 1),
                             "at_80k_mb_fitted": round(icpt + 80 * slope, 1)}
    print(json.dumps({"summary": summary}), flush=True)
    return summary


if __name__ == "__main__":
    main()
