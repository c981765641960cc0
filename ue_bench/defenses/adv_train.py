"""Adversarial training of the victim (Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018), as APBench runs it against availability poisons (lafeat/apbench,
``madrys.py``): every training step first moves each batch image by PGD ascent on the training loss within
an L∞ ball of ``radius`` (``steps`` signed steps of ``step`` from a start drawn as ``step`` × a standard
normal, projected into the ball, the image kept in [0, 1]), with the model in eval mode and no parameter gradients, then descends
on the loss at the moved batch in train mode. Bounded unlearnable noise inside the ball is then no
shortcut the model can rely on. The training loss here is CLIP's contrastive loss of the batch against its
captions; APBench's defaults are ε 8/255, 10 steps of 2/255.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch

from ue_bench import Defense, param
from ue_bench.engine.training import PGD_STEP_COST, clip_loss, normalize

from .ueraser import step_generator

@dataclass(frozen=True)
class AdvTrainParams:
    radius: float = param(8.0, lo=0.0, hi=64.0, help="L∞ radius of the PGD perturbation, pixel units out of 255 "
                                                      "(APBench: 8)")
    steps: int = param(10, lo=0, hi=1000, help="PGD ascent steps per training step (APBench: 10); each costs a "
                                               "quarter to a third of a training step (tiny-rn, CPU)")
    step: float = param(2.0, lo=0.0, hi=64.0, help="PGD step, pixel units out of 255 (APBench: 2)")


class AdvTrain(Defense):
    """Adversarial training (Madry et al. 2018, APBench's setting): descend on PGD-moved batches within ±radius."""

    Params = AdvTrainParams
    version = "1"
    presets = {"tiny": {"steps": 1}}

    def train_cost(self) -> float:
        return 1.0 + PGD_STEP_COST * self.params.steps

    def batch_loss(self, seed: int, total_steps: int | None = None):
        p = self.params
        loss_fn = open_clip.ClipLoss()
        radius, size = p.radius / 255.0, p.step / 255.0

        def loss(model, unit, tokens, step):
            gen = step_generator(seed, step)
            start = unit.detach() + size * torch.randn(unit.shape, generator=gen).to(unit.device)
            moved = torch.minimum(torch.maximum(start, unit - radius), unit + radius).clamp(0.0, 1.0)
            was_training = model.training
            model.eval()
            for q in model.parameters():
                q.requires_grad_(False)
            try:
                with torch.no_grad():  # the captions do not move: their features serve every PGD step
                    text, scale = model.encode_text(tokens, normalize=True), model.logit_scale.exp()
                for _ in range(p.steps):
                    moved.requires_grad_(True)
                    image = model.encode_image(normalize(moved), normalize=True)
                    (grad,) = torch.autograd.grad(loss_fn(image, text, scale), moved)
                    moved = moved.detach() + size * grad.sign()
                    moved = torch.minimum(torch.maximum(moved, unit - radius), unit + radius).clamp(0.0, 1.0)
            finally:
                for q in model.parameters():
                    q.requires_grad_(True)
                model.train(was_training)
            return clip_loss(model, loss_fn, normalize(moved.detach().clamp(0.0, 1.0)), tokens)

        return loss
