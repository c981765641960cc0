"""Text-side defense: strip out-of-place words from the start of captions, as a scraper's cleaner might.

A text trigger (MEM) is a short run of words put before every caption of a protected image. A cleaner
has no dictionary of "real" caption words (any BPE word can be a trigger), but it has the corpus
itself, and two of its statistics give a trigger away:

* **Shared prefix.** The trigger is identical across all captions of its image, while independent
  paraphrases rarely share their first words. With several captions per image, the candidate region
  is the longest word prefix common to all of them; for a clean image it is usually empty, so clean
  captions are left alone whatever the corpus size.
* **Out of place.** A word is *in place* if at least ``min_count`` images use it outside their shared
  prefix, i.e. in running caption text. Counting images, not captions, keeps one image's five
  paraphrases from vouching for its own trigger; counting only outside shared prefixes means a
  trigger word that MEM reuses on hundreds of images (as HotFlip tends to converge on a few tokens)
  still has no support, while a caption word ("red", "square") always has.

With several captions the cleaner removes the shared prefix up to and including its last out-of-place
word (a trigger that mixes in ordinary caption words goes as a whole); with a single caption, where
no prefix can be told apart, it removes the leading run of out-of-place words. At most ``max_words``
words are removed and a caption is never emptied. Trigger words that are ordinary caption words and
sit at the end of the trigger (e.g. "... pink") are kept: the cleaner cannot tell them apart either.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass

from ue_bench import Defense, PairSplit, param


def _norm(word: str) -> str:
    """The form a word is counted under: lower case, surrounding punctuation dropped."""
    return word.strip(string.punctuation).lower() or word.lower()


def shared_prefix(captions: list[list[str]]) -> int:
    """How many leading (normalised) words all captions of one image share; 0 for a single caption."""
    if len(captions) < 2:
        return 0
    n = 0
    for column in zip(*captions):
        if len({_norm(w) for w in column}) != 1:
            break
        n += 1
    return n


def in_place_counts(split: PairSplit) -> Counter:
    """For each word, the number of images that use it outside their captions' shared prefix."""
    counts: Counter = Counter()
    for caps in split.captions:
        words = [c.split() for c in caps]
        start = shared_prefix(words)
        counts.update({_norm(w) for ws in words for w in ws[start:]})
    return counts


@dataclass(frozen=True)
class CleanCaptionsParams:
    min_count: int = param(5, lo=1, hi=1_000_000,
                           help="a word is in place if at least this many images use it in running caption text")
    max_words: int = param(8, lo=1, hi=64, help="most leading words removed from one caption (MEM triggers: 3–5)")


class CleanCaptions(Defense):
    """Caption cleaning: remove a leading run of out-of-place words (a trigger) from every caption."""

    Params = CleanCaptionsParams
    transforms_data = True

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        counts = in_place_counts(split)
        p = self.params

        def out_of_place(word: str) -> bool:
            return counts[_norm(word)] < p.min_count

        cleaned = []
        for caps in split.captions:
            words = [c.split() for c in caps]
            shared = shared_prefix(words)
            out = []
            for caption, ws in zip(caps, words):
                if len(caps) > 1:
                    region = ws[:min(shared, p.max_words)]
                    cut = max((i + 1 for i, w in enumerate(region) if out_of_place(w)), default=0)
                else:
                    cut = 0
                    while cut < min(len(ws), p.max_words) and out_of_place(ws[cut]):
                        cut += 1
                out.append(" ".join(ws[cut:]) if 0 < cut < len(ws) else caption)
            cleaned.append(out)
        return PairSplit(split.images, cleaned, meta=dict(split.meta))
