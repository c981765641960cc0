"""The harness's checks on ``ops``, and what makes it OPS: one shared shortcut pixel per pseudo-group."""

import numpy as np

from ue_bench.testing import assert_conforms, check_plugin, tiny, tiny_data


def test_ops_conforms():
    assert_conforms(check_plugin("attacks", "ops"))


def test_each_group_shares_its_pixels_and_nothing_else_moves():
    train = tiny_data().train
    attack = tiny("attacks", "ops", {"eps": 6, "pixels": 2})
    protection = attack.protect(train, None, 0, "cpu")
    moved = np.abs(protection.delta).max(-1)  # [N, H, W]
    assert set(np.unique(np.abs(protection.delta))) == {0, 6}
    assert (moved.reshape(len(train), -1) > 0).sum(1).tolist() == [2] * len(train)
    positions = protection.meta["positions"]
    assert len(positions) == 4  # the tiny preset's groups
    for i in range(len(train)):
        rows, cols = np.nonzero(moved[i])
        assert sorted(zip(rows.tolist(), cols.tolist())) in [sorted(map(tuple, p)) for p in positions]
