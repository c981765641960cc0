"""REM, robust error-minimising noise (Fu et al., "Robust Unlearnable Examples: Protecting Data Against
Adversarial Learning", ICLR 2022, arXiv 2203.14533), for image–caption pairs.

Error-minimising noise is learned through by adversarial training; REM makes it survive that and data
augmentation with a min–min–max problem: the surrogate trains adversarially (PGD of radius ``adv_radius``
on its published training batches), and the noise minimises the loss of that robust model at the
*worst* point within ``adv_radius`` of each random view of the protected image (expectation over
``eot_samples`` transformations of every PGD step). Here the loss is CLIP's contrastive loss with each
image's own caption as the positive (EM's objective, ``em``), and the views are open_clip's
``RandomResizedCrop`` draws (``mem-eot``'s :class:`~ue_bench.attacks.mem_eot.ResizeCrops`), the
trainer's augmentation for CLIP as random crops and flips are for CIFAR.

The ``paper`` preset takes REM's CIFAR-10 setting from its reference code (fshp971/robust-unlearnable-
examples, README's ``generate_robust_em.py`` command): noise radius 8/255, 10 PGD steps, adversarial
radius 4/255 with 10 steps of 0.8/255 from a random start, 5 samples per expectation; and MEM's reference
loop counts for EM (5 outer iterations of 50 surrogate steps at batch 128) for the alternation, since
REM's schedule (5,000 SGD steps of a classifier, the noise of each batch updated at every step) has no
counterpart for a CLIP surrogate. Departures: the noise is an integer delta on the 1/255 grid, so its
PGD step is 2/255 (REM's 1.6/255 rounded) and starts from the current noise, not at random; the
surrogate's adversarial batches are the published images without augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from ue_bench import param, role_seed
from ue_bench.engine.device import autocast
from ue_bench.engine.training import PGD_STEP_COST

from ._minmin import MinMinAttack, MinMinParams, cost_steps
from .mem_eot import ResizeCrops


@dataclass(frozen=True)
class REMParams(MinMinParams):
    """EM's parameters plus the adversary's and the expectation's."""

    adv_radius: float = param(4.0, lo=0.0, hi=32.0, help="L∞ radius ρ_a of the adversarial perturbation, pixel units "
                                                         "out of 255 (REM: 4; below eps, or no noise survives)")
    adv_steps: int = param(10, lo=0, hi=1000, help="PGD steps of the adversary (REM: 10)")
    adv_step: float = param(0.8, lo=0.0, hi=32.0, help="adversary's PGD step, pixel units out of 255 (REM: 0.8)")
    eot_samples: int = param(5, lo=1, hi=64, help="random resize-crops per image and PGD step whose worst-case "
                                                  "losses are averaged (REM's --samp-num: 5)")
    eot_scale: float = param(0.9, lo=0.05, hi=1.0, help="smallest crop area as a fraction of the image "
                                                        "(open_clip's default RandomResizedCrop: 0.9 to 1)")


class LinfAdversary:
    """PGD ascent on the CLIP loss within an L∞ ball of ``radius`` pixel units (out of 255), from a uniform
    random start, in normalised input space (the radius and step scaled by each channel's std) and kept in
    the image range, as REM's ``_get_adv_`` (the reference clips to its data range). Seeded by ``seed``;
    returns the detached perturbation of normalised float ``x[B, 3, H, W]``."""

    def __init__(self, radius: float, steps: int, step: float, seed: int) -> None:
        self.radius, self.steps, self.step = radius, steps, step
        self.gen = torch.Generator().manual_seed(seed)
        self.loss_fn = open_clip.ClipLoss()

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if self.steps == 0 or self.radius == 0:
            return torch.zeros_like(x)
        std = torch.tensor(OPENAI_DATASET_STD, device=x.device).view(1, 3, 1, 1)
        mean = torch.tensor(OPENAI_DATASET_MEAN, device=x.device).view(1, 3, 1, 1)
        lo, hi, r = -mean / std, (1 - mean) / std, self.radius / 255.0 / std
        start = (torch.rand(x.shape, generator=self.gen) * 2 - 1).to(x.device) * r
        rho = torch.maximum(torch.minimum(x + start, hi), lo) - x
        for _ in range(self.steps):
            rho = rho.detach().requires_grad_(True)
            with torch.enable_grad(), autocast(x.device):
                loss = self.loss_fn(F.normalize(model.encode_image(x + rho).float(), dim=-1), text, scale)
            (grad,) = torch.autograd.grad(loss, rho)
            rho = (rho.detach() + self.step / 255.0 / std * grad.sign()).clamp(-r, r)
            rho = torch.maximum(torch.minimum(x + rho, hi), lo) - x
        return rho.detach()


class REM(MinMinAttack):
    """REM: min–min–max noise against an adversarially trained surrogate, over random views (Fu et al. 2022).

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255), no
    trigger. Each PGD step costs about ``eot_samples × (adv_steps + 1)`` of ``em``'s, each surrogate step
    ``adv_steps + 1``. Raises :class:`~ue_bench.errors.UsageError` without a surrogate.
    """

    Params = REMParams
    version = "1"
    presets = {
        "tiny": {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "batch_size": 16, "adv_steps": 1,
                 "eot_samples": 1},
        # REM's CIFAR-10 noise (reference README, generate_robust_em.py): radius 8, 10 PGD steps (1.6/255 → 2 on
        # the integer grid), adversary 4/255, 10 steps of 0.8/255, 5 samples; MEM's reference EM loop counts
        "paper": {"eps": 8, "step": 2, "pgd_steps": 10, "outer_iters": 5, "surrogate_steps": 50, "batch_size": 128,
                  "adv_radius": 4.0, "adv_steps": 10, "adv_step": 0.8, "eot_samples": 5},
    }

    def pgd_views(self, seed: int) -> ResizeCrops:
        return ResizeCrops(self.params.eot_samples, self.params.eot_scale, seed)

    def adversary(self, seed: int) -> LinfAdversary:
        p = self.params
        return LinfAdversary(p.adv_radius, p.adv_steps, p.adv_step, role_seed(seed, "attack-adversary"))

    def cost_steps(self, n_images: int) -> float:
        p = self.params
        nb = -(-n_images // max(2, min(p.batch_size, n_images))) if n_images else 0
        inner = p.adv_steps + 1
        return (cost_steps(p, n_images) * inner + (p.eot_samples - 1) * inner * p.outer_iters * nb * p.pgd_steps
                * PGD_STEP_COST)
