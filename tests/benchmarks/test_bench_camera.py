"""Camera-size photos (issue 28, deliverable 3): peak RSS and seconds of a full-resolution ``ue-bench
protect`` of one photo at 1, 6, 12 and 24 MP (``benchmarks/camera.py``). Bars: every size at most 2 GB
and growth under 40 bytes per pixel (the lift holds one channel of the central view's window, not
autograd's graph of the whole image), the view error unchanged by size. Slow::

    python -m pytest tests/benchmarks/test_bench_camera.py -m slow -s
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_peak_rss_of_a_camera_photo_is_bounded(tmp_path):
    import camera

    rows = camera.main(["--mp", "1,6,12,24", "--work", str(tmp_path), "--threads", "2"])
    for r in rows:
        print(f"\n[camera {r['megapixels']:g} MP] {r['seconds']} s, {r['peak_rss_mb']} MB, view error {r['view_error_mean']:.3f}")
        assert r["rc"] == 0 and r["peak_rss_mb"] <= 2048, r
    slope = (rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]) * 2**20 / ((rows[-1]["megapixels"] - rows[0]["megapixels"]) * 1e6)
    assert slope < 40, slope
    assert max(r["view_error_mean"] for r in rows) < 1.5 * min(r["view_error_mean"] for r in rows)
