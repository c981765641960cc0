"""Built-in victims: CPU-scale ``tiny-rn``/``tiny-vit`` and paper-scale ``rn50``/``rn101``/``vitb32``.

A victim is data (an open_clip architecture name) plus a recipe (the dataclass parameters, deriving from
:class:`ue_bench.victim.Recipe`). Presets per scale are just different defaults of the same recipe fields,
so a user can override any of them with ``--victims rn50:epochs=8,batch_size=64``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ue_bench import Recipe, Victim, param

from . import MODEL_CONFIGS  # noqa: F401  (registers the tiny configs with open_clip)

#: Recipe values of the ``tiny`` preset (tests, seconds per cell), for every victim.
TINY = {"epochs": 2, "batch_size": 16, "eval_every": 1}
#: The MEM paper's victim protocol, under ``--preset paper``, from the reference code (thinwayliu/
#: Multimodal-Unlearnable-Examples, ``src/parser.py`` defaults, ``src/main.py``/``src/poison_main.py``):
#: 32 epochs over the CSV's caption rows, batch 128, AdamW 5e-4 with betas (0.9, 0.999), eps 1e-8 and
#: weight decay 0.2 on everything but gains, biases and the logit scale (the embeddings included),
#: 10,000 warm-up steps then cosine, and the fixed Resize + CenterCrop view (no augmentation); ue-bench's
#: learning curve sampled every 4 epochs (8 test evaluations in 32 epochs).
PAPER = {"epochs": 32, "epoch_unit": "captions", "batch_size": 128, "lr": 5e-4, "weight_decay": 0.2,
         "beta1": 0.9, "beta2": 0.999, "adam_eps": 1e-8, "decay_embeddings": True, "warmup_steps": 10000,
         "augment": "none", "eval_every": 4}


@dataclass(frozen=True)
class TinyViTRecipe(Recipe):
    """The tiny recipe at a lower rate: on the default synthetic set ``tiny-vit`` reached clean i2t R@1
    .76 at 1e-3 and .94 at 3e-4 (2 CPU cores, seeds 0–2)."""

    lr: float = param(3e-4, lo=0.0, hi=1.0, help="AdamW peak learning rate")


@dataclass(frozen=True)
class PaperRecipe(Recipe):
    """The paper-scale recipe outside ``--preset paper``: the MEM paper's epochs, batch, rate and weight
    decay (32 epochs, batch 128, AdamW 5e-4, weight decay 0.2, warm-up + cosine) under the realistic
    trainer's defaults (open_clip's view and AdamW values, epochs over images); ``--preset paper`` sets
    the reference's protocol field by field (:data:`PAPER`)."""

    epochs: int = param(32, lo=1, hi=10000, help="passes over the training data (see epoch_unit)")
    batch_size: int = param(128, lo=2, hi=65536, help="pairs per step (contrastive negatives)")
    lr: float = param(5e-4, lo=0.0, hi=1.0, help="AdamW peak learning rate")
    weight_decay: float = param(0.2, lo=0.0, hi=10.0, help="AdamW weight decay")
    eval_every: int = param(4, lo=0, hi=10000, keyed_at_default=False,
                            help="epochs between evaluations of the clean test split during training, the cell's "
                                 "learning curve (the last epoch always evaluated; 0: no curve); changes no weight")


class TinyRN(Victim):
    """CPU-scale ModifiedResNet CLIP (~12 M parameters, 2-layer text tower) for tests and smoke runs."""

    arch = "tiny-rn"
    presets = {"tiny": TINY, "paper": PAPER}


class TinyViT(Victim):
    """CPU-scale ViT CLIP (4 layers, width 192, patch 8, 2-layer text tower) for tests and smoke runs."""

    arch = "tiny-vit"
    Params = TinyViTRecipe
    presets = {"tiny": TINY, "paper": PAPER}


class RN50(Victim):
    """open_clip RN50 from scratch at the MEM paper's epochs, batch and rate (GPU scale)."""

    arch = "RN50"
    Params = PaperRecipe
    presets = {"tiny": TINY, "paper": PAPER}


class RN101(Victim):
    """open_clip RN101 from scratch at the MEM paper's epochs, batch and rate (GPU scale)."""

    arch = "RN101"
    Params = PaperRecipe
    presets = {"tiny": TINY, "paper": PAPER}


class ViTB32(Victim):
    """open_clip ViT-B-32 from scratch at the MEM paper's epochs, batch and rate (GPU scale)."""

    arch = "ViT-B-32"
    Params = PaperRecipe
    presets = {"tiny": TINY, "paper": PAPER}
