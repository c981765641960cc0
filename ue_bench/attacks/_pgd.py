"""Projected sign-gradient steps on an integer pixel delta.

The delta lives on the 1/255 grid throughout: it starts at integers, moves by an integer ``step`` and
is projected onto ``[-eps, eps]`` and onto ``0 ≤ image + delta ≤ 255`` (integer bounds), so the delta
that is optimised is exactly the delta that is published; no final rounding changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ue_bench.engine.device import autocast
from ue_bench.engine.pixel_box import project
from ue_bench import param
from ue_bench.engine.training import normalize


@dataclass(frozen=True)
class PGDBudgetParams:
    """The budget and step every PGD-based attack declares first (the harness enforces ``eps``)."""

    eps: int = param(8, lo=0, hi=32, help="L∞ budget of the image noise, pixel units out of 255")
    step: int = param(1, lo=1, hi=32, help="PGD step in pixel units (keeps the noise on the published 1/255 grid)")


def pgd(
    encode_image: Callable[[torch.Tensor], torch.Tensor],
    loss_of_features: Callable[[torch.Tensor, int], torch.Tensor],
    images: torch.Tensor,
    delta: torch.Tensor,
    *,
    eps: int | torch.Tensor,
    step: int,
    steps: int,
    maximise: bool,
    expand: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, float]:
    """``steps`` sign-gradient steps on ``delta`` for a loss of the image features.

    ``loss_of_features(features, step)`` is called once per step (``step`` from 0), so an objective
    may change between steps (MEM redraws its caption shuffle every step, as the reference does).
    ``images``/``delta``: float ``[B, 3, H, W]`` in pixel units (0..255 and integers within ±eps).
    ``maximise`` picks error-maximising (TAP) over error-minimising (EM, MEM) noise.

    With ``expand``, ``delta`` is a shared noise that ``expand`` maps to the batch's ``[B, 3, H, W]``
    (class-wise noise: ``[U, 3, H, W]`` indexed by each image's class; block noise: one value per block
    of pixels, repeated over it); each image sees its expansion projected into its own pixel range, and
    each step moves a shared value by the sign of the summed gradient of the pixels it reaches, within
    ±``eps`` (a scalar ``eps`` then). Returns the new delta and the loss at the last evaluated point.
    """
    loss = torch.full((), float("nan"))
    for i in range(steps):
        delta = delta.detach().requires_grad_(True)
        seen = delta if expand is None else project(expand(delta), images, eps)
        with autocast(images.device):
            loss = loss_of_features(encode_image(normalize((images + seen) / 255.0)), i)
        (grad,) = torch.autograd.grad(loss, delta)
        moved = delta.detach() + step * (grad.sign() if maximise else -grad.sign())
        delta = project(moved, images, eps) if expand is None else moved.clamp(-eps, eps)
    return delta.detach(), float(loss.detach())
