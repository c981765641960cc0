"""Synthetic-noise shortcuts (Yu et al., "Availability attacks create shortcuts", KDD 2022) for pairs.

Yu et al. show that simple noise, linearly separable by class, is as unlearnable as optimised noise for
classifiers. Their construction (reference: dayu11/Availability-Attacks-Create-Shortcuts,
``synthetic_perturbations/cifar_train.py``), followed here: one point per image in a low-dimensional
space, drawn around its class's centre (Gaussian clusters at the vertices of a hypercube, ``class_sep``
apart, as scikit-learn's ``make_classification`` places them, with unit within-class spread), one value
per ``patch``×``patch`` block and channel, so the noise is constant over each block (low-frequency);
each image's noise is then scaled to the L2 norm ``eps·√(H·W·3)`` of an ε-everywhere noise, as Yu et
al. project it. ue-bench's budget is L∞, so the values beyond ±``eps`` after that scaling and rounding
to whole pixel units are cut to it (about a quarter of the values at the defaults; Yu et al. bound only
the L2 norm).

Image–caption pairs have no labels, so the classes are pseudo-classes: k-means clusters of a
clean-trained surrogate's image features (so similar images share a cluster, as a class does), or
uniformly random groups. Before 2026-12-03 (version 1) this plugin published one ±ε sign tile per
group, the same for every image of a group: neither low-frequency nor sample-wise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ue_bench import Attack, Protection, delta_buffer, param, release

from ._pseudo_classes import ModelFreeNoise, PseudoClassParams, pseudo_classes
from ._tiles import expand_blocks


@dataclass(frozen=True)
class SyntheticParams(PseudoClassParams):
    """The pseudo-classes' parameters, then the noise's (``eps``: its L2 norm is ``eps·√(H·W·3)``)."""

    patch: int = param(8, lo=1, hi=4096, help="side in pixels of the blocks the noise is constant over (Yu et al.: 8)")
    class_sep: float = param(10.0, lo=0.0, hi=1000.0,
                             help="half the side of the hypercube whose vertices are the cluster centres, in units "
                                  "of the within-cluster spread (Yu et al.: 10)")


def synthetic_noise(group: torch.Tensor, k: int, shape: tuple[int, int], p: SyntheticParams,
                    gen: torch.Generator) -> np.memmap:
    """Yu et al.'s synthetic noise for images of pseudo-class ``group`` (long ``[N]`` in ``range(k)``) of
    ``shape`` (H, W): a memory-mapped integer delta ``[N, H, W, 3]`` within ±``p.eps`` pixel units,
    constant over ``p.patch``-pixel blocks (module docstring), built 256 images at a time."""
    h, w = shape
    rows, cols = -(-h // p.patch), -(-w // p.patch)
    dim = rows * cols * 3
    centres = (torch.randint(0, 2, (k, dim), generator=gen) * 2 - 1).float() * p.class_sep
    points = centres[group] + torch.randn(len(group), dim, generator=gen)
    radius = p.eps * (h * w * 3) ** 0.5
    delta = delta_buffer((len(group), h, w, 3), p.eps)
    for a in range(0, len(group), 256):
        blocks = points[a:a + 256].view(-1, rows, cols, 3)
        noise = expand_blocks(blocks, p.patch, shape, dims=(1, 2))
        norms = noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta[a:a + len(noise)] = (noise * (radius / norms)).round().clamp(-p.eps, p.eps).to(torch.int16).numpy()
        release(delta)
    return delta


class SyntheticNoise(ModelFreeNoise, Attack):
    """Synthetic-noise shortcuts (Yu et al.): low-frequency noise clustered by pseudo-class (k-means or random groups).

    Returns a memory-mapped integer delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255), no
    trigger. Raises :class:`~ue_bench.errors.UsageError` without a surrogate under ``grouping=kmeans``.
    """

    Params = SyntheticParams
    version = "2"  # 2: Yu et al.'s construction (version 1: one ±eps sign tile per group)
    presets = {"tiny": {"surrogate_epochs": 1, "groups": 4}}

    def protect(self, split, surrogate, seed, device):
        gen = torch.Generator().manual_seed(seed)
        group, k, meta = pseudo_classes(self.name, split, surrogate, self.params, seed, device, gen)
        return Protection(delta=synthetic_noise(group, k, split.images.shape[1:3], self.params, gen), meta=meta)
