"""Yu et al.'s synthetic noise: low-frequency, sample-wise, clustered by pseudo-class, within the budget."""

import numpy as np
import torch

from ue_bench.attacks.synthetic_noise import SyntheticParams, synthetic_noise


def test_synthetic_noise_is_blockwise_clustered_and_within_eps():
    group = torch.arange(40) % 4
    p = SyntheticParams(eps=8, patch=8, groups=4)
    delta = np.asarray(synthetic_noise(group, 4, (32, 24), p, torch.Generator().manual_seed(0))).astype(np.float64)
    assert delta.shape == (40, 32, 24, 3) and np.abs(delta).max() == 8
    blocks = delta.reshape(40, 4, 8, 3, 8, 3)
    assert (blocks == blocks[:, :, :1, :, :1]).all()  # constant over each 8x8 block and channel
    flat = delta.reshape(40, -1)
    assert len({row.tobytes() for row in flat}) == 40  # one noise per image, not per group
    dist = ((flat[:, None] - flat[None]) ** 2).sum(-1)
    same = group[:, None] == group[None]
    off_diag = ~np.eye(40, dtype=bool)
    assert dist[same.numpy() & off_diag].max() < dist[~same.numpy()].min()  # linearly separable clusters
    rms = np.sqrt((flat ** 2).mean(1))
    assert (rms > 7).all()  # the L2 norm of an eps-everywhere noise, less what the L∞ cut removes
