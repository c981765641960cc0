"""Low-frequency word patterns: a compositional shortcut on both sides of the pair, with no optimisation.

A research variant for issue 27's search (a protection that survives open_clip's trainer), not a paper's
attack. The search found two things that each move a victim and neither enough: a caption-side
correlate of the image noise (``ar-trigger``: one texture and one pair of words per pseudo-class), and
noise that is smooth at the scale of the trainer's crop (``mem-lowfreq``). A pseudo-class shortcut
separates only pairs of different classes, so a batch's same-class pairs still have to be told apart by
content; per-image noise (MEM's) separates every pair, but a victim from another initialisation must
learn each image's noise–trigger link on its own. Here the shortcut is compositional, as the content of
the captions is: each of ``words`` random whole words has a random ±1 pattern on a grid ``block`` times
coarser than the image; each image gets ``trigger_len`` distinct words at random, put before each of its
captions, and its noise is ``eps`` times the sign of the sum of its words' patterns (their majority
vote), repeated over each block (nearest-neighbour), within the image's pixel range. There are
C(words, trigger_len) different triggers (560 for 3 of 16), and one linear read-out per word, learned
from the images that carry it, decodes any of them: the shortcut generalises the way colours and
shapes do. The crop shifts the image by a few pixels, a fraction of a block, so the patterns survive it
(``mem-patterns`` spells words with per-pixel tiles, which do not: ``docs/results/2026-12-06/attack-search``).
Nothing is learned from a model; the surrogate's tokenizer picks words that survive decode → encode
(:mod:`._trigger`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ue_bench import Attack, Protection, UsageError, delta_buffer, param, release
from ue_bench.engine.pixel_box import project
from ue_bench.engine.training import read_batch

from ._surrogate import require
from ._tiles import expand_blocks
from ._trigger import trigger_text, trigger_vocab

#: Images per chunk of the expansion to pixels (the delta is memory-mapped).
CHUNK = 1024


@dataclass(frozen=True)
class LowFreqWordsParams:
    """The budget, the vocabulary and the grid."""

    eps: int = param(8, lo=0, hi=32, help="L∞ budget, pixel units out of 255 (every element of the noise is ±eps "
                                          "before the pixel range clips it)")
    words: int = param(16, lo=2, hi=10000, help="whole words in the vocabulary, each with its own pattern")
    trigger_len: int = param(3, lo=1, hi=8, help="distinct words per image, put before each of its captions; odd, "
                                                 "so that the majority vote never ties")
    block: int = param(8, lo=1, hi=64, help="side in pixels of the squares that share one pattern value")

    def __post_init__(self) -> None:
        if self.trigger_len > self.words:
            raise UsageError(f"lowfreq-words: trigger_len={self.trigger_len} exceeds words={self.words}")
        if self.trigger_len % 2 == 0:
            raise UsageError(f"lowfreq-words: trigger_len={self.trigger_len} is even; the majority vote of an "
                             "even number of patterns can tie (expected an odd number)")


def word_patterns(k: int, grid: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """``k`` random ±1 patterns, int16 ``[k, 3, gh, gw]`` (word, channel, grid row, grid column)."""
    return torch.randint(0, 2, (k, 3, *grid), generator=gen, dtype=torch.int16) * 2 - 1


def majority(patterns: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The sign of the sum of the chosen patterns, int16 ``[B, 3, gh, gw]`` in {−1, 1}: ``patterns[k, 3,
    gh, gw]`` from :func:`word_patterns`, ``chosen[B, T]`` word indices with ``T`` odd."""
    return patterns[chosen].sum(1).sign()


class LowFreqWords(Attack):
    """Low-frequency sign patterns that spell each image's random trigger words (research variant).

    Returns a memory-mapped integer delta ``[N, H, W, 3]`` of ±``eps`` pixel units (out of 255) per
    element, within each image's pixel range, and one trigger of ``trigger_len`` words per image. Raises
    :class:`~ue_bench.errors.UsageError` without a surrogate (its tokenizer spells the triggers), for an
    even ``trigger_len`` or one above ``words`` (at creation), and when the tokenizer has fewer safe
    whole words than ``words``.
    """

    Params = LowFreqWordsParams
    version = "1"
    presets = {"tiny": {"words": 6}}

    def cost_steps(self, n_images: int) -> float:
        return 0.0

    def trains_surrogate(self) -> bool:
        return False  # its tokenizer only

    def protect(self, split, surrogate, seed, device):
        p = self.params
        tok = require(surrogate, self.name).tokenizer()
        gen = torch.Generator().manual_seed(seed)
        safe = trigger_vocab(tok)
        if len(safe) < p.words:
            raise UsageError(f"attack {self.name!r}: the tokenizer has {len(safe)} safe whole words, "
                             f"fewer than words={p.words}")
        vocab = safe[torch.randperm(len(safe), generator=gen)[:p.words]]
        n, h, w, _ = split.images.shape
        patterns = word_patterns(p.words, (-(-h // p.block), -(-w // p.block)), gen)
        chosen = torch.rand(n, p.words, generator=gen).argsort(1)[:, :p.trigger_len].sort(1).values
        delta = delta_buffer(tuple(split.images.shape), p.eps)
        for a in range(0, n, CHUNK):
            signs = majority(patterns, chosen[a:a + CHUNK])
            noise = expand_blocks(signs, p.block, (h, w))
            images = read_batch(split.images, torch.arange(a, a + len(signs))).to(torch.int16)
            delta[a:a + len(noise)] = project(noise.permute(0, 2, 3, 1) * p.eps, images).numpy()
            release(delta)
        triggers = [trigger_text(tok, vocab[c]) for c in chosen]
        meta = {"vocab": [trigger_text(tok, vocab[i:i + 1]) for i in range(p.words)],
                "distinct_triggers": len(set(triggers)), "trigger_examples": triggers[:5]}
        return Protection(delta=delta, triggers=triggers, meta=meta)
