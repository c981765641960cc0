"""Memory that does not grow with the dataset: int8 delta artifacts, memory-mapped published and
defended splits, the chunked random draw, and releasing mapped pages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ue_bench.attacks.random_noise import RandomNoise, uniform_int16_stream
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.data import PairSplit, release, save_chunked
from ue_bench.protection import Protection, delta_dtype
from ue_bench.bench.stages import protect, publish_split


def _split(n=12, res=8):
    rng = np.random.default_rng(1)
    return PairSplit(rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8), [[f"pair {i}"] for i in range(n)])


@pytest.mark.parametrize("eps", [0, 1, 8, 32])
@pytest.mark.parametrize("n,chunk", [(1, 4), (999, 5), (12345, 64), (12345, 1 << 20)])
def test_chunked_random_draw_is_numpys_single_call(eps, n, chunk):
    ss = np.random.SeedSequence([eps, n])
    want = np.random.default_rng(ss).integers(-eps, eps + 1, size=n, dtype=np.int16)
    got = uniform_int16_stream(np.random.default_rng(ss), eps, n, np.empty(n, np.int8), chunk)
    assert np.array_equal(want, got)


def test_random_attack_draws_what_it_drew_before_as_int8():
    split = _split()
    delta = RandomNoise().protect(split, None, 3, torch.device("cpu")).delta
    before = np.random.default_rng(np.random.SeedSequence([3, 0x52414E44])).integers(
        -8, 9, size=split.images.shape, dtype=np.int16)
    assert delta.dtype == np.int8 and np.array_equal(delta, before)
    assert Protection(delta=delta).fingerprint() == Protection(delta=before).fingerprint()


def test_delta_dtype():
    assert delta_dtype(0) == np.int8 and delta_dtype(127) == np.int8 and delta_dtype(128) == np.int16


def test_protection_is_stored_int8_memory_mapped_and_published_memory_mapped(tmp_path):
    split = _split()
    store = ArtifactStore(tmp_path)
    art = protect(store, RandomNoise(), None, split, 0, 1.0, torch.device("cpu"))
    prot = art.protection()
    assert isinstance(prot.delta, np.memmap) and prot.delta.dtype == np.int8
    assert prot.fingerprint() == art.info["protection_sha256"]
    out = publish_split(split, art)
    assert isinstance(out.images, np.memmap)
    assert np.array_equal(out.images, np.clip(split.images.astype(np.int16) + prot.delta, 0, 255))
    assert publish_split(split, art).images.filename == out.images.filename  # built once, then reused


def test_save_chunked_writes_what_np_save_writes(tmp_path):
    a = np.arange(7 * 3 * 2, dtype=np.int16).reshape(7, 3, 2)
    save_chunked(tmp_path / "a.npy", a.shape, np.int8, (a[i:i + 3] for i in range(0, 7, 3)))
    np.save(tmp_path / "b.npy", a.astype(np.int8))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    with pytest.raises(ValueError):
        save_chunked(tmp_path / "c.npy", a.shape, np.int8, [a[:3]])


def _rss_mb():
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


def test_release_drops_mapped_pages_from_the_resident_set(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((64, 1024, 1024), np.uint8))
    m = np.load(tmp_path / "x.npy", mmap_mode="r")
    base = _rss_mb()
    assert int(m[:, ::4096].sum()) > 0  # touch every page
    assert _rss_mb() - base > 48
    release(m[3:5])  # a view finds its mapping
    assert _rss_mb() - base < 16
    release(np.ones(3))  # in-memory arrays: a no-op


def _mapped_split(tmp_path, n=4096, res=64):
    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (n, res, res, 3), dtype=np.uint8))
    return PairSplit(np.load(tmp_path / "images.npy", mmap_mode="r"), [[f"pair {i}"] for i in range(n)])


def test_attack_loops_read_a_mapped_split_batch_by_batch_and_release_it(tmp_path):
    from ue_bench.attacks._surrogate import SplitTensors
    from ue_bench.engine.training import read_batch

    split = _mapped_split(tmp_path)  # 48 MiB
    data = SplitTensors(split, lambda texts: torch.zeros(len(texts), 4, dtype=torch.long))
    assert data.images is split.images  # no copy of the split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).split(16)
    release(split.images)
    base, peak = _rss_mb(), 0.0
    for idx in order:
        got = read_batch(split.images, idx)
        peak = max(peak, _rss_mb() - base)
        assert torch.equal(got, torch.from_numpy(np.asarray(split.images[idx.numpy()])))  # released by the next read
    plain = 0.0
    for idx in order[:64]:  # the same reads without releases: the kernel maps pages around each one
        np.asarray(split.images[idx.numpy()])
        plain = max(plain, _rss_mb() - base)
    assert plain > 24 and peak < plain / 2


def test_min_min_on_a_mapped_split_publishes_what_it_does_in_memory_as_a_mapped_int8_delta(tmp_path):
    from ue_bench import registry

    split = _mapped_split(tmp_path, n=24, res=32)
    copy = PairSplit(np.array(split.images), split.captions)
    surrogate = registry.create("victims", "tiny-rn", {"epochs": 1, "batch_size": 8})
    attack = registry.create("attacks", "mem", {"outer_iters": 1, "surrogate_steps": 2, "pgd_steps": 2,
                                                "batch_size": 8, "candidates": 2, "trigger_len": 1})
    torch.set_num_threads(1)
    mapped = attack.protect(split, surrogate, 0, torch.device("cpu"))
    held = attack.protect(copy, surrogate, 0, torch.device("cpu"))
    assert isinstance(mapped.delta, np.memmap) and mapped.delta.dtype == np.int8
    assert np.abs(mapped.delta).max() > 0
    assert mapped.fingerprint() == held.fingerprint()
