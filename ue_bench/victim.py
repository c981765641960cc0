"""The victim plugin interface (family ``ue_bench.victims``): an open_clip architecture plus a recipe.

A victim is data (an open_clip architecture name, ``arch``) plus a training recipe (its ``Params``,
a subclass of :class:`Recipe`). The same plugin serves as the *surrogate* an attack optimises against,
so ``--surrogates tiny-rn:lr=5e-4`` changes the attack's model the same way it would change a victim.

Contract (checked by :mod:`ue_bench.testing`): :meth:`Victim.create_model` returns an open_clip model
taking normalised float ``[B, 3, R, R]`` images and int64 ``[B, L]`` token ids and returning a dict with
``image_features``, ``text_features`` and ``logit_scale`` (``output_dict=True``); :meth:`Victim.tokenizer`
turns a list of strings into int64 ``[B, L]`` ids and has ``encode``/``decode``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import open_clip
import torch

from ue_bench.engine.views import AUGMENTS
from ue_bench.store.artifacts import file_sha256
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.plugin import Plugin
from ue_bench.seeds import role_seed, state_sha256
from ue_bench.engine.training import epoch_items, steps_per_epoch


@dataclass(frozen=True)
class Recipe:
    """The training recipe every victim declares (defaults: measured to learn the default synthetic set
    in minutes on 2 CPU cores with the tiny models). ``augment`` defaults to ``openclip``, the view
    open_clip's trainer trains on (``docs/results/2026-11-30/trainer-view``); ``none`` is the view of
    every result before that date. ``eval_every`` only sets how often the learning curve is sampled: the
weights trained are the same whatever its value (tested), so it enters the spec (cell ids) only off its
default; 5 cost tiny-rn 2.3 % of its training time on
the default synthetic set (one evaluation ≈ 0.13–0.18 of an epoch on 2 busy CPU cores; README, *Metrics*)."""

    epochs: int = param(40, lo=1, hi=10000, help="passes over the training data (see epoch_unit)")
    epoch_unit: str = param("images", choices=("images", "captions"),
                            help="what an epoch passes over: images (each once, with one of its captions drawn "
                                 "at random) or captions (every caption row once, as open_clip's CSV trainer and "
                                 "the MEM reference do: 5 steps' worth per image on Flickr/COCO)")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per step (contrastive negatives)")
    lr: float = param(1e-3, lo=0.0, hi=1.0, help="AdamW peak learning rate")
    weight_decay: float = param(0.1, lo=0.0, hi=10.0, help="AdamW weight decay")
    beta1: float = param(0.9, lo=0.0, hi=0.999999, help="AdamW beta1")
    beta2: float = param(0.98, lo=0.0, hi=0.999999, help="AdamW beta2 (open_clip's 0.98; the MEM reference 0.999)")
    adam_eps: float = param(1e-6, lo=0.0, hi=1.0, help="AdamW epsilon (open_clip's 1e-6; the MEM reference 1e-8)")
    decay_embeddings: bool = param(False, help="apply weight decay to the token and positional embeddings too "
                                               "(the MEM reference and open_clip's trainer do)")
    warmup: float = param(0.05, lo=0.0, hi=0.9, help="fraction of steps with linear warm-up before cosine decay")
    warmup_steps: int | None = param(None, lo=0, hi=10_000_000,
                                     help="linear warm-up in optimiser steps, instead of the warmup fraction "
                                          "(the MEM reference: 10000, which may be longer than the whole run)")
    augment: str = param("openclip", choices=AUGMENTS,
                         help="training-time view of the images: none (as published), openclip (open_clip's "
                              "default training transform, RandomResizedCrop scale 0.9-1 bicubic, every step) or "
                              "openclip-strong (open_clip#439's timm recipe: scale 0.33-1, random erasing 0.35)")
    eval_every: int = param(5, lo=0, hi=10000, keyed_at_default=False,
                            help="epochs between evaluations of the clean test split during training, the cell's "
                                 "learning curve (the last epoch always evaluated; 0: no curve); changes no weight")
    init: str | None = param(None, help="local open_clip state-dict file to fine-tune from (default: from scratch)")
    surrogate_init: bool = param(False, help="UPPER BOUND, not a threat model: start from the initial weights of "
                                             "the cell's surrogate (as if the data owner knew the trainer's "
                                             "initialisation); needs the surrogate's architecture (a run "
                                             "pairing it with another is refused), never scored on the "
                                             "leaderboard")


class Victim(Plugin):
    """An open_clip architecture trained from scratch (or from ``init``) with a recipe."""

    #: the open_clip model name (a built-in or one registered with ``open_clip.add_model_config``).
    arch: ClassVar[str] = ""
    Params = Recipe

    @classmethod
    def contract_problem(cls) -> str | None:
        if not cls.arch:
            return f"{cls.__name__}.arch is empty (expected an open_clip model name)"
        if not issubclass(cls.Params, Recipe):
            return f"{cls.__name__}.Params must derive from ue_bench.victim.Recipe"
        return None

    def spec(self) -> dict:
        """Adds the checkpoint's sha256, so a changed ``init`` file invalidates cached victims."""
        spec = super().spec()
        if self.params.init:
            spec["init_sha256"] = self._init_sha256
        return spec

    @functools.cached_property
    def _init_sha256(self) -> str:
        """Hashed once per plugin instance: ``spec()`` is asked for by every cell and stage key."""
        return file_sha256(Path(self.params.init))

    def train_settings(self, **overrides) -> dict:
        """The keyword arguments of :func:`~ue_bench.engine.training.train_clip` that this recipe sets (epochs,
        epoch unit, batch size, AdamW values, warm-up, view), with ``overrides`` applied."""
        r = self.params
        settings = {"epochs": r.epochs, "epoch_unit": r.epoch_unit, "batch_size": r.batch_size, "lr": r.lr,
                    "weight_decay": r.weight_decay, "betas": (r.beta1, r.beta2), "adam_eps": r.adam_eps,
                    "decay_embeddings": r.decay_embeddings, "warmup": r.warmup, "warmup_steps": r.warmup_steps,
                    "augment": r.augment}
        settings.update(overrides)
        return settings

    def training_steps(self, split, **overrides) -> int:
        """Optimiser steps of this recipe on ``split`` (a :class:`~ue_bench.data.PairSplit`): epochs × the
        batches of an epoch over its images or caption rows (``epoch_unit``), with ``overrides`` of
        :meth:`train_settings` applied (e.g. the ``epochs`` and ``batch_size`` a surrogate is trained with)."""
        s = self.train_settings(**overrides)
        return s["epochs"] * steps_per_epoch(epoch_items(split, s["epoch_unit"]), s["batch_size"])

    def resolution_problem(self, resolution: int) -> str | None:
        """Why this architecture cannot take ``resolution`` px images as they are (None: it can): a ViT
        needs a multiple of its patch size (else the border is silently dropped), a ModifiedResNet at
        least its 32x downsampling."""
        vision = (open_clip.get_model_config(self.arch) or {}).get("vision_cfg", {})
        patch = vision.get("patch_size")
        if patch and resolution % patch:
            return f"image size {resolution} px is not a multiple of its patch size {patch}"
        if isinstance(vision.get("layers"), (list, tuple)) and resolution < 32:
            return f"image size {resolution} px is below the 32 px its ResNet tower downsamples by"
        return None

    def create_model(self, resolution: int, device: torch.device | str = "cpu") -> torch.nn.Module:
        """A fresh model whose input size follows the data (``resolution`` px), in train mode.

        Raises :class:`UsageError` when ``init`` cannot be read or does not fit the architecture."""
        model = open_clip.create_model(
            self.arch, pretrained=None, force_image_size=resolution, output_dict=True, device=device
        )
        if self.params.init:
            try:
                state = torch.load(self.params.init, map_location=device, weights_only=True)
            except Exception as exc:  # noqa: BLE001 - whatever torch.load raises on a bad file (unpickling, EOF, ...)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UsageError(f"victim {self.name!r}: cannot read init checkpoint {self.params.init}: {first}") from None
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise UsageError(f"victim {self.name!r}: init checkpoint {self.params.init} holds a "
                                 f"{type(state).__name__}, not a state dict")
            state = {k.removeprefix("module."): v for k, v in state.items()}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise UsageError(
                    f"victim {self.name!r}: checkpoint {self.params.init} does not fit {self.arch} "
                    f"(missing {len(missing)} keys, unexpected {len(unexpected)})"
                )
        return model

    def initial_model(self, resolution: int, seed: int, device: torch.device | str = "cpu",
                      role: str = "surrogate-init", member: int = 0) -> tuple[torch.nn.Module, str]:
        """:meth:`create_model` with its weights drawn from the ``role`` seed of cell ``seed``
        (:func:`~ue_bench.seeds.role_seed`; ``member`` > 0: another model of that role, as the surrogates
        of an ensemble), and the sha256 of its initial state dict
        (:func:`~ue_bench.seeds.state_sha256`); the caller's global RNG state is left as it was.

        An attack builds its surrogate with the default role, ``surrogate-init``, and records the hash
        as ``surrogate_init_sha256`` in its protection's meta; the harness builds victims with
        ``victim-init``, so the two never share initial weights (README, *Threat model*)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(role_seed(seed, role, member))
            model = self.create_model(resolution, device)
        return model, state_sha256(model)

    def tokenizer(self):
        """open_clip's BPE tokenizer with this architecture's context length."""
        return open_clip.get_tokenizer(self.arch)
