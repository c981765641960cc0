"""Error-maximising (TAP-like) noise: PGD that raises the contrastive loss of a clean-trained surrogate.

TAP (Fowl et al., "Adversarial examples make strong poisons", NeurIPS 2021) attacks a model trained on
the clean data; the MEM paper's baseline is the reference's ``src/poison_max.py``: one pass of 8
ascent steps of 1/255 within 8/255 at batch 128 (the ``paper`` preset). That script's line loading a
trained checkpoint is commented out, so it ascends on the model as created (untrained, or OpenAI's with
``--pretrained``); here the surrogate is trained on the clean pairs first (``surrogate_epochs``; the
paper preset: the paper's 32 epochs), as TAP is defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F

from ue_bench import Attack, Protection, delta_buffer, param
from ue_bench.engine.training import PGD_STEP_COST, batches

from ._hotflip import encode_text
from ._pgd import PGDBudgetParams, pgd
from ._surrogate import SplitTensors, freeze, require, trained_on_clean


@dataclass(frozen=True)
class TAPParams(PGDBudgetParams):
    pgd_steps: int = param(10, lo=1, hi=1000, help="PGD steps per image")
    surrogate_epochs: int = param(10, lo=1, hi=10000, help="epochs of clean training of the surrogate first")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per PGD batch (the contrastive negatives)")


class TAP(Attack):
    """TAP-like error-maximising noise: PGD ascent on the CLIP loss of a surrogate trained on clean pairs."""

    Params = TAPParams
    version = "1"
    presets = {"tiny": {"surrogate_epochs": 1, "pgd_steps": 2, "batch_size": 16},
               # the reference's error-maximising noise (src/poison_max.py): one pass of 8 PGD steps of 1/255
               # within 8/255 at batch 128; its surrogate is trained on clean pairs for the paper's 32 epochs
               "paper": {"eps": 8, "step": 1, "pgd_steps": 8, "batch_size": 128, "surrogate_epochs": 32}}

    def cost_steps(self, n_images: int) -> float:
        p = self.params
        return -(-n_images // max(2, min(p.batch_size, n_images))) * p.pgd_steps * PGD_STEP_COST

    def clean_surrogate_epochs(self) -> int:
        return self.params.surrogate_epochs

    def protect(self, split, surrogate, seed, device):
        p = self.params
        surrogate = require(surrogate, self.name)
        model, meta = trained_on_clean(surrogate, split, p.surrogate_epochs, seed, device, self.name)
        data = SplitTensors(split, surrogate.tokenizer())
        gen = torch.Generator().manual_seed(seed)
        delta = delta_buffer(split.images.shape, p.eps)
        freeze(model, True)
        scale = model.logit_scale.exp().detach().float()
        loss_fn = open_clip.ClipLoss()
        losses = []
        for idx in batches(data.n, min(p.batch_size, data.n), gen, keep_all=True):
            with torch.no_grad():
                text = encode_text(model, data.pick(idx, gen).to(device))
            images = data.pixels(idx, device)
            d, loss = pgd(model.encode_image,
                          lambda f, _step, text=text: loss_fn(F.normalize(f.float(), dim=-1), text, scale),
                          images, torch.zeros_like(images), eps=p.eps, step=p.step, steps=p.pgd_steps, maximise=True)
            delta[idx.numpy()] = d.round().to(torch.int16).permute(0, 2, 3, 1).cpu().numpy()
            losses.append(loss)
        meta["pgd_loss"] = sum(losses) / len(losses)
        return Protection(delta=delta, meta=meta)
