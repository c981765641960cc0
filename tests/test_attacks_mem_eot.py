"""``mem-eot``: MEM's PGD over the expectation of random resize-crops; plain ``mem`` is pinned elsewhere
(``test_attacks_pinned.py``)."""

import torch

from ue_bench import registry
from ue_bench.attacks.mem_eot import ResizeCrops

from test_attacks_pinned import PINNED  # tests/ is on sys.path under pytest


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
    assert prot.fingerprint() != PINNED[0][2]
    assert abs(prot.delta).max() <= attack.params.eps and prot.delta.dtype.kind == "i"
