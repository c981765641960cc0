"""MEM (Multi-step Error Minimization, Liu et al., ACM MM 2024): image noise and text triggers together."""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench.params import param

from ._minmin import MinMinAttack, MinMinParams


@dataclass(frozen=True)
class MEMParams(MinMinParams):
    hotflip_iters: int = param(4, lo=0, hi=1000, help="outer iterations (the first ones) that update the triggers")
    candidates: int = param(16, lo=1, hi=4096, help="HotFlip top-k tokens per position scored exactly")
    trigger_len: int = param(3, lo=1, hi=8, help="trigger words per image, after the start token (MEM-3, MEM-5)")
    shuffle: bool = param(True, help="pair each image with a random batch caption carrying its own trigger "
                                     "during PGD/HotFlip")
    novel_words: bool = param(False, help="restrict trigger words to tokens absent from every caption of the split")
    patterns: int = param(0, lo=0, hi=32, help="amplitude (pixel units) of fixed sign patterns that spell each "
                                               "image's trigger words; PGD optimises the rest of eps on top (0: none)")
    pattern_patch: int = param(4, lo=1, hi=32, help="side in pixels of each word's tiled sign pattern (one "
                                                    "tile per vocabulary word is held in memory)")
    pattern_words: int = param(0, lo=0, hi=8, help="extra trigger words after MEM's own, drawn from pattern_vocab "
                                                   "tokens, never flipped; the patterns spell these (0: MEM's own)")
    pattern_vocab: int = param(16, lo=2, hi=100000, help="tokens the pattern words are drawn from (seeded subset)")
    pattern_layout: str = param("sum", choices=("sum", "split"),
                                help="sum: words' tiles add up (each ±ceil(patterns/words)); split: each tile "
                                     "element belongs to one word, at ±patterns")
    pattern_share: float = param(1.0, lo=0.0, hi=1.0, help="share of noise elements (seeded, the same in every "
                                 "tile) that carry the patterns; PGD gets the whole eps on the others")
    words: int | None = param(None, lo=2, hi=100000, help="draw the trigger words from this many tokens "
                                                          "(seeded subset); None: all")


class MEM(MinMinAttack):
    """MEM: per-image error-minimising noise bound to a HotFlip-optimised text trigger (the seed paper)."""

    Params = MEMParams
    version = "1"
