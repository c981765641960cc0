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
    "mem-patterns": {"outer_iters": 2, "surrogate_steps": 2, "pgd_steps": 2, "hotflip_iters": 1, "candidates": 4,
                     "batch_size": 8, "patterns": 3},
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
