"""``mem-eot``: MEM's PGD over the expectation of random resize-crops; plain ``mem`` is pinned elsewhere
(``test_attacks_pinned.py``)."""

import torch

from ue_bench import registry
from ue_bench.attacks.mem_eot import ResizeCrops

from test_attacks_pinned import pinned  # tests/ is on sys.path under pytest


def test_resize_crops_are_seeded_differentiable_and_leave_the_global_stream_alone():
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    torch.manual_seed(0)
    views = ResizeCrops(3, 0.9, seed=5)
    first, second = views(x), views(x)
    after = torch.rand(1)
    assert first.shape == (12, 3, 32, 32) and not torch.equal(first, second)     # fresh crops per call
    torch.manual_seed(0)
    again = ResizeCrops(3, 0.9, seed=5)
    assert torch.equal(again(x), first) and torch.equal(again(x), second) and torch.equal(torch.rand(1), after)
    assert not torch.equal(ResizeCrops(3, 0.9, seed=6)(x), first)
    (grad,) = torch.autograd.grad(first.square().sum(), x)
    assert grad.abs().sum() > 0


def test_mem_eot_publishes_another_protection_than_mem_with_the_same_settings():
    torch.set_num_threads(1)
    split = registry.create("datasets", "synthetic", {"size": 64, "test_size": 16}).load().train
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16})
    attack = registry.create("attacks", "mem-eot", registry.get("attacks", "mem").presets["tiny"])
    prot = attack.protect(split, surrogate, 0, torch.device("cpu"))
    assert prot.fingerprint() != pinned("mem")
    assert abs(prot.delta).max() <= attack.params.eps and prot.delta.dtype.kind == "i"


def test_mem_lowfreq_noise_is_constant_over_blocks_and_block_1_is_mem_eot():
    torch.set_num_threads(1)
    split = registry.create("datasets", "synthetic", {"size": 32, "test_size": 8}).load().train
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16})
    tiny = registry.get("attacks", "mem").presets["tiny"]
    coarse = registry.create("attacks", "mem-lowfreq", {**tiny, "block": 4}).protect(split, surrogate, 0,
                                                                                        torch.device("cpu"))
    d = torch.from_numpy(coarse.delta.astype("int16"))                       # [N, H, W, 3]
    images = torch.from_numpy(split.images.astype("int16"))
    assert d.abs().max() <= 8 and d.abs().sum() > 0
    assert ((images + d) >= 0).all() and ((images + d) <= 255).all()
    inside = ((images > 8) & (images < 247)).reshape(len(d), 8, 4, 8, 4, 3)  # where the pixel range cuts no noise
    blocks = d.reshape(len(d), 8, 4, 8, 4, 3)
    top = torch.where(inside, blocks, torch.tensor(-99, dtype=torch.int16)).amax(dim=(2, 4))
    low = torch.where(inside, blocks, torch.tensor(99, dtype=torch.int16)).amin(dim=(2, 4))
    some = inside.any(dim=2).any(dim=3)
    assert some.sum() > 0.5 * some.numel() and (top[some] == low[some]).all()  # one value per 4 x 4 square
    one = registry.create("attacks", "mem-lowfreq", {**tiny, "block": 1}).protect(split, surrogate, 0, torch.device("cpu"))
    eot = registry.create("attacks", "mem-eot", tiny).protect(split, surrogate, 0, torch.device("cpu"))
    assert one.fingerprint() == eot.fingerprint() != coarse.fingerprint()


def test_mem_ensemble_of_one_is_mem_lowfreq_and_each_surrogate_has_its_own_initialisation():
    torch.set_num_threads(1)
    split = registry.create("datasets", "synthetic", {"size": 32, "test_size": 8}).load().train
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 2, "batch_size": 16})
    tiny = registry.get("attacks", "mem").presets["tiny"]
    cpu = torch.device("cpu")
    lowfreq = registry.create("attacks", "mem-lowfreq", tiny).protect(split, surrogate, 0, cpu)
    one = registry.create("attacks", "mem-ensemble", {**tiny, "surrogates": 1}).protect(split, surrogate, 0, cpu)
    assert one.fingerprint() == lowfreq.fingerprint() and one.triggers == lowfreq.triggers
    two = registry.create("attacks", "mem-ensemble", {**tiny, "surrogates": 2}).protect(split, surrogate, 0, cpu)
    assert two.fingerprint() != lowfreq.fingerprint() and abs(two.delta).max() <= 8
    inits = two.meta["surrogate_inits_sha256"]
    _, victim_init = surrogate.initial_model(split.resolution, 0, cpu, role="victim-init")
    assert len(set(inits)) == 2 and inits[0] == lowfreq.meta["surrogate_init_sha256"] and victim_init not in inits
