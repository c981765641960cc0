"""Budgets and determinism: PGD stays in the ε ball on the integer grid; a seed fixes the protection."""

import numpy as np
import pytest
import torch

from ue_bench import registry
from ue_bench.attacks._pgd import pgd
from ue_bench.data import PairSplit
from ue_bench.protection import verify


@pytest.mark.parametrize("maximise", [False, True])
def test_pgd_never_leaves_the_eps_ball(maximise):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 8), generator=g).float()
    images[0] = 0
    images[1] = 255
    weight = torch.randn(3 * 8 * 8, 5, generator=g)
    delta = torch.zeros_like(images)
    for _ in range(3):
        delta, _ = pgd(lambda x: x.flatten(1) @ weight, lambda f: (f ** 2).sum(), images, delta,
                       eps=4, step=3, steps=5, maximise=maximise)
        assert delta.abs().max() <= 4
        assert torch.equal(delta, delta.round())
        assert ((images + delta) >= 0).all() and ((images + delta) <= 255).all()
    assert delta.abs().max() == 4


def _split(n=16, size=32):
    rng = np.random.default_rng(1)
    colours = ["red", "blue", "green", "yellow"]
    return PairSplit(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                     [[f"a {colours[i % 4]} square", f"{colours[i % 4]} box number {i}"] for i in range(n)])


TINY = {
    "mem": {"outer_iters": 2, "surrogate_steps": 2, "pgd_steps": 2, "hotflip_iters": 1, "candidates": 4, "batch_size": 8},
    "em": {"outer_iters": 2, "surrogate_steps": 2, "pgd_steps": 2, "batch_size": 8},
    "tap": {"surrogate_epochs": 1, "pgd_steps": 2, "batch_size": 8},
    "synthetic": {"surrogate_epochs": 1, "groups": 3, "patch": 4},
    "random": {},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_protection_is_within_budget_and_bit_identical_for_a_seed(name):
    split = _split()
    surrogate = registry.create("victims", "tiny-rn")
    attack = registry.create("attacks", name, {**TINY[name], "eps": 6})
    first = attack.protect(split, surrogate, 3, torch.device("cpu"))
    again = attack.protect(split, surrogate, 3, torch.device("cpu"))
    other = attack.protect(split, surrogate, 4, torch.device("cpu"))
    verify(name, first, split, 6, surrogate.tokenizer())
    assert first.delta.dtype == np.int16 and np.abs(first.delta).max() <= 6
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()


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


@pytest.mark.parametrize("patterns", [6, 4])
def test_mem_word_patterns_are_shared_by_images_with_the_same_trigger(patterns):
    # two trigger words and three slots: 8 triggers for 16 images, so some images must share one
    split = _grey_split()
    surrogate = registry.create("victims", "tiny-rn")
    attack = registry.create("attacks", "mem", {**TINY["mem"], "eps": 6, "patterns": patterns, "words": 2})
    prot = attack.protect(split, surrogate, 0, torch.device("cpu"))
    verify("mem", prot, split, 6, surrogate.tokenizer())
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


def test_mem_pattern_words_follow_its_own_trigger_words_and_carry_the_patterns():
    split = _grey_split()
    surrogate = registry.create("victims", "tiny-rn")
    params = {**TINY["mem"], "eps": 6, "patterns": 4, "pattern_words": 3, "pattern_vocab": 2}
    prot = registry.create("attacks", "mem", params).protect(split, surrogate, 0, torch.device("cpu"))
    verify("mem", prot, split, 6, surrogate.tokenizer())
    words = [t.split() for t in prot.triggers]
    assert all(len(w) == 3 + 3 for w in words)
    assert len({x for w in words for x in w[3:]}) <= 2            # pattern words: two tokens only
    pairs = _same_trigger_pairs([" ".join(w[3:]) for w in words])  # 8 combinations for 16 images
    assert pairs
    delta = prot.delta.astype(int)
    assert all(np.abs(delta[i] - delta[j]).max() <= 2 * (6 - 4) for i, j in pairs)


def test_word_patterns_respect_the_pixel_range_and_the_budget():
    from ue_bench.attacks._minmin import WordPatterns

    vocab = torch.tensor([11, 12, 13])
    spell = WordPatterns(vocab, trigger_len=3, budget=5, patch=4, gen=torch.Generator().manual_seed(0))
    images = torch.full((3, 8, 8, 3), 128, dtype=torch.uint8)
    images[1], images[2] = 0, 255
    trig = torch.tensor([[11, 12, 13]] * 3)
    out = spell(trig, images)
    assert out.dtype == torch.int16 and out.abs().max() <= 5
    assert (out[1] >= 0).all() and (out[2] <= 0).all()
    assert out[0].abs().max() == 5 and out[0].min() < 0 < out[0].max()


def test_mem_refuses_patterns_above_the_budget():
    from ue_bench.errors import UsageError

    attack = registry.create("attacks", "mem", {**TINY["mem"], "eps": 4, "patterns": 6})
    with pytest.raises(UsageError, match="patterns=6 exceeds the budget eps=4"):
        attack.protect(_grey_split(4), registry.create("victims", "tiny-rn"), 0, torch.device("cpu"))


def test_split_word_patterns_give_each_element_one_words_sign_at_full_budget():
    from ue_bench.attacks._minmin import WordPatterns

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


def test_mem_pattern_share_leaves_the_whole_budget_to_pgd_off_the_carrying_elements():
    split = _grey_split(16)
    surrogate = registry.create("victims", "tiny-rn")
    params = {**TINY["mem"], "eps": 6, "patterns": 6, "pattern_words": 2, "pattern_vocab": 2,
              "pattern_layout": "split", "pattern_share": 0.5}
    prot = registry.create("attacks", "mem", params).protect(split, surrogate, 0, torch.device("cpu"))
    verify("mem", prot, split, 6, surrogate.tokenizer())
    delta = prot.delta.astype(int)
    pairs = _same_trigger_pairs([" ".join(t.split()[3:]) for t in prot.triggers])
    assert pairs
    # about half the elements hold the fixed ±6 pattern (equal for the same pattern words, no budget
    # left for PGD); on the others PGD had budget, so images with the same pattern words differ there
    # (with patterns=6 on every element they would be equal everywhere)
    equal = np.stack([delta[i] == delta[j] for i, j in pairs]).all(0)
    assert 0.3 < equal.mean() < 0.8
    assert (np.abs(delta[:, equal]) == 6).all()
