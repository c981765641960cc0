"""Autoregressive perturbations (Sandoval-Segura et al., "Autoregressive Perturbations for Data Poisoning",
NeurIPS 2022, arXiv 2206.03693), adapted to image–caption pairs.

Each (pseudo-)class has an autoregressive process: per channel, a 3×3 window of coefficients whose
bottom-right entry is 0 and whose entries sum to 1. An image's noise starts as Gaussian values, and
every pixel from the third row and column on is replaced, in raster order, by the window's weighted sum
of the pixels above and to its left (already replaced ones included), with no innovation noise; the
first ``crop`` rows and columns, where the Gaussian start still shows, are cut, and the result is scaled
to an L∞ norm of ``eps`` (the reference's ``create_ar_poisons_3channel.py`` with ``--p_norm 0``:
8/255, a 36-px signal cropped by 4 for 32-px images). A process is a linear filter away from zero (its
coefficients with −1 at the bottom-right annihilate its own noise), so the noise is trivially separable
by class for any network, and needs no model to make.

What stands in for what: image–caption pairs have no classes, so the classes are pseudo-classes (k-means
clusters of a clean-trained surrogate's features, or random groups: :mod:`._pseudo_classes`). The
reference ships coefficients it selected with a greedy search (``autoregressive_param_finder.py``);
here the same search runs on the protection's seed (:func:`ar_processes`): draw a random process (its
constructor's normalised Gaussian coefficients), keep it if none of a few 36-px signals it generates
grows (the RMS of each, cropped to 32 px and before scaling, at most 1, that of its Gaussian start) and
if every filter kept so far responds to its signal by at least 3 (the sum of the positive part of the
filter's output), until there are enough. The reference's growth bound is tighter (an L2 norm of at
most 5, an RMS of 0.09): it kept none of 300 random draws here (seed 0), and 6 of them pass this one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ue_bench import Attack, Protection, UsageError, delta_buffer, param, release

from ._pseudo_classes import ModelFreeNoise, PseudoClassParams, pseudo_classes

#: Images per chunk of the raster recurrence (vectorised over images and channels).
CHUNK = 256


@dataclass(frozen=True)
class ARParams(PseudoClassParams):
    """The pseudo-classes' parameters, then the process's."""

    crop: int = param(4, lo=0, hi=64, help="leading rows and columns of each generated signal cut off, where its "
                                           "Gaussian start still shows (reference: 4)")


def ar_coefficients(k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` random processes, float ``[k, 3, 3, 3]`` (class, channel, window row, window column): Gaussian
    entries, the bottom-right one 0, each channel's window scaled to sum to 1."""
    b = torch.randn(k, 3, 3, 3, generator=gen)
    b[:, :, 2, 2] = 0
    return b / b.sum((2, 3), keepdim=True)


def ar_generate(coeffs: torch.Tensor, shape: tuple[int, int], crop: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One signal per row of ``coeffs[B, 3, 3, 3]``, float64 ``[B, 3, H, W]`` before any scaling, generated
    at ``H + crop`` × ``W + crop`` from a Gaussian start and cropped (module docstring), and bool ``[B]``:
    whether it diverged. The recurrence is linear, so a diverging signal is divided by its peak row by
    row (once it passes 1e6) to stay finite; normalised at the end, it is the same noise."""
    h, w = shape[0] + crop, shape[1] + crop
    x = torch.randn(len(coeffs), 3, h, w, generator=gen, dtype=torch.float64)
    b = coeffs.double()
    diverged = torch.zeros(len(coeffs), dtype=torch.bool)
    for i in range(2, h):
        for j in range(2, w):
            x[:, :, i, j] = (x[:, :, i - 2:i + 1, j - 2:j + 1] * b).sum((2, 3))
        peak = x.abs().amax((1, 2, 3), keepdim=True)
        grew = peak > 1e6
        diverged |= grew.flatten()
        x = torch.where(grew, x / peak, x)
    return x[:, :, crop:, crop:], diverged


def ar_filter(coeffs: torch.Tensor) -> torch.Tensor:
    """The filter ``[1, 3, 3, 3]`` that annihilates process ``coeffs[3, 3, 3]``'s signal: its coefficients
    with −1 at the bottom-right of each channel's window (its entries sum to 0)."""
    f = coeffs.double().clone()
    f[:, 2, 2] = -1
    return f.unsqueeze(0)


def ar_processes(k: int, gen: torch.Generator, trials: int = 3, rms_bound: float = 1.0, min_response: float = 3.0,
                 max_draws: int = 1000, draw: int = 64) -> torch.Tensor:
    """``k`` processes ``[k, 3, 3, 3]`` chosen by the reference's greedy search (module docstring), from at
    most ``max_draws`` random draws per process, ``draw`` candidates at a time. Raises
    :class:`~ue_bench.errors.UsageError` when the draws run out (too many processes asked for)."""
    found: list[torch.Tensor] = []
    for _ in range(-(-max_draws * k // draw)):
        cands = ar_coefficients(draw, gen)
        raw, diverged = ar_generate(cands.repeat_interleave(trials, 0), (32, 32), 4, gen)
        rms = raw.flatten(1).square().mean(1).sqrt().view(draw, trials)
        grows = diverged.view(draw, trials).any(1) | ~torch.isfinite(rms).all(1) | (rms > rms_bound).any(1)
        for c in (~grows).nonzero().flatten().tolist():
            signal = raw[c * trials + trials - 1]
            signal = (signal / signal.norm()).unsqueeze(0)
            if found and min(F.relu(F.conv2d(signal, ar_filter(f))).sum().item() for f in found) < min_response:
                continue
            found.append(cands[c])
            if len(found) == k:
                return torch.stack(found)
    raise UsageError(f"attack 'ar': found {len(found)} of {k} autoregressive processes in {max_draws * k} draws; "
                     "ask for fewer groups")


class ARNoise(ModelFreeNoise, Attack):
    """Autoregressive perturbations (Sandoval-Segura et al.): noise from one AR process per pseudo-class.

    Returns a memory-mapped integer delta ``[N, H, W, 3]`` with L∞ norm ``eps`` pixel units (out of 255)
    per image, no trigger. Raises :class:`~ue_bench.errors.UsageError` without a surrogate under
    ``grouping=kmeans``.
    """

    Params = ARParams
    version = "1"
    presets = {"tiny": {"surrogate_epochs": 1, "groups": 4},
               # the reference's create_ar_poisons_3channel.py for CIFAR-10: L∞ 8/255, crop 4, 10 processes
               "paper": {"eps": 8, "crop": 4, "groups": 10}}

    def protect(self, split, surrogate, seed, device):
        delta, _, meta, _ = self.noise(split, surrogate, seed, device)
        return Protection(delta=delta, meta=meta)

    def noise(self, split, surrogate, seed: int, device: torch.device):
        """The delta (as :meth:`protect` returns it), each image's pseudo-class (long ``[N]``), the meta, and
        the protection's generator after drawing them (a variant draws what it adds from it)."""
        p = self.params
        gen = torch.Generator().manual_seed(seed)
        group, k, meta = pseudo_classes(self.name, split, surrogate, p, seed, device, gen)
        coeffs = ar_processes(k, gen)
        shape = split.images.shape[1:3]
        delta = delta_buffer(tuple(split.images.shape), p.eps)
        for a in range(0, len(group), CHUNK):
            raw, _ = ar_generate(coeffs[group[a:a + CHUNK]], shape, p.crop, gen)
            noise = raw / raw.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-300) * p.eps
            delta[a:a + len(noise)] = noise.round().to(torch.int16).permute(0, 2, 3, 1).numpy()
            release(delta)
        return delta, group, meta, gen
