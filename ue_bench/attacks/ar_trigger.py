"""Autoregressive perturbations with a text trigger per pseudo-class: a shortcut on both sides of the pair.

A research variant for issue 27's search (a protection that survives open_clip's trainer), not a paper's
attack. Image-only shortcuts (``ar``, ``synthetic``, EM) leave a CLIP victim near clean: a contrastive
loss is lowered only by what an image shares with *its own caption* against the batch's others, and
nothing in a caption predicts image-only noise. MEM's text trigger is that caption-side correlate, but
its per-image noise is made for pixels the trainer's random resize-crop resamples. Here the image side
is ``ar``'s noise (Sandoval-Segura et al., NeurIPS 2022): one autoregressive process per pseudo-class,
a stationary texture that a 3×3 filter detects anywhere in the image, so a shift or a mild rescale
keeps it; the text side is ``trigger_len`` random whole words per pseudo-class (drawn as MEM's triggers
are, from the safe vocabulary of :mod:`._trigger`), put before each of the class's captions. A victim
can then match pairs of different pseudo-classes by texture ↔ words instead of content. The image noise
is ``ar``'s bit for bit for the same parameters and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ue_bench import Protection, param

from ._surrogate import require
from ._trigger import trigger_text, trigger_vocab
from .ar_noise import ARNoise, ARParams


@dataclass(frozen=True)
class ARTriggerParams(ARParams):
    """``ar``'s parameters plus the trigger's length."""

    trigger_len: int = param(2, lo=1, hi=8, help="random whole words per pseudo-class, put before each of its "
                                                 "captions")


class ARTrigger(ARNoise):
    """``ar``'s noise and ``trigger_len`` random words per pseudo-class before its captions (research variant).

    Returns a memory-mapped integer delta ``[N, H, W, 3]`` with L∞ norm ``eps`` pixel units (out of 255)
    per image (``ar``'s) and one trigger per image, its pseudo-class's. Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate (its tokenizer spells the triggers).
    """

    Params = ARTriggerParams
    version = "1"
    uses_surrogate = True  # its tokenizer spells the triggers, whatever the grouping
    presets = {"tiny": {"surrogate_epochs": 1, "groups": 4}}

    def trains_surrogate(self) -> bool:
        return self.params.grouping == "kmeans"  # random groups read only its tokenizer

    def protect(self, split, surrogate, seed, device):
        tok = require(surrogate, self.name).tokenizer()
        delta, group, meta, gen = self.noise(split, surrogate, seed, device)
        vocab = trigger_vocab(tok)
        words = vocab[torch.randint(len(vocab), (int(group.max()) + 1, self.params.trigger_len), generator=gen)]
        per_class = [trigger_text(tok, w) for w in words]
        triggers = [per_class[g] for g in group.tolist()]
        meta.update(trigger_vocab=len(vocab), trigger_examples=per_class[:5], distinct_triggers=len(set(per_class)))
        return Protection(delta=delta, triggers=triggers, meta=meta)
