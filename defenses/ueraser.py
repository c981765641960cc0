"""Training-time defenses: UEraser (adversarial augmentation) and its single-view baseline.

UEraser (Qin et al. 2023, "Learning the Unlearnable: Adversarial Augmentations Suppress Unlearnable
Example Attacks", arXiv 2303.15127) trains on K strongly augmented views of each batch and descends on
the worst one, so that a bounded shortcut noise cannot survive every view. The schedule follows the
reference code (lafeat/ueraser, ``cifar_train.py --mode standard``): the worst of K = 5 views for the
first 50 of 200 epochs, then a single view per step (the reference's ``--mode fast``, "UEraser-Lite")
for the rest. ``adversarial_frac`` is that first share of training; 1.0 is the reference's ``em`` mode
(worst of K throughout).

Contrastive adaptation. The reference takes the maximum over views *per sample* of a cross-entropy.
The CLIP loss of a sample depends on the whole batch (its negatives come from the same view), so a
per-sample maximum is not defined; here each view is a whole batch and the step descends on the view
with the largest batch loss. The K candidate losses are computed without gradients and only the
chosen view is run again with gradients: the same gradient as back-propagating through a max over K
graphs, at one backward pass and one graph's memory (batch-norm running statistics see K + 1 batches
per step instead of K).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open_clip
import torch

from ue_bench.defense import Defense
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.training import clip_loss, normalize

from ._augment import ViewParams, ueraser_view


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one training step's augmentations: a function of (seed, step) only."""
    state = np.random.SeedSequence([seed, step, 0x55455241]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@dataclass(frozen=True)
class UEraserParams(ViewParams):
    repeats: int = param(5, lo=1, hi=32, help="K: augmented views per step in the adversarial phase (reference: 5)")
    adversarial_frac: float = param(0.25, lo=0.0, hi=1.0,
                                    help="share of training steps, the first ones, that take the worst of K views "
                                         "(reference: 50 of 200 epochs); the rest use one view")


class UEraser(Defense):
    """UEraser: descend on the worst of K strong augmentations (plasma maps, channel shuffle, TrivialAugment ops)."""

    Params = UEraserParams
    version = "1"

    def batch_loss(self, seed: int, total_steps: int | None = None):
        p = self.params
        if total_steps is None and 0.0 < p.adversarial_frac < 1.0:
            raise UsageError(f"defense {self.name!r}: its adversarial phase is a share of training, "
                             "so it needs the run's total_steps")
        adversarial_steps = round(p.adversarial_frac * total_steps) if total_steps is not None else (
            0 if p.adversarial_frac == 0.0 else float("inf"))
        loss_fn = open_clip.ClipLoss()

        def loss(model, unit, tokens, step):
            gen = step_generator(seed, step)
            views = [ueraser_view(unit, gen, p) for _ in range(p.repeats if step < adversarial_steps else 1)]
            if len(views) > 1:
                with torch.no_grad():
                    worst = int(torch.stack([clip_loss(model, loss_fn, normalize(v), tokens) for v in views]).argmax())
                views = [views[worst]]
            return clip_loss(model, loss_fn, normalize(views[0]), tokens)

        return loss


class Augment(Defense):
    """Plain strong augmentation: one UEraser view per step, no worst-of-K (UEraser-Lite, the weaker baseline)."""

    Params = ViewParams
    version = "1"

    def batch_loss(self, seed: int, total_steps: int | None = None):
        """The same view every step, so the run's length (``total_steps``) does not matter."""
        loss_fn = open_clip.ClipLoss()
        view = self.params

        def loss(model, unit, tokens, step):
            return clip_loss(model, loss_fn, normalize(ueraser_view(unit, step_generator(seed, step), view)), tokens)

        return loss
