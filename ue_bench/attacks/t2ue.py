"""T2UE, unlearnable examples generated from text descriptions (Ma et al., arXiv 2508.03091, 2025).

T2UE protects an image–caption pair from its caption alone: a text-conditioned generator maps the
caption into image-noise space, and is trained with an error-minimising objective against a frozen
CLIP model, so that the noise makes each image trivially easy to match with its caption (InfoNCE, the
CLIP loss, minimised) within ε = 8/255. The data owner never shows the images to whoever trains the
generator. Here the frozen model is the surrogate trained on the clean pairs (as ``tap``'s is), and the
generator is trained on the pairs being protected.

What stands in for the paper's parts (the paper maps text into noise space with a pretrained
text-to-image model, which cannot be downloaded here, and its training settings could not be read on
this machine; only its abstract and the issue's summary were): the generator is a small convolutional
decoder trained from scratch, conditioned on the frozen surrogate's text features (each image's
condition is the normalised mean of its captions' features, so an image's noise comes from its text
only); its output is ``eps · tanh``, continuous while it trains, rounded to whole pixel units and clipped
to each image's pixel range when published. Its paper figures (RN50 from scratch on Flickr8k, image→text
Hit@10): clean 17.7, EM 7.9, TAP 14.3, MEM-3 without trigger 15.9, T2UE 11.6.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F

from ue_bench import Attack, Protection, delta_buffer, param, release
from ue_bench.engine.device import autocast
from ue_bench.engine.pixel_box import project
from ue_bench.engine.training import normalize

from ._hotflip import encode_text
from ._surrogate import SplitTensors, freeze, require, trained_on_clean


@dataclass(frozen=True)
class T2UEParams:
    """The budget, the frozen surrogate's clean training and the generator's."""

    eps: int = param(8, lo=0, hi=32, help="L∞ budget of the image noise, pixel units out of 255 (T2UE: 8)")
    surrogate_epochs: int = param(10, lo=1, hi=10000, help="epochs of clean training of the frozen surrogate")
    generator_steps: int = param(300, lo=0, hi=1000000, help="Adam steps of the generator")
    generator_lr: float = param(1e-3, lo=0.0, hi=1.0, help="Adam learning rate of the generator")
    width: int = param(64, lo=4, hi=1024, help="channels of the generator's first feature map (halved per stage)")
    grid: int = param(8, lo=1, hi=64, help="side of the generator's first feature map (doubled per stage)")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per generator step (the contrastive negatives)")


class TextToNoise(torch.nn.Module):
    """A caption-conditioned noise generator: normalised text features ``[B, D]`` → float noise
    ``[B, 3, H, W]`` in pixel units within ±``eps`` (a linear map to a ``width``×``grid``² feature
    map, two upsample-and-convolve stages, a 3-channel convolution, bilinear resize to H×W, ``eps·tanh``)."""

    def __init__(self, dim: int, size: tuple[int, int], eps: int, width: int, grid: int) -> None:
        super().__init__()
        self.size, self.eps, self.width, self.grid = size, eps, width, grid
        self.project = torch.nn.Linear(dim, width * grid * grid)
        half, quarter = max(1, width // 2), max(1, width // 4)
        self.body = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(width, half, 3, padding=1),
            torch.nn.ReLU(), torch.nn.Upsample(scale_factor=2), torch.nn.Conv2d(half, quarter, 3, padding=1),
            torch.nn.ReLU(), torch.nn.Conv2d(quarter, 3, 3, padding=1))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        x = self.body(self.project(text).view(-1, self.width, self.grid, self.grid))
        return self.eps * torch.tanh(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))


def caption_conditions(model: torch.nn.Module, data: SplitTensors, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen model's normalised features of every caption row ``[M, D]`` and each image's condition
    ``[N, D]``: the normalised mean of its captions' features."""
    rows = []
    with torch.no_grad():
        for part in data.tokens.split(256):
            rows.append(encode_text(model, part.to(device)).cpu())
    feats = torch.cat(rows)
    owner = torch.repeat_interleave(torch.arange(data.n), data.counts)
    mean = torch.zeros(data.n, feats.shape[1]).index_add_(0, owner, feats)
    return feats, F.normalize(mean, dim=-1)


class T2UE(Attack):
    """T2UE (Ma et al. 2025): noise from each image's captions by a generator that minimises a frozen surrogate's CLIP loss.

    Returns a memory-mapped int8 delta ``[N, H, W, 3]`` within ±``eps`` pixel units (out of 255), a
    function of the image's captions alone (then clipped to the image's pixel range), and no trigger. Raises :class:`~ue_bench.errors.UsageError`
    without a surrogate.
    """

    Params = T2UEParams
    version = "1"
    presets = {"tiny": {"surrogate_epochs": 1, "generator_steps": 3, "width": 8, "batch_size": 16},
               # the paper's budget (8/255) and the paper protocol's 32 clean epochs for the frozen model (as tap's
               # paper preset); the generator's settings are ue-bench's (module docstring)
               "paper": {"eps": 8, "surrogate_epochs": 32, "batch_size": 128}}

    def cost_steps(self, n_images: int) -> float:
        return float(self.params.generator_steps)

    def clean_surrogate_epochs(self) -> int:
        return self.params.surrogate_epochs

    def protect(self, split, surrogate, seed, device):
        p = self.params
        surrogate = require(surrogate, self.name)
        model, meta = trained_on_clean(surrogate, split, p.surrogate_epochs, seed, device, self.name)
        freeze(model, True)
        data = SplitTensors(split, surrogate.tokenizer())
        captions, conditions = caption_conditions(model, data, device)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2 ** 31 - 1, (1,), generator=gen)))
            generator = TextToNoise(conditions.shape[1], tuple(split.images.shape[1:3]), p.eps, p.width, p.grid).to(device)
        optimizer = torch.optim.Adam(generator.parameters(), lr=p.generator_lr)
        loss_fn, scale = open_clip.ClipLoss(), model.logit_scale.exp().detach().float()
        batch_size, losses, start = min(p.batch_size, data.n), [], time.perf_counter()
        for _ in range(p.generator_steps):
            idx = torch.randperm(data.n, generator=gen)[:batch_size]
            rows = data.offsets[idx] + (torch.rand(len(idx), generator=gen) * data.counts[idx]).long()
            images = data.pixels(idx, device)
            with autocast(device):
                noise = project(generator(conditions[idx].to(device)), images, p.eps)
                feats = F.normalize(model.encode_image(normalize((images + noise) / 255.0)).float(), dim=-1)
                loss = loss_fn(feats, captions[rows].to(device), scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        delta = delta_buffer(split.images.shape, p.eps)
        generator.eval()
        with torch.no_grad():
            for idx in torch.arange(data.n).split(256):
                images = data.pixels(idx, device)
                noise = project(generator(conditions[idx].to(device)).round(), images, p.eps)
                delta[idx.numpy()] = noise.to(torch.int16).permute(0, 2, 3, 1).cpu().numpy()
                release(delta)
        window = max(1, min(10, len(losses)))  # single-batch losses are noisy: means over the first and last steps
        meta.update(generator_loss_start=sum(losses[:window]) / window if losses else None,
                    generator_loss_end=sum(losses[-window:]) / window if losses else None,
                    generator_s=round(time.perf_counter() - start, 2))
        return Protection(delta=delta, meta=meta)
