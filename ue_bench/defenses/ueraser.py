"""Training-time defenses: UEraser (adversarial augmentation) and its single-view baseline.

UEraser (Qin et al. 2023, "Learning the Unlearnable: Adversarial Augmentations Suppress Unlearnable
Example Attacks", arXiv 2303.15127) trains on K strongly augmented views of each batch and descends on
the worst one, so that a bounded shortcut noise cannot survive every view. The schedule follows the
reference code (lafeat/ueraser, ``cifar_train.py --mode standard``): the worst of K = 5 views for the
first 50 of 200 epochs, then a single view per step (the reference's ``--mode fast``, "UEraser-Lite")
for the rest. ``adversarial_frac`` is that first share of training; 1.0 is the reference's ``em`` mode
(worst of K throughout).

Contrastive adaptation. The reference takes, per sample, the maximum over its K views of the sample's
cross-entropy, and descends on the mean of those maxima. Here each view is a whole augmented batch
(the negatives of a sample come from the same view), a sample's loss in a view is its share of the CLIP
loss, half the cross-entropy of its image against the batch's texts plus half that of its text against
the view's images (:func:`per_sample_clip_loss`; their mean is open_clip's ``ClipLoss``), and the step
descends on the mean over samples of each sample's worst view, as Qin et al. do. Every view is run with
gradients (K forward and backward passes through the model, K graphs' memory); batch-norm statistics
see each view as its own batch. Before 2026-12-03 (version 1) the step took the one view with the
largest batch loss instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ue_bench import Defense, UsageError, param
from ue_bench.engine.training import clip_loss, normalize

from ._augment import ViewParams, ueraser_view


def per_sample_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``[B]``: each pair's share of open_clip's ``ClipLoss`` on normalised ``[B, D]`` features (their mean
    is that loss): half the cross-entropy of image i over the texts plus half that of text i over the images."""
    logits = scale * image_features @ text_features.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none")) / 2


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
    """UEraser: descend on each sample's worst of K strong augmentations (plasma maps, channel shuffle, TrivialAugment ops)."""

    Params = UEraserParams
    version = "2"  # 2: the per-sample worst view (Qin et al.), where 1 took the worst whole-batch view

    def train_cost(self) -> float:
        """K views per step in the adversarial share of the steps, one after it."""
        return 1.0 + (self.params.repeats - 1) * self.params.adversarial_frac

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
            if len(views) == 1:
                return clip_loss(model, loss_fn, normalize(views[0]), tokens)
            per_view = []
            for v in views:
                out = model(normalize(v), tokens)
                per_view.append(per_sample_clip_loss(out["image_features"], out["text_features"], out["logit_scale"]))
            return torch.stack(per_view).amax(0).mean()

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
