"""One-Pixel Shortcut (OPS) for image–caption pairs, within an L∞ budget: a ue-bench attack plugin.

Source: Shutong Wu, Sizhe Chen, Cihang Xie, Xiaolin Huang, "One-Pixel Shortcut: on the Learning
Preference of Deep Neural Networks", ICLR 2023 (arXiv 2205.12141). OPS gives every image of a class
the same single modified pixel; the position and target colour are searched per class so that the
pixel is the most consistent and most unusual feature of that class: among the positions, the one
whose values over the class's images lie farthest from a target colour (a corner of the RGB cube) and
vary least; that pixel is then set to the target colour. A network trained on the result learns the
pixel instead of the content.

Adaptations here: pairs have no labels, so the classes are pseudo-groups drawn at random from the seed
(as ue-bench's ``synthetic`` attack does with ``grouping=random``); and ue-bench enforces an L∞ budget,
so the pixel is moved by ``eps`` (pixel units out of 255) towards the target colour per channel instead
of being set to it. ``pixels`` > 1 takes the next-best positions too (OPS uses one). No model is
involved: the protection depends only on the images, the parameters and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ue_bench.attack import Attack
from ue_bench.params import param
from ue_bench.protection import Protection

#: Images read per step, so memory-mapped splits are never loaded whole.
CHUNK = 1024


@dataclass(frozen=True)
class Params:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255: each shortcut pixel moves by ±eps")
    groups: int = param(10, lo=1, hi=100000, help="pseudo-groups (OPS: classes), one shortcut position each")
    pixels: int = param(1, lo=1, hi=64, help="shortcut pixels per group (OPS: 1)")


def group_stats(images: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation, float64 ``[H, W, 3]`` in pixel units, of ``images[members]``."""
    total = np.zeros(images.shape[1:], np.float64)
    squares = np.zeros(images.shape[1:], np.float64)
    for start in range(0, len(members), CHUNK):
        part = images[members[start:start + CHUNK]].astype(np.float64)
        total += part.sum(0)
        squares += (part ** 2).sum(0)
    mean = total / len(members)
    return mean, np.sqrt(np.maximum(squares / len(members) - mean ** 2, 0.0))


def search(mean: np.ndarray, std: np.ndarray, pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """OPS's search for one group: the ``pixels`` positions (int64 ``[pixels, 2]`` as row, column) with the
    largest distance of the group's mean colour from its farthest RGB-cube corner per unit of spread, and
    per position the direction (int16 ``[pixels, 3]``, ±1 per channel) towards that corner."""
    towards = np.where(mean < 127.5, 1, -1).astype(np.int16)  # +1: the corner's channel is 255, -1: it is 0
    distance = np.abs(np.where(towards > 0, 255.0, 0.0) - mean).sum(-1)
    score = distance / (std.sum(-1) + 1.0)
    best = np.argsort(-score, axis=None, kind="stable")[:pixels]
    rows, cols = np.unravel_index(best, score.shape)
    return np.stack([rows, cols], 1), towards[rows, cols]


class OnePixelShortcut(Attack):
    """One-Pixel Shortcut (Wu et al., ICLR 2023) per random pseudo-group, moved by ±ε towards OPS's colour."""

    Params = Params
    version = "1"
    uses_surrogate = False
    presets = {"tiny": {"groups": 4}, "paper": {"groups": 100}}

    def protect(self, split, surrogate, seed, device):
        p = self.params
        n, h, w, _ = split.images.shape
        k, pixels = min(p.groups, n), min(p.pixels, h * w)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4F5053]))
        group = rng.permutation(np.arange(n) % k)  # every group non-empty
        delta = np.zeros(split.images.shape, np.int16)
        positions = []
        for g in range(k):
            members = np.flatnonzero(group == g)
            where, towards = search(*group_stats(split.images, members), pixels)
            for (row, col), direction in zip(where, towards):
                delta[members, row, col] = direction * np.int16(p.eps)
            positions.append(where.tolist())
        return Protection(delta=delta, meta={"groups": k, "positions": positions})
