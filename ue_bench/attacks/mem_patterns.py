"""MEM with fixed sign patterns that spell trigger words (a research variant of MEM, not in the paper).

Part of the budget is fixed noise that spells each image's trigger words, in the manner of Yu et al.'s
synthetic class patterns ("Availability attacks create shortcuts"), and MEM's PGD optimises the rest
on top of it. The noise that MEM optimises against a ResNet surrogate barely transfers to a ViT victim,
while such patterns do. Measurements: ``docs/results/2026-11-27/mem-patterns`` and ``mem-pattern-share``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ue_bench import UsageError, param
from ue_bench.engine.pixel_box import project
from ue_bench.engine.training import images_tensor

from ._minmin import FixedNoise
from ._surrogate import SplitTensors
from ._tiles import sign_tiles, tile_over
from .mem import MEM, MEMParams


@dataclass(frozen=True)
class MEMPatternsParams(MEMParams):
    """MEM's parameters plus the patterns' and two restrictions of the trigger vocabulary."""

    trigger_len: int = param(3, lo=1, hi=8, help="trigger words per image, after the start token; the patterns "
                                                 "spell them, so at least one")

    patterns: int = param(4, lo=1, hi=32, help="amplitude (pixel units out of 255) of the fixed sign patterns "
                                               "that spell each image's trigger words; at most eps")
    pattern_patch: int = param(4, lo=1, hi=32, help="side in pixels of each word's tiled sign pattern (one "
                                                    "tile per vocabulary word is held in memory)")
    pattern_words: int = param(0, lo=0, hi=8, help="extra trigger words after MEM's own, drawn from pattern_vocab "
                                                   "tokens, never flipped; the patterns spell these (0: MEM's own)")
    pattern_vocab: int = param(16, lo=2, hi=100000, help="tokens the pattern words are drawn from (seeded subset)")
    pattern_layout: str = param("sum", choices=("sum", "split"),
                                help="sum: the spelled words' tiles add up (each ±ceil(patterns / their number)); "
                                     "split: each tile element belongs to one word, at ±patterns")
    pattern_share: float = param(1.0, lo=0.0, hi=1.0, help="share of noise elements (seeded, the same in every "
                                 "tile) that carry the patterns; PGD gets the whole eps on the others")
    words: int | None = param(None, lo=2, hi=100000, help="draw MEM's trigger words from this many tokens "
                                                          "(seeded subset); None: all")
    novel_words: bool = param(False, help="restrict MEM's trigger words to tokens absent from every caption "
                                          "of the split")

    def __post_init__(self) -> None:
        if self.patterns > self.eps:
            raise UsageError(f"mem-patterns: patterns={self.patterns} exceeds the budget eps={self.eps}")


class WordPatterns:
    """Fixed noise that spells trigger words: one random sign tile of ``patch`` px per vocabulary word.

    Tiles are repeated over the image and clipped to the pixel range. With layout ``sum`` an image's
    pattern is the sum of its words' ±``ceil(budget / trigger_len)`` tiles, clipped to ±budget; with
    ``split`` each tile element belongs to one word (seeded, at random) and carries that word's sign at
    the full ±budget, so every word's feature has ``trigger_len``× the energy of ``sum``'s. With
    ``share`` < 1 only that (seeded) share of the tile's elements carries a pattern at all and PGD gets
    the whole eps on the others: under an L∞ budget this leaves the optimised part far more room than a
    smaller ``budget`` does. A word shared by many images is then one feature that any image tower can
    read off linearly, as Yu et al.'s synthetic class patterns are, while the optimised noise fits the
    surrogate.

    ``vocab``: sorted long ids of the words; ``budget``: amplitude in pixel units out of 255.
    """

    def __init__(self, vocab: torch.Tensor, trigger_len: int, budget: int, patch: int, gen: torch.Generator,
                 layout: str = "sum", share: float = 1.0) -> None:
        self.vocab, self.budget = vocab, budget
        self.signs = sign_tiles(len(vocab), patch, gen)
        if layout == "split":
            owner = torch.randint(trigger_len, (patch, patch, 3), generator=gen)
            self.weight = F.one_hot(owner, trigger_len).permute(3, 0, 1, 2).to(torch.int16) * budget
        else:
            self.weight = torch.full((trigger_len, 1, 1, 1), -(-budget // trigger_len), dtype=torch.int16)
        # drawn only when share < 1, so that protections without a share keep their random stream
        self.carrier = torch.rand(patch, patch, 3, generator=gen) < share if share < 1 else \
            torch.ones(patch, patch, 3, dtype=torch.bool)
        self.weight = self.weight * self.carrier

    def free_budget(self, eps: int, h: int, w: int) -> torch.Tensor:
        """float ``[3, H, W]``: what PGD may add per element on top of the patterns (eps − budget where
        a pattern lies, eps elsewhere), pixel units."""
        carried = tile_over(self.carrier[None], h, w)[0].permute(2, 0, 1)
        return eps - self.budget * carried.float()

    def __call__(self, trig: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """int16 ``[B, H, W, 3]`` patterns for triggers ``trig[B, T]`` (ids in ``vocab``) on uint8
        ``images[B, H, W, 3]``, within ±budget and the pixel range."""
        _, h, w, _ = images.shape
        words = self.signs[torch.searchsorted(self.vocab, trig)]
        tile = (words * self.weight).sum(1).clamp(-self.budget, self.budget)
        return project(tile_over(tile.to(torch.int16), h, w), images.to(torch.int16))


class OwnWordPatterns(FixedNoise):
    """Patterns that spell MEM's own (HotFlip-updated) trigger words, re-spelled after every flip."""

    def __init__(self, spell: WordPatterns, trigger: torch.Tensor, images: torch.Tensor, free: torch.Tensor) -> None:
        super().__init__(spell(trigger, images), free, torch.zeros(len(images), 0, dtype=torch.long))
        self.spell, self.images = spell, images

    def respell(self, idx: torch.Tensor, trigger: torch.Tensor) -> None:
        self.delta[idx] = self.spell(trigger, self.images[idx])


class MEMPatterns(MEM):
    """MEM on top of fixed sign patterns that spell trigger words (research variant; ``mem`` is the paper's).

    ``patterns`` pixel units (out of 255) of the ``eps`` budget are fixed ±tiles per trigger word
    (:class:`WordPatterns`); PGD optimises the rest. The patterns spell MEM's own words (re-spelled after
    each HotFlip update), or with ``pattern_words`` > 0 extra words appended to each trigger, drawn from
    ``pattern_vocab`` tokens and never flipped. Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within
    ±``eps`` and one trigger of ``trigger_len + pattern_words`` words per image; its patterns, an int16
    array the size of the split, are held in memory. Raises
    :class:`~ue_bench.errors.UsageError` when ``patterns`` > ``eps`` (at creation) or without a surrogate.
    """

    Params = MEMPatternsParams
    version = "2"  # 2: MEM's loop as the reference's (batch-shared HotFlip rank, own-caption scoring, per-step shuffle)

    def trigger_words(self, allowed: torch.Tensor, data: SplitTensors, gen: torch.Generator) -> torch.Tensor:
        p = self.params
        vocab = allowed[~torch.isin(allowed, data.tokens.unique())] if p.novel_words else allowed
        if p.words is not None:
            vocab = vocab[torch.randperm(len(vocab), generator=gen)[:p.words]].sort().values
        return vocab

    def fixed_noise(self, data: SplitTensors, trigger: torch.Tensor, vocab: torch.Tensor, allowed: torch.Tensor,
                    gen: torch.Generator) -> FixedNoise:
        p = self.params
        h, w = data.images.shape[1:3]
        if not p.pattern_words:
            spell = WordPatterns(vocab, trigger.shape[1], p.patterns, p.pattern_patch, gen, p.pattern_layout,
                                 p.pattern_share)
            return OwnWordPatterns(spell, trigger, images_tensor(data.images), spell.free_budget(p.eps, h, w))
        vocab = allowed[torch.randperm(len(allowed), generator=gen)[:p.pattern_vocab]].sort().values
        words = vocab[torch.randint(len(vocab), (data.n, p.pattern_words), generator=gen)]
        spell = WordPatterns(vocab, p.pattern_words, p.patterns, p.pattern_patch, gen, p.pattern_layout,
                             p.pattern_share)
        return FixedNoise(spell(words, images_tensor(data.images)), spell.free_budget(p.eps, h, w), words)
