"""EM (error-minimising noise, Huang et al. 2021) adapted to image–caption pairs, the MEM paper's baseline."""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench.attack import Attack
from ue_bench.params import param

from ._minmin import MinMinSettings, cost_steps, min_min

@dataclass(frozen=True)
class EMParams:
    eps: int = param(8, lo=0, hi=32, help="L∞ budget of the image noise, pixel units out of 255")
    step: int = param(1, lo=1, hi=32, help="PGD step in pixel units (keeps the noise on the published 1/255 grid)")
    pgd_steps: int = param(8, lo=0, hi=1000, help="PGD steps on the noise per batch and outer iteration")
    outer_iters: int = param(8, lo=1, hi=1000, help="outer iterations (upper bound; see stop_loss)")
    surrogate_steps: int = param(30, lo=0, hi=100000, help="surrogate AdamW steps per outer iteration")
    surrogate_lr: float | None = param(1e-4, lo=0.0, hi=1.0, help="surrogate AdamW rate (the reference's 1e-4; "
                                       "None: the surrogate recipe's)")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per surrogate step and per noise batch")
    stop_loss: float | None = param(None, lo=0.0, help="stop early once a pass's mean PGD loss is at most this")


class EM(Attack):
    """EM: sample-wise error-minimising image noise, min–min against a surrogate, caption as the positive."""

    Params = EMParams
    version = "1"

    def settings(self) -> MinMinSettings:
        p = self.params
        return MinMinSettings(
            eps=p.eps, step=p.step, pgd_steps=p.pgd_steps, outer_iters=p.outer_iters,
            surrogate_steps=p.surrogate_steps, batch_size=p.batch_size, stop_loss=p.stop_loss,
            surrogate_lr=p.surrogate_lr)

    def cost_steps(self, n_images: int) -> float:
        return cost_steps(self.settings(), n_images)

    def protect(self, split, surrogate, seed, device):
        return min_min(self.name, split, surrogate, seed, device, self.settings())
