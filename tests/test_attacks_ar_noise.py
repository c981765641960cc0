"""Autoregressive perturbations: each pseudo-class's process, its annihilating filter, the budget."""

import numpy as np
import torch
import torch.nn.functional as F

from ue_bench import registry
from ue_bench.attacks.ar_noise import ar_filter, ar_generate, ar_processes


def test_each_process_is_annihilated_by_its_own_filter_and_seen_by_the_others():
    gen = torch.Generator().manual_seed(0)
    coeffs = ar_processes(3, gen)
    assert coeffs.shape == (3, 3, 3, 3) and torch.allclose(coeffs.sum((2, 3)), torch.ones(3, 3))
    raw, diverged = ar_generate(coeffs, (24, 20), 4, gen)
    assert raw.shape == (3, 3, 24, 20) and not diverged.any()
    signal = raw / raw.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    for k in range(3):
        responses = [F.relu(F.conv2d(signal[k:k + 1], ar_filter(coeffs[j]))).sum().item() for j in range(3)]
        assert responses[k] < 1e-9  # linear in the signal: its own filter cancels it
        assert min(r for j, r in enumerate(responses) if j != k) > 0.5


def test_ar_noise_is_within_eps_spread_over_the_image_and_deterministic():
    split = registry.create("datasets", "synthetic", {"size": 24, "test_size": 8}).load().train
    attack = registry.create("attacks", "ar", {"grouping": "random", "groups": 2})
    delta = np.asarray(attack.protect(split, None, 0, torch.device("cpu")).delta)
    assert delta.shape == split.images.shape and np.abs(delta).max(axis=(1, 2, 3)).tolist() == [8] * 24
    assert (delta != 0).mean() > 0.1  # not a corner: the kept processes do not grow
    again = np.asarray(attack.protect(split, None, 0, torch.device("cpu")).delta)
    assert np.array_equal(delta, again)


def test_ar_trigger_is_ar_noise_with_one_trigger_per_pseudo_class():
    split = registry.create("datasets", "synthetic", {"size": 24, "test_size": 8}).load().train
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 8})
    params = {"grouping": "random", "groups": 3}
    plain = registry.create("attacks", "ar", params).protect(split, surrogate, 0, torch.device("cpu"))
    prot = registry.create("attacks", "ar-trigger", params).protect(split, surrogate, 0, torch.device("cpu"))
    assert np.array_equal(np.asarray(prot.delta), np.asarray(plain.delta))        # ar's noise, bit for bit
    sizes = prot.meta["group_sizes"]
    assert len(prot.triggers) == 24 and sorted(prot.triggers.count(t) for t in set(prot.triggers)) == sorted(
        s for s in sizes if s)                                                        # one trigger per pseudo-class
    assert all(len(t.split()) == 2 for t in prot.triggers)
    tok = surrogate.tokenizer()
    assert all(len(tok.encode(w)) == 1 for t in prot.triggers for w in t.split())   # whole words, one token each
    again = registry.create("attacks", "ar-trigger", params).protect(split, surrogate, 0, torch.device("cpu"))
    assert again.triggers == prot.triggers


def test_random_groups_need_no_surrogate_so_the_matrix_plans_one_cell():
    """``ar`` and ``synthetic`` with random groups read no model: like ``random`` they get one cell whatever the
    surrogates, with none; k-means gets one per surrogate; ``ar-trigger`` always needs the tokenizer."""
    from ue_bench.bench.matrix import plan

    def cells(name: str, **params) -> list:
        victims = [registry.create("victims", "tiny-rn"), registry.create("victims", "tiny-vit")]
        return plan([registry.create("datasets", "synthetic")], [registry.create("attacks", name, params)], victims,
                    [registry.create("defenses", "none")], victims[:1], [0], [1.0])

    for name in ("ar", "synthetic"):
        assert [c.surrogate for c in cells(name, grouping="random")] == [None]
        assert len(cells(name)) == 2 and all(c.surrogate is not None for c in cells(name))
    assert len(cells("ar-trigger", grouping="random")) == 2
