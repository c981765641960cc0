"""D-VAE: purify the published images with rate-constrained variational autoencoders trained on them.

Yu et al., "Purify Unlearnable Examples via Rate-Constrained Variational Autoencoders", ICML 2024
(arXiv 2405.01460); reference code ``yuyi-sd/D-VAE`` (``main_vae_disentangle.py``, the model
``ResNetDVAE`` in ``configs/models/resnet.py``, the settings of ``configs/cifar10/resnet18DVAE.yaml`` and
``some_scripts.sh``). A VAE whose KL term (its rate) is held to a small target cannot carry a bounded,
sample-specific noise through its latent; a second decoder learns that noise as a separate output
``p``, the *disentangled perturbation*, so that ``x - p`` is the image without it.

The model (per stage, trained from scratch on the images it purifies): the stem of a ResNet-18 (a 3×3
convolution of ``width`` channels, batch norm, ReLU, two basic blocks) followed by ``levels`` stride-2
levels (each two basic blocks, the last one), channels doubling per level; 1×1 convolutions to the mean
and log-variance of a Gaussian latent of ``latent`` channels on the spatial grid, a reparameterised
sample, a 1×1 convolution back; two decoders of transposed convolutions with instance norm (per level: a
stride-2 4×4 one halving the channels and a 3×3 one, then two 3×3 layers to 3 channels; the norm is
``decoder_norm``), the image
decoder ending in a sigmoid, the perturbation decoder unbounded and fed the latent plus a learned spatial
embedding. Loss per batch, images in [0, 1]::

    mse(rec, x) + mse(clamp(rec + p, 0, 1), x) + beta * max(KL, rate)
        + [epoch > p_warmup * epochs] * max(mean(p²), p_floor)

where KL is the Gaussian latent's KL divergence to N(0, I) in nats, summed over latent channels and
averaged over batch and grid positions: the rate per latent position, penalised only above its target.
Adam at ``lr``, cosine annealing to 0 over the epochs (stepped per epoch), gradient norm clipped to
``grad_clip``, shuffled batches, no augmentation. Two stages, as the reference's two iterations: stage 1
(target ``rate_first``, weight ``beta_first``) trains on the published images x and gives
``x1 = clamp(x - p(x))``; stage 2 (target ``rate``, weight ``beta``), a fresh model trained on x1,
gives ``clamp(rec(clamp(x1 - p(x1))))``, the images the victim trains on. Both purifications run the
model in eval mode with a sampled latent, as the reference does. Defaults are the reference's CIFAR-10
settings (``stem_end_block: 7``, ``latent_dim: 256``, 60 epochs, batch 128, Adam 0.005, clip 5.0,
``--kd 3.0``; in code: stage-1 target 1.0 with weight 0.01, stage-2 weight 0.5, the perturbation
penalty ``max(loss_p, 0.002)`` after epoch 10 of 60).

Departures, with reasons:

* No class labels. The reference adds a class embedding (``emb_p(y)``, spatial with
  ``--spatial_emb``) to the perturbation decoder's input; image–text pairs have no classes, so here it
  is one learned spatial embedding shared by every image (the reference's with a single class). The
  reference's classifier head and its monitoring classifier enter no loss and are left out.
* Resolution. The reference halves 32-px CIFAR once before the latent (a 16×16 grid) and 224-px
  ImageNet three times (28×28). Here ``levels`` is the fewest halvings (at least one) that bring the grid
  to at most 28 a side, which gives both of those, and 16×16 at 64 px; its decoders have one
  up-sampling level per halving, the reference's 32-px decoder generalised (its ImageNet decoder is laid
  out slightly differently).
* The penalty's start is a share of the epochs (``p_warmup``, 10/60) so that shorter runs keep it.
* Rounding. Between stages and at the end images are rounded to uint8, where the reference truncates
  (a bias of half a level).
* A trailing batch is kept unless it holds one image (the reference drops every partial batch).
* ``decoder_norm``: the reference's decoders normalise per image (instance norm without affine), which
  removes each channel's mean per image, so a flat region's absolute colour reaches the output only
  through its contrast with the rest; the synthetic and emoji sets are mostly flat. ``batch`` keeps it:
  the second stage alone, 20 epochs of a width-8 model on 1,400 synthetic 32-px images, reconstructs
  with an RMS error of 19.5 pixel units where instance norm leaves 26.5. The default is the
  reference's; the ``tiny`` preset uses ``batch``.
* The ``tiny`` preset (CPU tests) is a narrow model (width 8, 32 latent channels) trained for 10
  epochs a stage; the defaults are the paper's, which are GPU work.

Input and output: a :class:`~ue_bench.PairSplit` of uint8 ``[N, H, W, 3]`` images (H = W) in, a new one
of the same shape and dtype out (a memory-mapped temporary file), captions and meta copied, the input
never written. Deterministic per seed on a given device (weights, batch order and latent samples come
from generators seeded by ``seed`` and the stage; the global RNG is saved and restored); computed on CUDA
when present, else the CPU. Raises :class:`~ue_bench.UsageError` for a resolution the encoder's halvings
do not divide, and for a split of fewer than two images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ue_bench import Defense, PairSplit, UsageError, param, release
from ue_bench.engine.device import auto_device, calibration_batch, median_step_seconds
from ue_bench.engine.training import batches, read_batch, to_unit

from .squeeze import image_buffer


#: A purification pass over an image (one forward pass of the model in stage 1, two in stage 2, no backward)
#: in training steps.
PURIFY_STEP_COST = 0.5
#: Least seconds of timed VAE steps behind :meth:`DVAE.transform_seconds` (small models' steps are short).
CALIBRATION_SECONDS = 1.0
#: Largest latent grid side: the reference's at 224 px (28 × 28); at 32 px it has 16 × 16.
MAX_GRID = 28
_TAG = 0x44564145  # "DVAE": this defense's seeds, apart from every other role's


def unit_batch(images: np.ndarray, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images ``idx`` as float ``[B, 3, H, W]`` in [0, 1], contiguous: the channels-last view that
    ``to_unit`` gives made this model's backward pass crash (a segmentation fault in torch 2.14's CPU
    kernels at 64 px; 32 px ran)."""
    return to_unit(read_batch(images, idx), device).contiguous()


@dataclass(frozen=True)
class DVAEParams:
    width: int = param(64, lo=2, hi=512, help="channels of the encoder's first level, doubling per halving "
                                              "(reference: ResNet-18's 64)")
    latent: int = param(256, lo=1, hi=4096, help="latent channels per grid position (reference: 256)")
    epochs: int = param(60, lo=1, hi=10000, help="training epochs of each stage's VAE (reference: 60)")
    batch_size: int = param(128, lo=2, hi=65536, help="images per step (reference: 128)")
    lr: float = param(0.005, lo=0.0, hi=1.0, help="Adam learning rate, cosine-annealed to 0 (reference: 0.005)")
    grad_clip: float = param(5.0, lo=0.0, help="gradient L2-norm clip per step (reference: 5.0)")
    rate: float = param(3.0, lo=0.0, help="stage 2's KL target: nats per latent position, penalised "
                                                  "above it (reference: --kd 3.0)")
    beta: float = param(0.5, lo=0.0, help="stage 2's weight of the KL term (reference: 0.5)")
    rate_first: float = param(1.0, lo=0.0, help="stage 1's KL target, nats per latent position "
                                                        "(reference: 1.0)")
    beta_first: float = param(0.01, lo=0.0, help="stage 1's weight of the KL term (reference: 0.01)")
    p_floor: float = param(0.002, lo=0.0, hi=1.0, help="mean squared perturbation (images in [0, 1]) below "
                                                       "which the perturbation is not penalised (reference: 0.002)")
    p_warmup: float = param(10 / 60, lo=0.0, hi=1.0, help="share of each stage's epochs before the "
                                                          "perturbation penalty starts (reference: 10 of 60)")
    stages: int = param(2, lo=1, hi=2, help="1: x - p(x) only; 2: then a second VAE's reconstruction "
                                            "(reference: 2)")
    decoder_norm: str = param("instance", choices=("instance", "batch"),
                              help="the decoders' normalisation: per image (reference) or per batch")


def levels_for(resolution: int) -> int:
    """The encoder's stride-2 halvings at ``resolution``: the fewest (at least one) leaving a grid of at
    most :data:`MAX_GRID` a side. Raises UsageError where they do not divide the resolution."""
    levels = max(1, math.ceil(math.log2(resolution / MAX_GRID)))
    if resolution % (1 << levels):
        raise UsageError(f"defense 'dvae': resolution {resolution} is not divisible by {1 << levels}, the "
                         f"{levels} halvings that bring its latent grid to at most {MAX_GRID} a side")
    return levels


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 convolutions with batch norm and a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def encoder(width: int, levels: int) -> nn.Sequential:
    """ResNet-18's stem and layers up to the first block of level ``levels`` (``stem_end_block`` 7 at one)."""
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
              BasicBlock(width, width, 1), BasicBlock(width, width, 1)]
    for k in range(1, levels + 1):
        cin, cout = width << (k - 1), width << k
        layers.append(BasicBlock(cin, cout, 2))
        if k < levels:
            layers.append(BasicBlock(cout, cout, 1))
    return nn.Sequential(*layers)


NORMS = {"instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d}


def decoder(width: int, levels: int, sigmoid: bool, norm: str) -> nn.Sequential:
    """Transposed convolutions from the grid's ``width << levels`` channels back to 3 at full resolution;
    ``norm`` a key of :data:`NORMS`."""
    layers: list[nn.Module] = []
    for k in range(levels, 0, -1):
        cin, cout = width << k, width << (k - 1)
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ConvTranspose2d(cout, cout, 3, 1, 1),
                   NORMS[norm](cout), nn.ReLU()]
    half = max(1, width // 2)
    layers += [nn.ConvTranspose2d(width, half, 3, 1, 1), NORMS[norm](half), nn.ReLU(),
               nn.ConvTranspose2d(half, 3, 3, 1, 1)]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))


class DisentanglingVAE(nn.Module):
    """The reference's ``ResNetDVAE`` without its classifier: ``forward(x, noise)`` gives the
    reconstruction, the latent mean and log-variance, and the disentangled perturbation, all
    ``[B, ., ., .]`` float; ``noise`` is the standard-normal draw of the latent sample."""

    def __init__(self, resolution: int, width: int, latent: int, norm: str) -> None:
        super().__init__()
        levels = levels_for(resolution)
        top, grid = width << levels, resolution >> levels
        self.encoder = encoder(width, levels)
        self.mu, self.log_var = nn.Conv2d(top, latent, 1), nn.Conv2d(top, latent, 1)
        self.post = nn.Conv2d(latent, top, 1)
        self.decoder, self.decoder_p = decoder(width, levels, True, norm), decoder(width, levels, False, norm)
        self.embedding = nn.Parameter(torch.randn(1, top, grid, grid))  # nn.Embedding's N(0, 1) init
        self.latent_shape = (latent, grid, grid)

    def forward(self, x: torch.Tensor, noise: torch.Tensor):
        h = self.encoder(x)
        mu, log_var = self.mu(h), self.log_var(h)
        z = self.post(mu + noise * torch.exp(0.5 * log_var))
        return self.decoder(z), mu, log_var, self.decoder_p(z + self.embedding)


def generator(seed: int, stage: int, purpose: int) -> torch.Generator:
    """A CPU generator that is a function of (seed, stage, purpose) only."""
    state = np.random.SeedSequence([seed, _TAG, stage, purpose]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class DVAE(Defense):
    """D-VAE (Yu et al. 2024): train on the reconstructions of rate-constrained VAEs that split off the noise."""

    Params = DVAEParams
    version = "1"
    transforms_data = True
    presets = {"tiny": {"width": 8, "latent": 32, "epochs": 10, "batch_size": 32, "decoder_norm": "batch"}}

    def transform(self, split: PairSplit, seed: int) -> PairSplit:
        if len(split) < 2:
            raise UsageError(f"defense {self.name!r} trains on the split itself and needs at least 2 images, "
                             f"got {len(split)}")
        levels_for(split.resolution)  # fail before any work
        p, device = self.params, auto_device()
        images = split.images
        for stage in range(1, p.stages + 1):
            model = self.train_stage(images, stage, seed, device)
            images = self.purify(model, images, stage, seed, device, reconstruct=stage == 2)
        return PairSplit(images, [list(c) for c in split.captions], meta=dict(split.meta))

    def train_stage(self, images: np.ndarray, stage: int, seed: int, device: torch.device) -> DisentanglingVAE:
        """A fresh model of ``stage`` (1 or 2) trained on ``images`` (uint8 ``[N, H, W, 3]``)."""
        p = self.params
        rate, beta = (p.rate_first, p.beta_first) if stage == 1 else (p.rate, p.beta)
        with torch.random.fork_rng(devices=[]):  # module init draws from the global RNG: restore it after
            torch.default_generator.manual_seed(generator(seed, stage, 0).initial_seed())  # the CPU's only
            model = DisentanglingVAE(images.shape[1], p.width, p.latent, p.decoder_norm).to(device)
        order, noise = generator(seed, stage, 1), generator(seed, stage, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs)
        model.train()
        for epoch in range(p.epochs):
            penalise_p = epoch > p.p_warmup * p.epochs
            for idx in batches(len(images), p.batch_size, order):
                x = unit_batch(images, idx, device)
                eps = torch.randn((len(idx), *model.latent_shape), generator=noise).to(device)
                self.train_step(model, optimizer, x, eps, rate, beta, penalise_p)
            schedule.step()
        return model.eval()

    def train_step(self, model: DisentanglingVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   eps: torch.Tensor, rate: float, beta: float, penalise_p: bool) -> None:
        """One optimiser step of the loss in the module docstring on images ``x`` (float ``[B, 3, H, W]``
        in [0, 1]) with latent draw ``eps``."""
        rec, mu, log_var, pert = model(x, eps)
        kl = (-0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(dim=1)).mean()
        loss = F.mse_loss(rec, x) + F.mse_loss((rec + pert).clamp(0, 1), x) + beta * torch.clamp(kl, min=rate)
        if penalise_p:
            loss = loss + torch.clamp(pert.pow(2).mean(), min=self.params.p_floor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), self.params.grad_clip)
        optimizer.step()

    def transform_seconds(self, split: PairSplit) -> float:
        """The median training step of a stage's model (:func:`~ue_bench.engine.device.median_step_seconds`,
        at least :data:`CALIBRATION_SECONDS` of steps), at the recipe's batch (on the CPU at
        :func:`~ue_bench.engine.device.calibration_batch` images, scaled linearly as ``--dry-run``'s victims
        are), times each stage's epochs of steps plus its purification passes (:data:`PURIFY_STEP_COST`)."""
        p, device = self.params, auto_device()
        b = calibration_batch(min(p.batch_size, len(split)), device)
        levels_for(split.resolution)
        with torch.random.fork_rng(devices=[]):
            model = DisentanglingVAE(split.resolution, p.width, p.latent, p.decoder_norm).to(device).train()
            x = unit_batch(split.images, torch.arange(b), device)
            eps = torch.randn((b, *model.latent_shape)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
        step = median_step_seconds(lambda: self.train_step(model, optimizer, x, eps, p.rate, p.beta, True),
                                   device, min_seconds=CALIBRATION_SECONDS)
        return p.stages * len(split) * step / b * (p.epochs + PURIFY_STEP_COST)

    @torch.no_grad()
    def purify(self, model: DisentanglingVAE, images: np.ndarray, stage: int, seed: int, device: torch.device,
               reconstruct: bool) -> np.ndarray:
        """``clamp(x - p(x))`` per image, then its reconstruction where ``reconstruct``, as uint8."""
        out, noise = image_buffer(images.shape), generator(seed, stage, 3)
        for start in range(0, len(images), self.params.batch_size):
            idx = torch.arange(start, min(start + self.params.batch_size, len(images)))
            x = unit_batch(images, idx, device)
            eps = torch.randn((len(idx), *model.latent_shape), generator=noise).to(device)
            x = (x - model(x, eps)[3]).clamp(0, 1)
            if reconstruct:
                eps = torch.randn((len(idx), *model.latent_shape), generator=noise).to(device)
                x = model(x, eps)[0].clamp(0, 1)
            out[start:start + len(idx)] = (x * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            release(out)
        return out
