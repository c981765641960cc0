"""The published train split: protected subset merged into the clean rest, the input never touched."""

import json

import numpy as np
import pytest

from ue_bench.store.artifacts import ArtifactStore
from ue_bench.data import PairSplit
from ue_bench.bench.stages import ProtectionArtifact, publish_split


def split(n: int = 6) -> PairSplit:
    rng = np.random.default_rng(0)
    return PairSplit(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), [[f"pair {i}"] for i in range(n)])


def test_subset_of_every_pair_is_the_split_itself_and_otherwise_a_copy():
    train = split()
    assert train.subset(np.arange(len(train))) is train
    part = train.subset(np.array([1, 4]))
    assert part.captions == [["pair 1"], ["pair 4"]] and np.array_equal(part.images, train.images[[1, 4]])
    part.images[:] = 0
    assert train.images[[1, 4]].any()


@pytest.mark.parametrize("idx", [[0, 1, 2, 3, 4, 5], [2, 5]])
def test_published_split_protects_exactly_the_subset(tmp_path, idx):
    train = split()
    before = train.images.copy()
    idx = np.array(idx)
    folder = ArtifactStore(tmp_path).path("protection", "k")
    folder.mkdir(parents=True)
    np.save(folder / "indices.npy", idx)
    np.save(folder / "delta.npy", np.full((len(idx), 4, 4, 3), 3, dtype=np.int16))
    (folder / "triggers.json").write_text(json.dumps(["zq"] * len(idx)))
    out = publish_split(train, ProtectionArtifact("k", folder, {}))
    assert np.array_equal(train.images, before)                         # the input is never modified
    hit = np.isin(np.arange(len(train)), idx)
    expected = np.where(hit[:, None, None, None], np.clip(before.astype(int) + 3, 0, 255), before)
    assert np.array_equal(out.images, expected)
    assert [c[0].startswith("zq ") for c in out.captions] == hit.tolist()
