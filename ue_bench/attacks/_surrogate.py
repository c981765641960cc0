"""What the surrogate-based attacks share: a seeded fresh surrogate and its training on a split.

Every attack that uses a model builds it from the surrogate *victim plugin* (architecture and recipe),
so ``--surrogates rn50`` or ``tiny-rn:lr=5e-4`` changes the attack's model the same way it would
change a victim.
"""

from __future__ import annotations

import math
import time

import numpy as np
import open_clip
import torch

from ue_bench import PairSplit, UsageError, role_seed
from ue_bench.engine.device import autocast
from ue_bench.engine.training import make_optimizer, normalize, read_batch, tokenize_captions, train_clip


def require(surrogate, attack: str):
    if surrogate is None:
        raise UsageError(f"attack {attack!r} needs a surrogate model: pass --surrogates (e.g. tiny-rn)")
    return surrogate


def freeze(model: torch.nn.Module, frozen: bool) -> None:
    """Noise and trigger steps need gradients w.r.t. inputs only: skip the parameter gradients."""
    for p in model.parameters():
        p.requires_grad_(not frozen)


class SplitTensors:
    """A split for attack loops: its uint8 images ``[N, H, W, 3]`` as they are, caption token rows and
    their owners.

    Images (and a delta over them) are read batch by batch
    (:func:`~ue_bench.engine.training.read_batch`), so a memory-mapped split stays on disk. Captions are tokenised once; a batch picks one caption per image at random (seeded), as the
    victim's training loop does.
    """

    def __init__(self, split: PairSplit, tokenizer) -> None:
        self.images = split.images
        self.tokens, self.offsets, self.counts = tokenize_captions(tokenizer, split.captions)
        self.n = len(split)

    def pick(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One random caption row per image of ``idx``."""
        rows = self.offsets[idx] + (torch.rand(len(idx), generator=gen) * self.counts[idx]).long()
        return self.tokens[rows]

    def pixels(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Clean images of ``idx`` as float ``[B, 3, H, W]`` in pixel units (0–255), as PGD takes them."""
        return read_batch(self.images, idx).to(device).permute(0, 3, 1, 2).float()

    def delta(self, delta: np.ndarray, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Rows ``idx`` of an integer ``delta[N, H, W, 3]`` as float ``[B, 3, H, W]`` pixel units."""
        return read_batch(delta, idx).to(device).permute(0, 3, 1, 2).float()

    def unit(self, idx: torch.Tensor, delta: np.ndarray | None, device: torch.device) -> torch.Tensor:
        """Published images of ``idx`` as float ``[B, 3, H, W]`` in [0, 1] (``delta``: integer
        ``[N, H, W, 3]`` pixel units, int8 or int16, or None)."""
        x = self.pixels(idx, device)
        if delta is not None:
            x = (x + self.delta(delta, idx, device)).clamp_(0, 255)
        return x / 255.0


class SurrogateTrainer:
    """AdamW steps of the surrogate with its recipe's learning rate and weight decay (constant rate:
    the min–min loop interleaves many short bursts, so there is no single schedule to follow)."""

    def __init__(self, model: torch.nn.Module, recipe, device: torch.device, lr: float | None = None) -> None:
        self.model = model
        self.device = device
        self.optimizer = make_optimizer(model, recipe.lr if lr is None else lr, recipe.weight_decay,
                                        (recipe.beta1, recipe.beta2), recipe.adam_eps, recipe.decay_embeddings)
        self.loss_fn = open_clip.ClipLoss()

    def step(self, unit: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """One step on a batch; gradients are zeroed every step (the reference accumulated them)."""
        self.model.train()
        with autocast(self.device):
            out = self.model(normalize(unit), tokens.to(self.device))
            loss = self.loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))
        return loss.detach()


def clean_training(surrogate, split: PairSplit, epochs: int) -> dict:
    """The overrides of the surrogate's :meth:`~ue_bench.victim.Victim.train_settings` under which
    :func:`trained_on_clean` trains it (``epochs`` epochs, its batch at most the split)."""
    return {"epochs": epochs, "batch_size": min(surrogate.params.batch_size, len(split))}


def trained_on_clean(surrogate, split: PairSplit, epochs: int, seed: int, device: torch.device,
                     name: str) -> tuple[torch.nn.Module, dict]:
    """A surrogate trained on the clean split with its own recipe (for TAP and feature clustering)."""
    model, init_sha256 = surrogate.initial_model(split.resolution, seed, device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        losses = train_clip(model, surrogate.tokenizer(), split, **surrogate.train_settings(
            **clean_training(surrogate, split, epochs)),
            seed=role_seed(seed, "surrogate-train"), device=device, desc=f"{name} surrogate")
    model.eval()
    return model, {"surrogate_loss": losses[-1], "surrogate_s": round(time.perf_counter() - start, 2),
                   "surrogate_init_sha256": init_sha256}
