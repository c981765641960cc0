"""(d) Peak RSS of ``ue-bench protect --attack random`` and ``ue-bench run --attacks random --victims
tiny-rn:epochs=1`` at three dataset sizes of a generated CSV of 64 px PNGs (``benchmarks/rss.py``).
Bars (the issue): ≤ 2 GB at 80k images and sub-linear growth (here: under 5 MB per 1k images, i.e.
the 80k split's own 983 MB is not held). Slow; sizes from UE_BENCH_RSS_SIZES (default 5000,20000,80000)::

    UE_BENCH_RSS_SIZES=5000,20000,80000 python -m pytest tests/benchmarks/test_bench_memory.py -m slow -s
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_peak_rss_does_not_grow_with_the_dataset(tmp_path):
    import rss

    sizes = os.environ.get("UE_BENCH_RSS_SIZES", "5000,20000,80000")
    summary = rss.main(["--sizes", sizes, "--work", str(tmp_path)])
    for name, s in summary.items():
        print(f"\n[peak RSS {name}] {s}")
        assert s["slope_mb_per_1k"] < 5.0, (name, s)
        if s["largest"] >= 80000:
            assert s["at_largest_mb"] <= 2048, (name, s)
