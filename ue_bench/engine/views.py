"""The training-time view of the data: what a trainer's input pipeline does to the published images.

A victim's recipe names it (``augment``):

* ``none``: the published pixels exactly as they are, every epoch (a trainer that never resamples).
* ``openclip``: open_clip's default training transform, built by open_clip itself
  (``open_clip.transform.image_transform(R, is_train=True)`` with the default ``AugmentationCfg``:
  ``RandomResizedCrop(R, scale=(0.9, 1.0))``, bicubic, on the PIL image) — the view
  ``python -m open_clip_train.main`` trains on unless told otherwise. Its final ``Normalize`` is left
  out, since :func:`ue_bench.engine.training.normalize` applies the same CLIP mean and std afterwards
  (checked when the view is built), so it is applied once.

The crops are drawn from torch's global generator, as torchvision draws them, inside a fork of it
seeded by ``(seed, step)``: a training run is reproducible, and the rest of the training loop's random
stream is the same whichever view is chosen.
"""

from __future__ import annotations

import numpy as np
import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision.transforms import Compose, Normalize, RandomResizedCrop

#: The recipe's choices of ``augment``.
AUGMENTS = ("none", "openclip")


def step_seed(seed: int, step: int) -> int:
    """The torch seed of training step ``step`` of a run seeded ``seed`` (a 63-bit integer)."""
    return int(np.random.SeedSequence([seed, step, 0x41554739]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class OpenClipView:
    """open_clip's default training transform of ``image_size`` px, less its ``Normalize``.

    Called with uint8 ``[B, H, W, 3]`` images (CPU), the run's ``seed`` and the optimiser ``step``;
    returns float32 ``[B, 3, image_size, image_size]`` in [0, 1] (CPU), one transform per image, as
    open_clip's data loader applies it to each decoded PNG.
    """

    def __init__(self, image_size: int) -> None:
        steps = list(open_clip.transform.image_transform(image_size, is_train=True).transforms)
        last = steps.pop()
        if not (isinstance(last, Normalize) and tuple(last.mean) == tuple(OPENAI_DATASET_MEAN)
                and tuple(last.std) == tuple(OPENAI_DATASET_STD)):
            raise RuntimeError(f"open_clip's training transform no longer ends with the CLIP Normalize: {last!r}")
        self.transform = Compose(steps)

    def __call__(self, images: torch.Tensor, seed: int, step: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(seed, step))
            return torch.stack([self.transform(Image.fromarray(image)) for image in images.numpy()])


def crop_boxes(image: torch.Tensor, count: int, scale: tuple[float, float], gen: torch.Generator) -> list:
    """``count`` ``(top, left, height, width)`` crops of an image of ``image``'s size, drawn as open_clip's
    ``RandomResizedCrop`` draws them (torchvision's own ``get_params``, area ``scale``, aspect 3/4–4/3),
    from a fork of torch's global generator seeded from ``gen``: reproducible, and the caller's random
    stream is untouched. Used by the attacks and the lift that take expectations over such crops."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        return [RandomResizedCrop.get_params(image, scale, (3 / 4, 4 / 3)) for _ in range(count)]


def training_view(augment: str, image_size: int) -> OpenClipView | None:
    """The view ``augment`` names at ``image_size`` px; None for ``none`` (the pixels as published)."""
    if augment == "none":
        return None
    if augment == "openclip":
        return OpenClipView(image_size)
    raise ValueError(f"augment: expected one of {AUGMENTS}, got {augment!r}")
