"""Synthetic-noise shortcuts (Yu et al., "Availability attacks create shortcuts", KDD 2022) for pairs.

Yu et al. show that a simple group-wise pattern, linearly separable by group, is as unlearnable as
optimised noise for classifiers. Image–caption pairs have no labels, so the groups are pseudo-groups:
k-means clusters of a clean-trained surrogate's image features (so a pattern is shared by similar
images, as a class-wise pattern is in the original), or uniformly random groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ue_bench.attack import Attack
from ue_bench.device import autocast
from ue_bench.params import param
from ue_bench.protection import Protection
from ue_bench.training import batches, normalize

from ._surrogate import SplitTensors, require, trained_on_clean
from ._tiles import sign_tiles, tile_over


@dataclass(frozen=True)
class SyntheticParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255: pattern values are ±eps")
    groups: int = param(10, lo=1, hi=100000, help="number of pseudo-groups, one pattern each")
    grouping: str = param("kmeans", choices=("kmeans", "random"), help="kmeans on surrogate image features, or random groups")
    patch: int = param(8, lo=1, hi=4096, help="side in pixels of the random ±eps patch tiled over the image")
    surrogate_epochs: int = param(5, lo=1, hi=10000, help="clean-training epochs of the surrogate whose features are clustered")
    kmeans_iters: int = param(30, lo=1, hi=10000, help="Lloyd iterations (upper bound; stops when assignments settle)")


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Cluster ids of the rows of ``x`` (cosine k-means, k-means++ seeding from ``gen``)."""
    x = F.normalize(x, dim=-1)
    centres = [x[torch.randint(len(x), (1,), generator=gen)].squeeze(0)]
    for _ in range(1, k):
        d = (1 - x @ torch.stack(centres).T).clamp_min(0).min(1).values
        centres.append(x[torch.multinomial(d + 1e-12, 1, generator=gen)].squeeze(0))
    c = torch.stack(centres)
    assign = torch.full((len(x),), -1, dtype=torch.long)
    for _ in range(iters):
        new = (x @ c.T).argmax(1)
        if torch.equal(new, assign):
            break
        assign = new
        for g in range(k):
            members = x[assign == g]
            if len(members):
                c[g] = F.normalize(members.mean(0), dim=0)
    return assign


class SyntheticNoise(Attack):
    """Synthetic-noise shortcuts: a tiled random ±ε patch per pseudo-group (k-means or random groups)."""

    Params = SyntheticParams
    version = "1"
    presets = {"tiny": {"surrogate_epochs": 1, "groups": 4}}

    def protect(self, split, surrogate, seed, device):
        p = self.params
        n, h, w, _ = split.images.shape
        gen = torch.Generator().manual_seed(seed)
        k = min(p.groups, n)
        meta = {"grouping": p.grouping, "groups": k}
        if p.grouping == "kmeans":
            model, info = trained_on_clean(require(surrogate, self.name), split, p.surrogate_epochs, seed, device,
                                           self.name)
            meta.update(info)
            data = SplitTensors(split, surrogate.tokenizer())
            chunks = []
            with torch.no_grad(), autocast(device):
                for idx in batches(n, 256, torch.Generator().manual_seed(0), keep_all=True):
                    chunks.append((idx, model.encode_image(normalize(data.unit(idx, None, device))).float().cpu()))
            feats = torch.zeros(n, chunks[0][1].shape[1])
            for idx, f in chunks:
                feats[idx] = f
            group = kmeans(feats, k, p.kmeans_iters, gen)
        else:
            group = torch.randint(k, (n,), generator=gen)
        patterns = tile_over(sign_tiles(k, p.patch, gen), h, w) * p.eps
        delta = patterns[group].numpy()
        meta["group_sizes"] = np.bincount(group.numpy(), minlength=k).tolist()
        return Protection(delta=delta, meta=meta)
