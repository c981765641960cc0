"""MEM without its trigger, pseudo-class-wise MEM, REM's min–min–max, and the class-wise PGD step."""

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from ue_bench import registry
from ue_bench.attacks._pgd import pgd
from ue_bench.attacks._pseudo_classes import pseudo_classes
from ue_bench.attacks.rem import LinfAdversary
from ue_bench.engine.training import normalize

CPU = torch.device("cpu")
LOOP = {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def split():
    return registry.create("datasets", "synthetic", {"size": 48, "test_size": 8}).load().train


@pytest.fixture(scope="module")
def surrogate():
    return registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 16})


def test_mem_without_its_trigger_is_em_at_the_same_loop(split, surrogate):
    torch.set_num_threads(1)
    mem = registry.create("attacks", "mem", {**LOOP, "trigger_len": 0}).protect(split, surrogate, 3, CPU)
    em = registry.create("attacks", "em", LOOP).protect(split, surrogate, 3, CPU)
    assert mem.triggers is None and "trigger_examples" not in mem.meta
    assert mem.fingerprint() == em.fingerprint()
    assert np.abs(np.asarray(mem.delta)).max() == LOOP["pgd_steps"]  # steps of 1 pixel unit from zero


def test_classwise_mem_shares_its_noise_and_trigger_within_a_pseudo_class(split, surrogate):
    torch.set_num_threads(1)
    attack = registry.create("attacks", "mem-classwise", {**LOOP, "grouping": "random", "groups": 3,
                                                         "hotflip_iters": 1, "candidates": 2})
    prot = attack.protect(split, surrogate, 0, CPU)
    sizes = prot.meta["group_sizes"]
    assert len(sizes) == 3 and sum(sizes) == len(split)
    assert len(set(prot.triggers)) <= 3  # one trigger per pseudo-class
    delta = np.asarray(prot.delta).astype(np.int16)
    images = np.asarray(split.images).astype(np.int16)
    # images with the same trigger are one class: wherever neither is clipped by its pixel range, the same noise
    by_trigger = {}
    for i, t in enumerate(prot.triggers):
        by_trigger.setdefault(t, []).append(i)
    assert len(by_trigger) >= 2 and all(len(v) >= 2 for v in by_trigger.values())
    free = (images >= 8) & (images <= 247)
    for members in by_trigger.values():
        a, b = members[0], members[1]
        both = free[a] & free[b]
        assert both.mean() > 0.2 and np.array_equal(delta[a][both], delta[b][both])
    first = [v[0] for v in by_trigger.values()]
    both = free[first[0]] & free[first[1]]
    assert not np.array_equal(delta[first[0]][both], delta[first[1]][both])  # classes differ


def test_a_shared_noise_moves_by_the_sign_of_its_images_summed_gradient():
    images = torch.full((3, 3, 2, 2), 100.0)
    weight = torch.tensor([1.0, -3.0, 2.0]).view(3, 1, 1, 1)  # images 0 and 1 share class 0, image 2 is class 1
    noise, _ = pgd(lambda x: x, lambda f, _step: (f * weight).sum(), images, torch.zeros(2, 3, 2, 2), eps=4, step=1,
                   steps=3, maximise=False, expand=lambda shared: shared[torch.tensor([0, 0, 1])])
    assert torch.equal(noise[0], torch.full((3, 2, 2), 3.0))  # summed weight -2 < 0: minimising raises it
    assert torch.equal(noise[1], torch.full((3, 2, 2), -3.0))


def test_rems_adversary_stays_in_its_ball_and_raises_the_loss(surrogate):
    torch.manual_seed(0)
    model, _ = surrogate.initial_model(32, 0, CPU)
    model.eval()
    x = normalize(torch.rand(6, 3, 32, 32))  # images in their range, normalised as the models take them
    text = F.normalize(torch.randn(6, model.text_projection.shape[1]), dim=-1)
    scale = model.logit_scale.exp().detach()
    rho = LinfAdversary(4.0, 3, 1.0, 0)(model, x, text, scale)
    std = torch.tensor(open_clip.constants.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    assert (rho.abs() <= 4.0 / 255.0 / std + 1e-6).all() and rho.abs().max() > 0
    loss = open_clip.ClipLoss()
    with torch.no_grad():
        before = loss(F.normalize(model.encode_image(x), dim=-1), text, scale)
        after = loss(F.normalize(model.encode_image(x + rho), dim=-1), text, scale)
    assert after > before
    assert torch.equal(LinfAdversary(0.0, 3, 1.0, 0)(model, x, text, scale), torch.zeros_like(x))


def test_rem_differs_from_em_and_is_within_budget(split, surrogate):
    torch.set_num_threads(1)
    rem = registry.create("attacks", "rem", {**LOOP, "adv_steps": 1, "eot_samples": 1}).protect(split, surrogate, 0, CPU)
    em = registry.create("attacks", "em", LOOP).protect(split, surrogate, 0, CPU)
    delta = np.asarray(rem.delta)
    assert delta.shape == split.images.shape and np.abs(delta).max() <= 8
    assert rem.fingerprint() != em.fingerprint()


def test_t2ue_noise_comes_from_the_captions_alone_and_its_generator_learns(split):
    from ue_bench.data import PairSplit

    torch.set_num_threads(1)
    captions = [list(c) for c in split.captions]
    captions[1] = list(captions[0])  # two different images described alike
    twins = PairSplit(np.asarray(split.images), captions)
    surrogate = registry.create("victims", "tiny-rn", {"batch_size": 16})
    prot = registry.create("attacks", "t2ue", {"surrogate_epochs": 8, "generator_steps": 60, "width": 8,
                                              "batch_size": 16, "generator_lr": 1e-2}).protect(twins, surrogate, 0, CPU)
    delta = np.asarray(prot.delta).astype(np.int16)
    images = np.asarray(twins.images).astype(np.int16)
    free = (images[0] >= 8) & (images[0] <= 247) & (images[1] >= 8) & (images[1] <= 247)
    assert free.mean() > 0.2 and np.array_equal(delta[0][free], delta[1][free])
    assert not np.array_equal(delta[0][free], delta[2][free])  # other captions, other noise
    assert np.abs(delta).max() <= 8 and np.abs(delta).max() > 0
    assert prot.meta["generator_loss_end"] < prot.meta["generator_loss_start"]  # the noise eases the frozen model


def test_classwise_lowfreq_is_classwise_at_block_1_without_views_and_block_constant_otherwise(split, surrogate):
    torch.set_num_threads(1)
    loop = {**LOOP, "grouping": "random", "groups": 3, "hotflip_iters": 1, "candidates": 2}
    classwise = registry.create("attacks", "mem-classwise", loop).protect(split, surrogate, 0, CPU)
    same = registry.create("attacks", "mem-classwise-lowfreq", {**loop, "block": 1, "eot_samples": 1}
                           ).protect(split, surrogate, 0, CPU)
    assert same.fingerprint() == classwise.fingerprint() and same.triggers == classwise.triggers
    prot = registry.create("attacks", "mem-classwise-lowfreq", {**loop, "block": 4}).protect(split, surrogate, 0, CPU)
    assert prot.fingerprint() != classwise.fingerprint()
    delta = np.asarray(prot.delta).astype(np.int16)
    images = np.asarray(split.images).astype(np.int16)
    assert np.abs(delta).max() <= 8 and np.abs(delta).max() > 0
    free = (images >= 8) & (images <= 247)
    by_trigger = {}
    for i, t in enumerate(prot.triggers):
        by_trigger.setdefault(t, []).append(i)
    assert len(by_trigger) >= 2
    for members in by_trigger.values():  # one noise per class, constant over each 4 × 4 square
        for i in members:
            blocks = delta[i].reshape(8, 4, 8, 4, 3).transpose(0, 2, 4, 1, 3).reshape(8, 8, 3, 16)
            fits = free[i].reshape(8, 4, 8, 4, 3).transpose(0, 2, 4, 1, 3).reshape(8, 8, 3, 16).all(-1)
            assert fits.mean() > 0.2 and (blocks[fits] == blocks[fits][:, :1]).all()
        a, b = members[0], members[-1]
        both = free[a] & free[b]
        assert np.array_equal(delta[a][both], delta[b][both])


def test_more_pseudo_classes_than_images_are_cut_to_one_per_image_and_said(split, caplog):
    params = registry.create("attacks", "mem-classwise", {"groups": 100, "grouping": "random"}).params
    with caplog.at_level("WARNING", logger="ue_bench.attacks"):
        group, k, meta = pseudo_classes("mem-classwise", split, None, params, 0, CPU, torch.Generator().manual_seed(0))
    assert k == meta["groups"] == len(split) == 48 and int(group.max()) < 48
    assert "groups=100 is more than the 48 images" in caplog.text
