"""mem-patterns: fixed sign patterns that spell trigger words, with MEM's PGD on the rest of the budget."""

import numpy as np
import pytest
import torch

from ue_bench import registry
from ue_bench.attacks.mem_patterns import WordPatterns
from ue_bench.data import PairSplit
from ue_bench.errors import UsageError
from ue_bench.protection import verify

TINY = {**registry.get("attacks", "mem").presets["tiny"], "outer_iters": 2, "batch_size": 8}


def _grey_split(n=16, size=32):
    """Mid-grey images, so that no noise value is clipped by the pixel range."""
    rng = np.random.default_rng(2)
    return PairSplit(rng.integers(64, 192, (n, size, size, 3), dtype=np.uint8),
                     [[f"a square number {i}"] for i in range(n)])


def _same_trigger_pairs(triggers):
    first = {}
    pairs = []
    for i, t in enumerate(triggers):
        if t in first:
            pairs.append((first[t], i))
        first.setdefault(t, i)
    return pairs


def _protect(split, **params):
    surrogate = registry.create("victims", "tiny-rn")
    prot = registry.create("attacks", "mem-patterns", {**TINY, "eps": 6, **params}).protect(
        split, surrogate, 0, torch.device("cpu"))
    verify("mem-patterns", prot, split, 6, surrogate.tokenizer())
    return prot


@pytest.mark.parametrize("patterns", [6, 4])
def test_word_patterns_are_shared_by_images_with_the_same_trigger(patterns):
    # two trigger words and three slots: 8 triggers for 16 images, so some images must share one
    prot = _protect(_grey_split(), patterns=patterns, words=2)
    pairs = _same_trigger_pairs(prot.triggers)
    assert pairs
    delta = prot.delta.astype(int)
    for i, j in pairs:
        # only the optimised part (eps - patterns per image) may differ
        assert np.abs(delta[i] - delta[j]).max() <= 2 * (6 - patterns)
    if patterns == 6:  # patterns only: the noise is a function of the trigger's words (in any order)
        words = [sorted(t.split()) for t in prot.triggers]
        differing = [(i, j) for i in range(16) for j in range(i) if words[i] != words[j]]
        assert differing and all((delta[i] != delta[j]).any() for i, j in differing)


def test_pattern_words_follow_mems_own_trigger_words_and_carry_the_patterns():
    prot = _protect(_grey_split(), patterns=4, pattern_words=3, pattern_vocab=2)
    words = [t.split() for t in prot.triggers]
    assert all(len(w) == 3 + 3 for w in words)
    assert len({x for w in words for x in w[3:]}) <= 2            # pattern words: two tokens only
    pairs = _same_trigger_pairs([" ".join(w[3:]) for w in words])  # 8 combinations for 16 images
    assert pairs
    delta = prot.delta.astype(int)
    assert all(np.abs(delta[i] - delta[j]).max() <= 2 * (6 - 4) for i, j in pairs)


def test_word_patterns_respect_the_pixel_range_and_the_budget():
    vocab = torch.tensor([11, 12, 13])
    spell = WordPatterns(vocab, trigger_len=3, budget=5, patch=4, gen=torch.Generator().manual_seed(0))
    images = torch.full((3, 8, 8, 3), 128, dtype=torch.uint8)
    images[1], images[2] = 0, 255
    trig = torch.tensor([[11, 12, 13]] * 3)
    out = spell(trig, images)
    assert out.dtype == torch.int16 and out.abs().max() <= 5
    assert (out[1] >= 0).all() and (out[2] <= 0).all()
    assert out[0].abs().max() == 5 and out[0].min() < 0 < out[0].max()


def test_patterns_above_the_budget_are_refused_at_creation():
    with pytest.raises(UsageError, match="patterns=6 exceeds the budget eps=4"):
        registry.create("attacks", "mem-patterns", {**TINY, "eps": 4, "patterns": 6})


def test_mem_has_none_of_the_pattern_parameters():
    with pytest.raises(UsageError, match="unknown parameter 'patterns'"):
        registry.create("attacks", "mem", {"patterns": 4})


def test_split_word_patterns_give_each_element_one_words_sign_at_full_budget():
    vocab = torch.tensor([11, 12, 13, 14])
    spell = WordPatterns(vocab, trigger_len=2, budget=5, patch=4, gen=torch.Generator().manual_seed(0),
                         layout="split")
    images = torch.full((2, 8, 8, 3), 128, dtype=torch.uint8)
    out = spell(torch.tensor([[11, 12], [11, 13]]), images)
    assert out.dtype == torch.int16 and (out.abs() == 5).all()
    # the elements owned by the first word (11, shared) agree; the second word's elements may differ
    owner = spell.weight.argmax(0)
    first = owner == 0
    assert first.any() and (~first).any()
    assert torch.equal(out[0, :4, :4][first], out[1, :4, :4][first])
    assert torch.equal(out[0, :4, :4][~first], (spell.signs[1] * 5)[~first])


def test_pattern_share_leaves_the_whole_budget_to_pgd_off_the_carrying_elements():
    prot = _protect(_grey_split(16), patterns=6, pattern_words=2, pattern_vocab=2, pattern_layout="split",
                    pattern_share=0.5)
    delta = prot.delta.astype(int)
    pairs = _same_trigger_pairs([" ".join(t.split()[3:]) for t in prot.triggers])
    assert pairs
    # about half the elements hold the fixed ±6 pattern (equal for the same pattern words, no budget
    # left for PGD); on the others PGD had budget, so images with the same pattern words differ there
    # (with patterns=6 on every element they would be equal everywhere)
    equal = np.stack([delta[i] == delta[j] for i, j in pairs]).all(0)
    assert 0.3 < equal.mean() < 0.8
    assert (np.abs(delta[:, equal]) == 6).all()
