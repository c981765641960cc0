"""Random ±1 sign tiles repeated over an image: the building block of synthetic-noise patterns
(Yu et al.) and of ``mem-patterns``' trigger-spelling patterns, which a victim of any architecture can read off
linearly; and block-constant noise, one value per square of pixels."""

from __future__ import annotations

import torch


def sign_tiles(k: int, patch: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` random ±1 tiles, int16 ``[k, patch, patch, 3]``."""
    return torch.randint(0, 2, (k, patch, patch, 3), generator=gen, dtype=torch.int16) * 2 - 1


def expand_blocks(coarse: torch.Tensor, block: int, size: tuple[int, int], dims: tuple[int, int] = (-2, -1)
                  ) -> torch.Tensor:
    """``coarse`` with each value repeated over a ``block`` × ``block`` square along its row and column
    dimensions ``dims`` (nearest neighbour), cut to ``size`` (H, W) at the bottom and right edges: block
    values ``[..., ceil(H / block), ceil(W / block)]`` (by default) as ``[..., H, W]`` pixels."""
    rows, cols = dims
    out = coarse.repeat_interleave(block, rows).repeat_interleave(block, cols)
    return out.narrow(rows, 0, size[0]).narrow(cols, 0, size[1])


def tile_over(tiles: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``tiles[k, p, p, 3]`` repeated to cover ``[k, h, w, 3]`` (cut at the right and bottom edges)."""
    p = tiles.shape[1]
    return tiles.repeat(1, -(-h // p), -(-w // p), 1)[:, :h, :w]
