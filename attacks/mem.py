"""MEM (Multi-step Error Minimization, Liu et al., ACM MM 2024): image noise and text triggers together."""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench.attack import Attack
from ue_bench.params import param

from ._minmin import MinMinSettings, cost_steps, min_min

@dataclass(frozen=True)
class MEMParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget of the image noise, pixel units out of 255")
    step: int = param(1, lo=1, hi=32, help="PGD step in pixel units (keeps the noise on the published 1/255 grid)")
    pgd_steps: int = param(8, lo=0, hi=1000, help="PGD steps on the noise per batch and outer iteration")
    outer_iters: int = param(8, lo=1, hi=1000, help="outer iterations (upper bound; see stop_loss)")
    surrogate_steps: int = param(30, lo=0, hi=100000, help="surrogate AdamW steps per outer iteration")
    surrogate_lr: float | None = param(1e-4, lo=0.0, hi=1.0, help="surrogate AdamW rate (the reference's 1e-4; "
                                       "None: the surrogate recipe's)")
    hotflip_iters: int = param(4, lo=0, hi=1000, help="outer iterations (the first ones) that update the triggers")
    candidates: int = param(16, lo=1, hi=4096, help="HotFlip top-k tokens per position scored exactly")
    trigger_len: int = param(3, lo=1, hi=8, help="trigger words per image, after the start token (MEM-3, MEM-5)")
    shuffle: bool = param(True, help="pair each image with a random batch caption carrying its own trigger during PGD/HotFlip")
    novel_words: bool = param(False, help="restrict trigger words to tokens absent from every caption of the split")
    words: int | None = param(None, lo=2, hi=100000, help="draw the trigger words from this many tokens (seeded subset); None: all")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per surrogate step and per noise batch")
    stop_loss: float | None = param(None, lo=0.0, help="stop early once a pass's mean PGD loss is at most this")


class MEM(Attack):
    """MEM: per-image error-minimising noise bound to a HotFlip-optimised text trigger (the seed paper)."""

    Params = MEMParams
    version = "1"

    def settings(self) -> MinMinSettings:
        p = self.params
        return MinMinSettings(
            eps=p.eps, step=p.step, pgd_steps=p.pgd_steps, outer_iters=p.outer_iters,
            surrogate_steps=p.surrogate_steps, batch_size=p.batch_size, trigger_len=p.trigger_len,
            hotflip_iters=p.hotflip_iters, candidates=p.candidates, shuffle=p.shuffle,
            novel_words=p.novel_words, words=p.words, stop_loss=p.stop_loss, surrogate_lr=p.surrogate_lr)

    def cost_steps(self, n_images: int) -> float:
        return cost_steps(self.settings(), n_images)

    def protect(self, split, surrogate, seed, device):
        return min_min(self.name, split, surrogate, seed, device, self.settings())
