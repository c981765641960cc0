"""D-VAE purification: the data-transform contract, determinism, its latent grid, and that it keeps the
image while dropping a bounded high-frequency noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ue_bench import PairSplit, UsageError, registry
from ue_bench.defenses.dvae import MAX_GRID, levels_for
from ue_bench.engine.device import auto_device

EPS = 8  # the noise's amplitude, pixel units out of 255: the usual L∞ budget of an unlearnable example


def with_sign_noise(split: PairSplit, seed: int = 0) -> tuple[PairSplit, np.ndarray]:
    """``split`` plus a per-pixel random ±EPS (a sample-wise, high-frequency noise), and that noise
    as it survives clipping (float ``[N, H, W, 3]``)."""
    delta = EPS * np.random.default_rng(seed).choice([-1, 1], size=split.images.shape)
    noisy = np.clip(split.images.astype(int) + delta, 0, 255).astype(np.uint8)
    return PairSplit(noisy, split.captions), noisy.astype(float) - split.images


def synthetic(size: int, resolution: int = 32) -> PairSplit:
    params = {"size": size, "test_size": 8, "resolution": resolution}
    return registry.create("datasets", "synthetic", params).load().train


def dvae(**params):
    """The defense at its tiny preset, then ``params``."""
    return registry.create("defenses", "dvae", {**registry.get("defenses", "dvae").presets["tiny"], **params})


@pytest.fixture(scope="module")
def quick():
    """16 noisy 32-px images and one-epoch outputs for seeds 0, 0 and 1 (the contract, not the quality)."""
    split, _ = with_sign_noise(synthetic(16))
    before = split.images.copy()
    defense = dvae(epochs=1, batch_size=8)
    return split, before, [defense.transform(split, s) for s in (0, 0, 1)]


def test_keeps_shape_dtype_captions_and_the_input(quick):
    split, before, (out, _, _) = quick
    assert out.images.shape == split.images.shape and out.images.dtype == np.uint8
    assert out.captions == split.captions and out.captions is not split.captions
    np.testing.assert_array_equal(split.images, before)
    assert not np.array_equal(out.images, split.images)


def test_deterministic_per_seed_different_across_seeds(quick):
    _, _, (a, b, c) = quick
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_leaves_the_global_rng_alone():
    split, _ = with_sign_noise(synthetic(16))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    dvae(epochs=1, batch_size=8).transform(split, 0)
    assert torch.equal(torch.get_rng_state(), state)


def test_transform_estimate_counts_each_stages_epochs_of_steps_and_leaves_the_rng_alone(monkeypatch):
    split = synthetic(64)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert dvae().transform_seconds(split) > 0
    assert torch.equal(torch.get_rng_state(), state)
    clock = iter(np.arange(0.0, 100.0, 0.1))  # every timed step takes 0.1 s
    monkeypatch.setattr("ue_bench.engine.device.time.perf_counter", lambda: float(next(clock)))
    for n, epochs, stages in ((32, 10, 2), (64, 10, 2), (64, 40, 1)):
        # timed at the tiny batch of 32 (at most 16 images on the CPU): 0.1 s per step, epochs + a purification
        b = min(32, n, *([16] if auto_device().type == "cpu" else []))
        expected = stages * n * 0.1 / b * (epochs + 0.5)
        assert dvae(epochs=epochs, stages=stages).transform_seconds(split.subset(np.arange(n))) == \
            pytest.approx(expected), (n, epochs, stages)


def test_latent_grid_follows_the_reference_and_scales_with_resolution():
    # the reference's grids: 16 at CIFAR's 32 px (one halving), 28 at ImageNet's 224 px (three)
    assert [levels_for(r) for r in (16, 32, 56, 64, 224)] == [1, 1, 1, 2, 3]
    assert all(r >> levels_for(r) <= MAX_GRID for r in (16, 32, 56, 64, 112, 224))
    with pytest.raises(UsageError, match="not divisible"):
        levels_for(58)  # two halvings are needed (29 > 28) and 58 is not divisible by 4


def test_works_at_64_px():
    split, _ = with_sign_noise(synthetic(16, resolution=64))
    out = dvae(epochs=1, batch_size=8).transform(split, 0)
    assert out.images.shape == split.images.shape and out.images.dtype == np.uint8


def test_refuses_what_it_cannot_train_on():
    with pytest.raises(UsageError, match="not divisible"):
        dvae().transform(PairSplit(np.zeros((4, 58, 58, 3), np.uint8), [["a"]] * 4), 0)
    with pytest.raises(UsageError, match="at least 2 images"):
        dvae().transform(PairSplit(np.zeros((1, 32, 32, 3), np.uint8), [["a"]]), 0)


def test_keeps_the_image_and_drops_a_high_frequency_noise():
    """Trained long enough to reconstruct (160 steps per stage at 16 px), the output keeps most of
    each image's departure from the mean image and almost none of the noise: the least-squares share
    of each that is left in the output (1 for the identity; 0 for a constant output, which would drop
    the noise trivially)."""
    clean = synthetic(64, resolution=16)
    noisy, delta = with_sign_noise(clean)
    out = dvae(epochs=40, batch_size=16).transform(noisy, 0).images.astype(float)
    x = clean.images.astype(float)
    image = x - x.mean(axis=0)
    image_kept = ((out - x.mean(axis=0)) * image).sum() / (image * image).sum()
    # where clipping cut the noise it is no longer zero-mean (-EPS or 0 at white), and would correlate
    # with any shift of those pixels: count only where the full ±EPS was added
    whole = np.abs(delta) == EPS
    noise_kept = ((out - x) * delta)[whole].sum() / (delta * delta)[whole].sum()
    # measured over five (noise, defense) seed pairs: image 0.57-0.73, noise -0.02-0.07; wide margins
    assert image_kept > 0.4
    assert noise_kept < 0.2
