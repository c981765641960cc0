"""PGD stays in the ε ball on the integer grid (every attack's budget and determinism: test_conformance)."""

import pytest
import torch

from ue_bench.attacks._pgd import pgd


@pytest.mark.parametrize("maximise", [False, True])
def test_pgd_never_leaves_the_eps_ball(maximise):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 8, 8), generator=g).float()
    images[0] = 0
    images[1] = 255
    weight = torch.randn(3 * 8 * 8, 5, generator=g)
    delta = torch.zeros_like(images)
    for _ in range(3):
        delta, _ = pgd(lambda x: x.flatten(1) @ weight, lambda f, _step: (f ** 2).sum(), images, delta,
                       eps=4, step=3, steps=5, maximise=maximise)
        assert delta.abs().max() <= 4
        assert torch.equal(delta, delta.round())
        assert ((images + delta) >= 0).all() and ((images + delta) <= 255).all()
    assert delta.abs().max() == 4
