"""The training-time view of the data: what a trainer's input pipeline does to the published images.

A victim's recipe names it (``augment``):

* ``none``: the published pixels exactly as they are, every epoch (a trainer that never resamples).
* ``openclip``: open_clip's default training transform, built by open_clip itself
  (``open_clip.transform.image_transform(R, is_train=True)`` with the default ``AugmentationCfg``:
  ``RandomResizedCrop(R, scale=(0.9, 1.0))``, bicubic, on the PIL image) — the view
  ``python -m open_clip_train.main`` trains on unless told otherwise. Its final ``Normalize`` is left
  out, since :func:`ue_bench.engine.training.normalize` applies the same CLIP mean and std afterwards
  (checked when the view is built), so it is applied once.
* ``openclip-strong``: the stronger recipe some open_clip models were trained with (open_clip#439,
  ``--aug-cfg use_timm=True scale='(0.33, 1.0)' re_prob=0.35``), built by open_clip with timm:
  ``RandomResizedCropAndInterpolation(R, scale=(0.33, 1.0))``, bicubic, then after the CLIP
  ``Normalize`` timm's ``RandomErasing(p=0.35, mode=pixel)``, which fills a random box with standard
  normal values in normalised space. The view's output is that tensor mapped back through the mean
  and std, so the model sees exactly open_clip's input (erased pixels may lie outside [0, 1]).

The crops are drawn from torch's global generator, as torchvision draws them (and timm's from Python's
``random``), inside a fork of it (and of ``random``'s state) seeded by ``(seed, step)``: a training run is reproducible, and the rest of the training loop's random
stream is the same whichever view is chosen.
"""

from __future__ import annotations

import random

import numpy as np
import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from open_clip.transform import AugmentationCfg
from torchvision.transforms import Compose, Normalize, RandomResizedCrop

#: The recipe's choices of ``augment``.
AUGMENTS = ("none", "openclip", "openclip-strong")

#: open_clip's augmentation settings per view (None: its default ``AugmentationCfg``).
AUGMENTATION_CFGS = {"openclip": None,
                     "openclip-strong": AugmentationCfg(scale=(0.33, 1.0), re_prob=0.35, use_timm=True)}


def step_seed(seed: int, step: int) -> int:
    """The torch seed of training step ``step`` of a run seeded ``seed`` (a 63-bit integer)."""
    return int(np.random.SeedSequence([seed, step, 0x41554739]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class OpenClipView:
    """open_clip's training transform of ``image_size`` px for ``aug_cfg`` (None: its default), in [0, 1]
    units: less its final ``Normalize``, or, where steps follow the ``Normalize`` (random erasing),
    the whole transform mapped back through the CLIP mean and std.

    Called with uint8 ``[B, H, W, 3]`` images (CPU), the run's ``seed`` and the optimiser ``step``;
    returns float32 ``[B, 3, image_size, image_size]`` (CPU), one transform per image, as open_clip's
    data loader applies it to each decoded PNG. Raises RuntimeError when the transform has no CLIP
    ``Normalize``.
    """

    def __init__(self, image_size: int, aug_cfg: AugmentationCfg | None = None) -> None:
        steps = list(open_clip.transform.image_transform(image_size, is_train=True, aug_cfg=aug_cfg).transforms)
        at = [i for i, t in enumerate(steps) if isinstance(t, Normalize)]
        if len(at) != 1 or not (np.allclose(np.asarray(steps[at[0]].mean, dtype=float), OPENAI_DATASET_MEAN)
                                and np.allclose(np.asarray(steps[at[0]].std, dtype=float), OPENAI_DATASET_STD)):
            raise RuntimeError(f"open_clip's training transform no longer has one CLIP Normalize: {steps!r}")
        self.after_normalize = at[0] < len(steps) - 1
        if not self.after_normalize:
            steps.pop()
        self.transform = Compose(steps)

    def __call__(self, images: torch.Tensor, seed: int, step: int) -> torch.Tensor:
        state = random.getstate()  # timm's transforms draw from Python's generator, torchvision's from torch's
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(step_seed(seed, step))
                random.seed(step_seed(seed, step))
                out = torch.stack([self.transform(Image.fromarray(image)) for image in images.numpy()])
        finally:
            random.setstate(state)
        if self.after_normalize:
            out = out * torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1) + torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        return out


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
    if augment in AUGMENTATION_CFGS:
        return OpenClipView(image_size, AUGMENTATION_CFGS[augment])
    raise ValueError(f"augment: expected one of {AUGMENTS}, got {augment!r}")
