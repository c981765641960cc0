"""Image–caption retrieval metrics, multi-caption aware, as CLIP_benchmark's ``zeroshot_retrieval`` defines them.

Image→text: an image is retrieved at k if ANY of its captions is among the k best-scoring texts.
Text→image: a text is retrieved at k if its one own image is among the k best-scoring images.
Scores are dot products ``image_emb @ text_emb.T`` (callers pass L2-normalised embeddings).

Ties are resolved pessimistically, i.e. against the retrieval:

* i2t rank of image i = 1 + #{texts t not owned by i : s(i, t) >= max over i's captions c of s(i, c)}
* t2i rank of text t  = 1 + #{images j other than owner(t) : s(j, t) >= s(owner(t), t)}

Why: CLIP_benchmark takes ``torch.topk`` of the scores, which breaks ties arbitrarily (in practice by
index order), so its figures are ill-defined when scores tie — a collapsed model with constant
embeddings can even look perfect. Counting ties against the positive makes a collapsed model score
the worst case instead. On tie-free scores both definitions give the same ranks and recalls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from ue_bench.schema import KS



def _prepare(image_emb: torch.Tensor, text_emb: torch.Tensor,
             text_owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated float64 CPU embeddings and int64 owners; float64 keeps exact ties of quantised inputs exact."""
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"embeddings must be [N, D] and [M, D] with the same D, "
                         f"got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    if text_owner.shape != (text_emb.shape[0],):
        raise ValueError(f"text_owner must hold one image index per text, i.e. shape ({text_emb.shape[0]},), "
                         f"got {tuple(text_owner.shape)}")
    if text_owner.dtype.is_floating_point or text_owner.dtype.is_complex or text_owner.dtype == torch.bool:
        raise ValueError(f"text_owner must be an integer tensor, got {text_owner.dtype}")
    n = image_emb.shape[0]
    if n == 0:
        raise ValueError("need at least one image")
    image_emb = image_emb.detach().to("cpu", torch.float64)
    text_emb = text_emb.detach().to("cpu", torch.float64)
    text_owner = text_owner.detach().to("cpu", torch.long)
    if not (torch.isfinite(image_emb).all() and torch.isfinite(text_emb).all()):
        raise ValueError("embeddings contain NaN or inf")
    if len(text_owner) and (int(text_owner.min()) < 0 or int(text_owner.max()) >= n):
        raise ValueError(f"text_owner holds image indices outside [0, {n})")
    missing = (torch.bincount(text_owner, minlength=n) == 0).nonzero()
    if len(missing):
        raise ValueError(f"every image needs at least one caption; {len(missing)} have none "
                         f"(first: image {int(missing[0])})")
    return image_emb, text_emb, text_owner


def retrieval_ranks(image_emb: torch.Tensor, text_emb: torch.Tensor, text_owner: torch.Tensor,
                    chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Pessimistic 1-based ranks, with s the dot-product score:

    * ``i2t_rank[i] = 1 + #{texts t with owner(t) != i : s(i, t) >= max_{c: owner(c) = i} s(i, c)}`` — the rank
      of image i's best-ranked own caption, ties with any negative counted against it;
    * ``t2i_rank[t] = 1 + #{images j != owner(t) : s(j, t) >= s(owner(t), t)}`` — the rank of text t's image.

    Queries are processed ``chunk`` at a time, so memory is O(chunk × max(N, M)); every positive's score
    is read from the same score matrix it is compared against, so ties are detected exactly.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    image_emb, text_emb, text_owner = _prepare(image_emb, text_emb, text_owner)
    n, m = image_emb.shape[0], text_emb.shape[0]

    i2t = torch.empty(n, dtype=torch.long)
    for s in range(0, n, chunk):
        scores = image_emb[s:s + chunk] @ text_emb.T                         # [c, M]
        own_text = ((text_owner >= s) & (text_owner < s + chunk)).nonzero().squeeze(1)
        own_row = text_owner[own_text] - s
        own_score = scores[own_row, own_text]
        best = torch.full((scores.shape[0],), -torch.inf, dtype=scores.dtype)
        best.scatter_reduce_(0, own_row, own_score, reduce="amax")
        at_least = (scores >= best.unsqueeze(1)).sum(1)                      # includes own captions == best
        own_at_least = torch.zeros_like(at_least).index_add_(0, own_row, (own_score >= best[own_row]).long())
        i2t[s:s + chunk] = 1 + at_least - own_at_least

    t2i = torch.empty(m, dtype=torch.long)
    for s in range(0, m, chunk):
        scores = text_emb[s:s + chunk] @ image_emb.T                         # [c, N]
        own = scores.gather(1, text_owner[s:s + chunk].unsqueeze(1))
        t2i[s:s + chunk] = (scores >= own).sum(1)                            # the own image counts as the "1 +"
    return i2t, t2i


def _summarise(i2t: np.ndarray, t2i: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out = {f"i2t_r{k}": float((i2t <= k).mean()) for k in ks}
    out |= {f"t2i_r{k}": float((t2i <= k).mean()) for k in ks}
    out["i2t_medr"] = float(np.median(i2t))
    out["t2i_medr"] = float(np.median(t2i))
    out["mean_recall"] = float(np.mean([out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks]))
    return out


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, text_owner: torch.Tensor,
                      ks: Sequence[int] = KS) -> dict[str, float]:
    """The METRIC_KEYS (for the default ``ks``) from the pessimistic ranks of ``retrieval_ranks``.

    Recalls are fractions of queries in [0, 1]; medians follow numpy (mean of the two middle ranks for
    an even count); ``mean_recall`` is the mean of the i2t and t2i recalls at every k.
    """
    i2t, t2i = retrieval_ranks(image_emb, text_emb, text_owner)
    return _summarise(i2t.numpy(), t2i.numpy(), ks)


class _RandomRanks:
    """Exact distribution of each query's best positive rank under a uniform shuffle of the candidates.

    A query with c positives among ``total`` candidates has P(best rank <= r) = 1 − C(total−c, r)/C(total, r)
    = 1 − prod_{j<c} (total−r−j)/(total−j); the split's distribution is the equal-weight mixture over queries.
    Fractions keep it exact: float round-off could otherwise move a median that sits exactly on 1/2.
    """

    def __init__(self, total: int, positives_per_query: Sequence[int]):
        self.total = total
        self.weights = {c: Fraction(f, len(positives_per_query)) for c, f in Counter(positives_per_query).items()}

    def cdf(self, r: int) -> Fraction:
        r = min(r, self.total)
        out = Fraction(0)
        for c, w in self.weights.items():
            miss = Fraction(1)
            for j in range(c):
                miss *= Fraction(max(self.total - r - j, 0), self.total - j)
            out += w * (1 - miss)
        return out

    def median(self) -> float:
        """Smallest r with CDF(r) >= 1/2 (binary search); r + 1/2 if CDF(r) is exactly 1/2.

        The half step is numpy's even-count convention carried to distributions: then every rank <= r
        and every rank >= r + 1 is a median (rank r + 1 has positive probability as CDF(r) < 1), and
        the midpoint is taken. For c = 1 it gives the uniform median (total + 1)/2.
        """
        lo, hi = 1, self.total
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cdf(mid) >= Fraction(1, 2):
                hi = mid
            else:
                lo = mid + 1
        return lo + 0.5 if self.cdf(lo) == Fraction(1, 2) else float(lo)


def random_guess_levels(captions_per_image: Sequence[int], ks: Sequence[int] = KS) -> dict[str, float]:
    """The same keys as ``retrieval_metrics`` for a uniformly random ranking of the same split, exactly.

    With N images and T captions in all: t2i R@k = min(k, N)/N, t2i medr = (N+1)/2; i2t R@k = mean over
    images of 1 − C(T−c, k)/C(T, k) for an image with c captions. i2t medr is the median of the mixture
    (over images, equal weights) of the per-image best-caption-rank distributions — the smallest r whose
    mean-over-images P(rank <= r) reaches 1/2, plus 1/2 where it equals 1/2 exactly (see ``_RandomRanks``).
    Recalls are expectations; the medians are those of the rank distributions, not expected sample medians.
    """
    counts = [int(c) for c in captions_per_image]
    if not counts or min(counts) < 1:
        raise ValueError("captions_per_image must be a non-empty sequence of counts >= 1")
    n = len(counts)
    i2t, t2i = _RandomRanks(sum(counts), counts), _RandomRanks(n, [1] * n)
    out = {f"i2t_r{k}": float(i2t.cdf(k)) for k in ks}
    out |= {f"t2i_r{k}": float(t2i.cdf(k)) for k in ks}
    out["i2t_medr"] = i2t.median()
    out["t2i_medr"] = t2i.median()
    out["mean_recall"] = float(np.mean([out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks]))
    return out
