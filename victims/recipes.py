"""Built-in victims: CPU-scale ``tiny-rn``/``tiny-vit`` and paper-scale ``rn50``/``rn101``/``vitb32``.

A victim is data (an open_clip architecture name) plus a recipe (the dataclass parameters). Presets per
scale are just different defaults of the same recipe fields, so a user can override any of them with
``--victims rn50:epochs=8,batch_size=64``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import open_clip
import torch

from ue_bench.cache import file_sha256
from ue_bench.errors import UsageError
from ue_bench.params import param
from ue_bench.registry import Plugin

from . import MODEL_CONFIGS  # noqa: F401  (registers the tiny configs with open_clip)


@dataclass(frozen=True)
class TinyRecipe:
    """Recipe defaults measured to learn the default synthetic set in minutes on 2 CPU cores."""

    epochs: int = param(40, lo=1, hi=10000, help="passes over the training images")
    batch_size: int = param(64, lo=2, hi=65536, help="pairs per step (contrastive negatives)")
    lr: float = param(1e-3, lo=0.0, hi=1.0, help="AdamW peak learning rate")
    weight_decay: float = param(0.1, lo=0.0, hi=10.0, help="AdamW weight decay")
    warmup: float = param(0.05, lo=0.0, hi=0.9, help="fraction of steps with linear warm-up before cosine decay")
    init: str | None = param(None, help="local open_clip state-dict file to fine-tune from (default: from scratch)")


@dataclass(frozen=True)
class TinyViTRecipe(TinyRecipe):
    """The tiny recipe at a lower rate: on the default synthetic set ``tiny-vit`` reached clean i2t R@1
    .76 at 1e-3 and .94 at 3e-4 (2 CPU cores, seeds 0–2)."""

    lr: float = param(3e-4, lo=0.0, hi=1.0, help="AdamW peak learning rate")


@dataclass(frozen=True)
class PaperRecipe(TinyRecipe):
    """The MEM paper's protocol: 32 epochs, batch 128, AdamW 5e-4, weight decay 0.2, warm-up + cosine."""

    epochs: int = param(32, lo=1, hi=10000, help="passes over the training images")
    batch_size: int = param(128, lo=2, hi=65536, help="pairs per step (contrastive negatives)")
    lr: float = param(5e-4, lo=0.0, hi=1.0, help="AdamW peak learning rate")
    weight_decay: float = param(0.2, lo=0.0, hi=10.0, help="AdamW weight decay")


class Victim(Plugin):
    """An open_clip architecture trained from scratch (or from ``init``) with a recipe."""

    arch: ClassVar[str] = ""
    Params = TinyRecipe

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

    def create_model(self, resolution: int, device: torch.device | str = "cpu") -> torch.nn.Module:
        """A fresh model whose input size follows the data (``resolution`` px), in train mode."""
        model = open_clip.create_model(
            self.arch, pretrained=None, force_image_size=resolution, output_dict=True, device=device
        )
        if self.params.init:
            try:
                state = torch.load(self.params.init, map_location=device, weights_only=True)
            except (OSError, RuntimeError) as exc:
                raise UsageError(f"victim {self.name!r}: cannot read init checkpoint {self.params.init}: {exc}") from None
            state = state.get("state_dict", state)
            state = {k.removeprefix("module."): v for k, v in state.items()}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise UsageError(
                    f"victim {self.name!r}: checkpoint {self.params.init} does not fit {self.arch} "
                    f"(missing {len(missing)} keys, unexpected {len(unexpected)})"
                )
        return model

    def tokenizer(self):
        """open_clip's BPE tokenizer with this architecture's context length."""
        return open_clip.get_tokenizer(self.arch)


class TinyRN(Victim):
    """CPU-scale ModifiedResNet CLIP (~12 M parameters, 2-layer text tower) for tests and smoke runs."""

    arch = "tiny-rn"


class TinyViT(Victim):
    """CPU-scale ViT CLIP (4 layers, width 192, patch 8, 2-layer text tower) for tests and smoke runs."""

    arch = "tiny-vit"
    Params = TinyViTRecipe


class RN50(Victim):
    """open_clip RN50 from scratch with the MEM paper's recipe (GPU scale)."""

    arch = "RN50"
    Params = PaperRecipe


class RN101(Victim):
    """open_clip RN101 from scratch with the MEM paper's recipe (GPU scale)."""

    arch = "RN101"
    Params = PaperRecipe


class ViTB32(Victim):
    """open_clip ViT-B-32 from scratch with the MEM paper's recipe (GPU scale)."""

    arch = "ViT-B-32"
    Params = PaperRecipe
