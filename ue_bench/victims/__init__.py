"""Victim recipes: an open_clip architecture plus a training recipe.

Importing this package registers the JSON configs in ``model_configs/`` with open_clip's own config
registry, so ``open_clip.create_model("tiny-rn")`` works like any built-in architecture.
"""

import logging
from pathlib import Path

import open_clip

MODEL_CONFIGS = Path(__file__).parent / "model_configs"

if "tiny-rn" not in open_clip.list_models():
    open_clip.add_model_config(MODEL_CONFIGS)


def _drop_random_init_notice(record: logging.LogRecord) -> bool:
    """open_clip warns on every model built without weights; from scratch is this benchmark's normal case."""
    return not str(record.msg).startswith("No pretrained weights loaded")


logging.getLogger().addFilter(_drop_random_init_notice)
