"""(e) Retrieval evaluation at COCO's test size (5k images × 25k captions): the ranking part on random
unit embeddings (the towers' cost is that of the victim's forward passes): time and peak memory
(traced Python/numpy/torch CPU allocations are not all visible to tracemalloc, so peak RSS growth of
the process is reported). Bound: the chunked ranks hold O(chunk × max(N, M)) scores, so peak memory
stays below the 5k × 25k float64 matrix (954 MB; measured: about 490 MB of float64 copies and chunk scores). Slow: ``-m slow --benchmark-enable -s``.
"""

from __future__ import annotations

import resource
import time

import pytest
import torch
import torch.nn.functional as F

from ue_bench.engine.metrics import retrieval_metrics

from _bench_util import one_thread, report

pytestmark = pytest.mark.slow

N, CAPS, D = 5000, 5, 512


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


@pytest.mark.benchmark(group="retrieval")
def test_retrieval_at_coco_test_size(benchmark):
    one_thread()
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(N, D, generator=g), dim=-1)
    txt = F.normalize(torch.randn(N * CAPS, D, generator=g), dim=-1)
    owner = torch.arange(N).repeat_interleave(CAPS)
    before = _rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    metrics = benchmark.pedantic(retrieval_metrics, args=(img, txt, owner), rounds=1, iterations=1)
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    full_matrix_mb = N * N * CAPS * 8 / 2 ** 20
    report("retrieval 5k x 25k", {"seconds": f"{secs:.1f}", "rss before MB": f"{before:.0f}",
                                  "peak RSS MB": f"{peak:.0f}", "peak growth MB": f"{max(0.0, peak - max(before, peak_before)):.0f}",
                                  "full score matrix would be MB": f"{full_matrix_mb:.0f}"})
    assert 0 <= metrics["mean_recall"] <= 1
    assert peak - before < full_matrix_mb  # chunked: never the whole score matrix
