"""Retrieval metrics against plain-Python references, CLIP_benchmark's formulation and exact enumeration."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ue_bench.engine.metrics import random_guess_levels, retrieval_metrics, retrieval_ranks
from ue_bench.schema import KS, METRIC_KEYS


def _split(seed: int, n_images: int, dim: int, quantised: bool = False):
    """Embeddings for ``n_images`` images with 1–5 captions each; quantised ones are in {-1, 0, 1} (many ties)."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 6, (n_images,), generator=g)
    owner = torch.repeat_interleave(torch.arange(n_images), counts)
    if quantised:
        return (torch.randint(-1, 2, (n_images, dim), generator=g).float(),
                torch.randint(-1, 2, (len(owner), dim), generator=g).float(), owner)
    img = F.normalize(torch.randn(n_images, dim, generator=g), dim=-1)
    txt = F.normalize(img[owner] + 1.5 * torch.randn(len(owner), dim, generator=g), dim=-1)
    return img, txt, owner


def _reference_ranks(img, txt, owner):
    """Sort every query's candidates by score, positives after negatives on equal scores (pessimistic ties)."""
    img, txt, owner = img.tolist(), txt.tolist(), owner.tolist()
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    i2t = []
    for i, q in enumerate(img):
        order = sorted(range(len(txt)), key=lambda t: (-dot(q, txt[t]), owner[t] == i))
        i2t.append(next(pos for pos, t in enumerate(order, 1) if owner[t] == i))
    t2i = []
    for t, q in enumerate(txt):
        order = sorted(range(len(img)), key=lambda j: (-dot(img[j], q), j == owner[t]))
        t2i.append(order.index(owner[t]) + 1)
    return i2t, t2i


def _reference_metrics(i2t, t2i, ks=KS):
    out = {f"i2t_r{k}": sum(r <= k for r in i2t) / len(i2t) for k in ks}
    out |= {f"t2i_r{k}": sum(r <= k for r in t2i) / len(t2i) for k in ks}
    out["i2t_medr"], out["t2i_medr"] = statistics.median(i2t), statistics.median(t2i)
    out["mean_recall"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks) / (2 * len(ks))
    return out


def _clip_benchmark_recalls(img, txt, owner, ks=KS):
    """CLIP_benchmark's zeroshot_retrieval: topk + one-hot against a positive-pairs matrix, recall > 0, mean."""
    def recall_at_k(scores, positive_pairs, k):
        topk = torch.topk(scores, k, dim=1)[1]
        onehot = F.one_hot(topk, num_classes=scores.shape[1])
        true_pos = (onehot * positive_pairs.view(scores.shape[0], 1, scores.shape[1])).sum(dim=(1, 2))
        return true_pos / positive_pairs.sum(dim=1)

    scores = txt @ img.T                                                       # [texts, images]
    positive_pairs = torch.zeros_like(scores, dtype=torch.bool)
    positive_pairs[torch.arange(len(scores)), owner] = True
    out = {}
    for k in ks:
        out[f"t2i_r{k}"] = (recall_at_k(scores, positive_pairs, k) > 0).float().mean().item()
        out[f"i2t_r{k}"] = (recall_at_k(scores.T, positive_pairs.T, k) > 0).float().mean().item()
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantised", [False, True], ids=["continuous", "quantised-ties"])
def test_matches_brute_force(seed, quantised):
    img, txt, owner = _split(seed, n_images=25, dim=3 if quantised else 16, quantised=quantised)
    i2t_ref, t2i_ref = _reference_ranks(img, txt, owner)
    i2t, t2i = retrieval_ranks(img, txt, owner)
    assert i2t.tolist() == i2t_ref and t2i.tolist() == t2i_ref
    got = retrieval_metrics(img, txt, owner)
    assert tuple(got) == METRIC_KEYS
    assert got == pytest.approx(_reference_metrics(i2t_ref, t2i_ref), abs=1e-12)


def test_quantised_split_really_has_ties():
    img, txt, owner = _split(0, n_images=25, dim=3, quantised=True)
    scores = img @ txt.T
    assert all(len(set(row.tolist())) < len(row) // 4 for row in scores)


def test_constant_embeddings_give_worst_case():
    img, txt, owner = _split(1, n_images=12, dim=4)
    img, txt = torch.ones_like(img) / 2, torch.ones_like(txt) / 2
    counts = torch.bincount(owner)
    total = len(owner)
    i2t, t2i = retrieval_ranks(img, txt, owner)
    assert t2i.tolist() == [12] * total                                       # behind every other image
    assert i2t.tolist() == (1 + total - counts).tolist()                      # behind every other caption
    got = retrieval_metrics(img, txt, owner)
    assert total - int(counts.max()) >= 10
    assert all(got[f"{d}_r{k}"] == 0.0 for d in ("i2t", "t2i") for k in KS)
    assert got["mean_recall"] == 0.0
    assert got["t2i_medr"] == 12.0
    assert got["i2t_medr"] == float(np.median(1 + total - counts.numpy()))


@pytest.mark.parametrize("seed", range(3))
def test_tie_free_equals_clip_benchmark(seed):
    img, txt, owner = _split(seed, n_images=30, dim=16)
    scores = img @ txt.T
    assert len(torch.unique(scores)) == scores.numel()                        # no ties
    got = retrieval_metrics(img, txt, owner)
    ref = _clip_benchmark_recalls(img, txt, owner)
    assert 0 < got["i2t_r1"] < 1 and 0 < got["t2i_r1"] < 1                    # a non-degenerate check
    assert {k: got[k] for k in ref} == pytest.approx(ref, abs=1e-6)


def test_perfect_embeddings():
    g = torch.Generator().manual_seed(0)
    n = 20
    img = torch.eye(n)
    owner = torch.repeat_interleave(torch.arange(n), torch.randint(1, 6, (n,), generator=g))
    txt = F.normalize(img[owner] + 1e-3 * torch.randn(len(owner), n, generator=g), dim=-1)
    i2t, t2i = retrieval_ranks(img, txt, owner)
    assert (i2t == 1).all() and (t2i == 1).all()
    got = retrieval_metrics(img, txt, owner)
    assert got == {k: 1.0 for k in METRIC_KEYS}


def _enumerated_levels(counts, ks):
    """Every query against every permutation of its candidates; pooled ranks give recalls and medians."""
    owner = [i for i, c in enumerate(counts) for _ in range(c)]
    i2t = [min(perm.index(t) for t in range(len(owner)) if owner[t] == i) + 1
           for i in range(len(counts)) for perm in itertools.permutations(range(len(owner)))]
    t2i = [perm.index(owner[t]) + 1
           for t in range(len(owner)) for perm in itertools.permutations(range(len(counts)))]
    return _reference_metrics(i2t, t2i, ks)


@pytest.mark.parametrize("counts", [(2, 2, 2), (1, 2, 3), (1, 1, 1, 1), (1, 1, 2), (3, 1), (4,), (1, 1, 1, 1, 3)])
def test_random_guess_levels_match_enumeration(counts):
    ks = (1, 2, 3, 10)
    got = random_guess_levels(counts, ks=ks)
    ref = _enumerated_levels(counts, ks)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got["i2t_medr"] == ref["i2t_medr"] and got["t2i_medr"] == ref["t2i_medr"]   # medians exactly


def test_random_guess_levels_formulas():
    n, c = 5000, 5
    got = random_guess_levels([c] * n)
    total = n * c
    assert tuple(got) == METRIC_KEYS
    for k in KS:
        assert got[f"t2i_r{k}"] == pytest.approx(k / n, rel=1e-12)
        assert got[f"i2t_r{k}"] == pytest.approx(1 - math.comb(total - c, k) / math.comb(total, k), rel=1e-12)
    assert got["t2i_r1"] == 1 / n
    assert got["t2i_medr"] == (n + 1) / 2
    # best of 5 among 25000: P(rank <= r) = 1 - (1 - r/T)^5 roughly, so the median is near T(1 - 2^-1/5)
    assert abs(got["i2t_medr"] - total * (1 - 0.5 ** (1 / c))) < 2
    assert got["mean_recall"] == pytest.approx(np.mean([got[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in KS]))
    small = random_guess_levels([1, 1, 1])                                    # k >= N: everything is retrieved
    assert small["t2i_r5"] == small["i2t_r10"] == 1.0 and small["t2i_medr"] == small["i2t_medr"] == 2.0


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunking_is_exact(chunk):
    img, txt, owner = _split(5, n_images=40, dim=3, quantised=True)
    full = retrieval_ranks(img, txt, owner, chunk=10**6)
    part = retrieval_ranks(img, txt, owner, chunk=chunk)
    assert torch.equal(full[0], part[0]) and torch.equal(full[1], part[1])


def test_accepts_other_dtypes_and_returns_floats():
    img, txt, owner = _split(2, n_images=15, dim=8)
    ref = retrieval_metrics(img, txt, owner)
    got = retrieval_metrics(img.double(), txt.double(), owner.int())
    assert got == pytest.approx(ref, abs=1e-12)
    assert all(type(v) is float for v in got.values())


@pytest.mark.parametrize("case, match", [
    ("owner_length", "one image index per text"),
    ("no_caption", "no caption|have none"),
    ("owner_range", "outside"),
    ("float_owner", "integer"),
    ("dim_mismatch", "same D"),
    ("nan", "NaN"),
])
def test_bad_input_raises(case, match):
    img, txt, owner = _split(3, n_images=6, dim=4)
    if case == "owner_length":
        owner = owner[:-1]
    elif case == "no_caption":
        owner = owner.clone()
        owner[owner == 2] = 1
    elif case == "owner_range":
        owner = owner.clone()
        owner[0] = 6
    elif case == "float_owner":
        owner = owner.float()
    elif case == "dim_mismatch":
        txt = txt[:, :3]
    elif case == "nan":
        img = img.clone()
        img[0, 0] = float("nan")
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(img, txt, owner)


@pytest.mark.parametrize("counts", [[], [2, 0, 1]])
def test_random_guess_levels_bad_counts(counts):
    with pytest.raises(ValueError, match="captions_per_image"):
        random_guess_levels(counts)


def test_bad_chunk_raises():
    img, txt, owner = _split(0, n_images=4, dim=4)
    with pytest.raises(ValueError, match="chunk"):
        retrieval_ranks(img, txt, owner, chunk=0)
