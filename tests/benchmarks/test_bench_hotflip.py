"""HotFlip candidate scoring: the closed-form swap losses against recomputing the batch loss for every
(sample, candidate) swap, the way the reference code scores candidates. Compare the two rows of the
``hotflip-scoring`` group (a ratio within one run); run with ``pytest tests/benchmarks --benchmark-enable``.
"""

import pytest
import open_clip
import torch
import torch.nn.functional as F

from ue_bench.attacks._hotflip import swap_losses

B, K, D = 64, 17, 128


@pytest.fixture(scope="module")
def feats():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(B, D, generator=g), dim=-1)
    txt = F.normalize(torch.randn(B, D, generator=g), dim=-1)
    cand = F.normalize(torch.randn(B, K, D, generator=g), dim=-1)
    return img, txt, cand, torch.tensor(14.3)


def recompute_each_swap(img, txt, cand, scale):
    out = torch.empty(B, K)
    for i in range(B):
        for k in range(K):
            swapped = txt.clone()
            swapped[i] = cand[i, k]
            out[i, k] = open_clip.ClipLoss()(img, swapped, scale)
    return out


@pytest.mark.benchmark(group="hotflip-scoring")
def test_closed_form_swap_losses(benchmark, feats):
    got = benchmark(swap_losses, *feats)
    assert got.shape == (B, K)


@pytest.mark.benchmark(group="hotflip-scoring")
def test_recomputed_swap_losses(benchmark, feats):
    got = benchmark.pedantic(recompute_each_swap, args=feats, rounds=3, iterations=1)
    assert torch.allclose(got, swap_losses(*feats), atol=1e-4)
