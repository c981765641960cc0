"""What a matrix will cost, from a short calibration on this device (for ``--dry-run``).

The unit is one training step of a model at the data's resolution and the recipe's batch size; a
few steps of each distinct model are timed here and multiplied by the steps each stage needs. On the
CPU a step is timed at no more than ``engine.device.CPU_CALIBRATION_BATCH`` pairs and scaled linearly
to the recipe's batch: a paper-scale step at batch 128 would hold ~20 GB of activations just to be
timed.
"""

from __future__ import annotations

import numpy as np
import open_clip
import torch

from ue_bench.data import PairSplit
from ue_bench.engine.device import autocast, calibration_batch, median_step_seconds
from ue_bench.engine.training import clip_loss, make_optimizer, normalize, to_unit


def step_seconds(victim, split: PairSplit, batch_size: int, device: torch.device, steps: int = 3) -> float:
    """Median seconds of one training step of ``victim`` on a batch of ``batch_size`` pairs of ``split``
    (after a warm-up step). On the CPU the step is timed at ``calibration_batch`` pairs and the time
    scaled by ``batch_size`` over that."""
    batch_size = min(batch_size, len(split))
    timed = calibration_batch(batch_size, device)
    model = victim.create_model(split.resolution, device).train()
    optimizer = make_optimizer(model, 1e-5, 0.0)
    loss_fn = open_clip.ClipLoss()
    images = torch.from_numpy(np.array(split.images[:timed]))  # a copy: the split may be a read-only map
    tokens = victim.tokenizer()([caps[0] for caps in split.captions[:timed]]).to(device)

    def train_step() -> None:
        with autocast(device):
            loss = clip_loss(model, loss_fn, normalize(to_unit(images, device)), tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return median_step_seconds(train_step, device, steps) * batch_size / timed
