"""Peak resident memory and seconds of a full-resolution ``ue-bench protect`` of one camera-size photo.

For each size in megapixels (``--mp``, default 1,6,12,24), writes one 3:2 JPEG of that many pixels
(a smooth gradient with fine noise, quality 90, as a phone saves a photo) with a caption sidecar,
then runs ``ue-bench protect --attack random:eps=8 --dataset folder:...,resolution=R`` (default
``--lift-steps`` 40) in a fresh child process on a fresh cache, and reads back its wall time and peak
RSS (``resource.getrusage(RUSAGE_CHILDREN)``). One JSON line per size::

    python benchmarks/camera.py --mp 1,6,12,24 --work /tmp/ue-camera --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
         "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")


def make_photo(folder: Path, megapixels: float) -> Path:
    """``photo.jpg`` (3:2, ``megapixels`` million pixels) and ``photo.txt`` in ``folder``."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    rng = np.random.default_rng(int(megapixels * 10))
    small = Image.fromarray(rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    noisy = np.asarray(small, dtype=np.int16) + rng.integers(-6, 7, (h, w, 1), dtype=np.int16)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / "photo.jpg", quality=90)
    (folder / "photo.txt").write_text("a photo taken with a phone\n")
    return folder


def measure(work: Path, megapixels: float, resolution: int, threads: int) -> dict:
    case = work / f"{megapixels:g}mp"
    shutil.rmtree(case, ignore_errors=True)
    photos = make_photo(case / "photos", megapixels)
    argv = [sys.executable, "-m", "ue_bench.cli", "protect", "--attack", "random:eps=8", "--threads", str(threads),
            "--dataset", f"folder:{photos},resolution={resolution}", "--out", str(case / "out"),
            "--cache", str(case / "cache")]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    line = next(x for x in done.stdout.splitlines() if x.startswith("PEAK_KB"))
    _, peak_kb, rc = line.split()
    summary = json.loads((case / "out" / "manifest.json").read_text())["summary"] if rc == "0" else {}
    size = f"{summary['width_range'][0]}x{summary['height_range'][0]}" if summary else None
    return {"megapixels": megapixels, "size": size, "rc": int(rc), "seconds": round(seconds, 1), "peak_rss_mb": round(int(peak_kb) / 1024),
            "view_error_mean": summary.get("view_error_mean"), "view_error_max": summary.get("view_error_max"),
            "stderr_tail": done.stderr.strip().splitlines()[-1:] if rc != "0" else []}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", default="1,6,12,24", help="photo sizes in megapixels")
    ap.add_argument("--resolution", type=int, default=32, help="the dataset's resolution (the surrogate's view)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/ue-camera")
    args = ap.parse_args(argv)
    rows = []
    for mp in (float(x) for x in args.mp.split(",")):
        rows.append(measure(Path(args.work), mp, args.resolution, args.threads))
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
