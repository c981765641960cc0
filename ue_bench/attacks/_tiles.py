"""Random ±1 sign tiles repeated over an image: the building block of synthetic-noise patterns
(Yu et al.) and of ``mem-patterns``' trigger-spelling patterns, which a victim of any architecture can read off
linearly."""

from __future__ import annotations

import torch


def sign_tiles(k: int, patch: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` random ±1 tiles, int16 ``[k, patch, patch, 3]``."""
    return torch.randint(0, 2, (k, patch, patch, 3), generator=gen, dtype=torch.int16) * 2 - 1


def tile_over(tiles: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``tiles[k, p, p, 3]`` repeated to cover ``[k, h, w, 3]`` (cut at the right and bottom edges)."""
    p = tiles.shape[1]
    return tiles.repeat(1, -(-h // p), -(-w // p), 1)[:, :h, :w]
