"""The one projection onto the pixel box: a change within ±eps that keeps every pixel in [0, 255].

Every place that bounds a change to an image (PGD's steps, the patterns of ``mem-patterns``, the
lift of a protection onto full-size pixels) projects with :func:`project`, so they cannot disagree
on the box.
"""

from __future__ import annotations

import torch


def project(delta: torch.Tensor, images: torch.Tensor, eps: int | torch.Tensor | None = None) -> torch.Tensor:
    """``delta`` (pixel units, float or integer) clamped into the ε ball (``eps``: a number, a tensor
    broadcast over ``delta`` that bounds each element on its own, or None: no ball) and so that
    ``images + delta`` stays in [0, 255] (``images``: pixel values 0..255 of ``delta``'s shape, or one
    broadcast to it). Returns a tensor of ``delta``'s dtype; exact (only min and max)."""
    if eps is not None:
        delta = delta.clamp(-eps, eps)
    return torch.maximum(torch.minimum(delta, 255 - images), -images)
