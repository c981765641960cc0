"""Pseudo-classes for class-wise attacks on image–caption pairs, which have no labels.

Class-wise unlearnable noise (Yu et al.'s synthetic noise, autoregressive perturbations) gives every
image of a class noise from that class's pattern. Here the classes are pseudo-classes: k-means clusters
of the image features of a surrogate trained on the clean pairs (similar images share a cluster, as a
class's images do, so a cluster's noise goes with what its captions say), or uniformly random groups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ue_bench.engine.device import autocast
from ue_bench import param
from ue_bench.engine.training import batches, normalize

from ._surrogate import SplitTensors, require, trained_on_clean

log = logging.getLogger("ue_bench.attacks")


@dataclass(frozen=True)
class PseudoClassParams:
    """The budget and the pseudo-classes every class-wise attack declares first."""

    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255")
    groups: int = param(10, lo=1, hi=100000, help="number of pseudo-classes, one noise pattern each")
    grouping: str = param("kmeans", choices=("kmeans", "random"),
                          help="kmeans on clean-trained surrogate image features, or random groups")
    surrogate_epochs: int = param(5, lo=1, hi=10000, help="clean-training epochs of the surrogate whose features are clustered")
    kmeans_iters: int = param(30, lo=1, hi=10000, help="Lloyd iterations (upper bound; stops when assignments settle)")


def clean_epochs(p: PseudoClassParams) -> int:
    """Epochs of clean surrogate training that :func:`pseudo_classes` spends for ``p``: its
    ``surrogate_epochs`` under k-means, none for random groups."""
    return p.surrogate_epochs if p.grouping == "kmeans" else 0


class ModelFreeNoise:
    """Mixin of the attacks whose noise needs no model, only pseudo-classes (``ar``, ``synthetic``): a
    surrogate only for k-means, whose clean training is their whole cost in surrogate steps."""

    @property
    def uses_surrogate(self) -> bool:
        """Only k-means pseudo-classes need a surrogate: with random groups the cell has none, as ``random``'s."""
        return self.params.grouping == "kmeans"

    def cost_steps(self, n_images: int) -> float:
        return 0.0

    def clean_surrogate_epochs(self) -> int:
        return clean_epochs(self.params)


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


def pseudo_classes(name: str, split, surrogate, p: PseudoClassParams, seed: int, device: torch.device,
                   gen: torch.Generator) -> tuple[torch.Tensor, int, dict]:
    """Each image's pseudo-class, long ``[N]`` in ``range(k)``, the number ``k`` of them (``p.groups``, at
    most N: more is cut to N with a warning) and what to record in the protection's meta (the grouping,
    the group sizes and, for k-means, the surrogate's training and initial-weight hash). ``p``:
    :class:`PseudoClassParams` or any parameters with its ``groups``, ``grouping``, ``surrogate_epochs``
    and ``kmeans_iters``, as ``mem-classwise``'s. Raises :class:`~ue_bench.errors.UsageError` when
    k-means has no surrogate."""
    n = len(split)
    k = min(p.groups, n)
    if k < p.groups:
        log.warning("%s: groups=%d is more than the %d images of the split; %d pseudo-classes (one per image at most)",
                    name, p.groups, n, k)
    meta = {"grouping": p.grouping, "groups": k}
    if p.grouping == "kmeans":
        model, info = trained_on_clean(require(surrogate, name), split, p.surrogate_epochs, seed, device, name)
        meta.update(info)
        data = SplitTensors(split, surrogate.tokenizer())
        feats = None
        with torch.no_grad(), autocast(device):
            for idx in batches(n, 256, torch.Generator().manual_seed(0), keep_all=True):
                f = model.encode_image(normalize(data.unit(idx, None, device))).float().cpu()
                feats = torch.zeros(n, f.shape[1]) if feats is None else feats
                feats[idx] = f
        group = kmeans(feats, k, p.kmeans_iters, gen)
    else:
        group = torch.randint(k, (n,), generator=gen)
    meta["group_sizes"] = np.bincount(group.numpy(), minlength=k).tolist()
    return group, k, meta
