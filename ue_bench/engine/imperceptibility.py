"""PSNR and SSIM of protected against clean images, for the ``protection`` record of a cell.

Fields (computed by the harness on the poisoned subset, the clean ``uint8`` images against
the published ones): ``protection.psnr_mean`` and ``protection.ssim_mean`` from :func:`imperceptibility`;
the cost table shows ``—`` where a run lacks them.

* PSNR per image = 10·log10(255² / MSE) over all pixels and channels; the mean is over the images that
  changed (an unchanged image has infinite PSNR and would make every mean infinite), and
  ``n_unchanged`` counts the others.
* SSIM as Wang et al. (2004): 11×11 Gaussian window with σ = 1.5 (shrunk to the image for images
  smaller than 11 px), K1 = 0.01, K2 = 0.03, L = 255, over the positions where the window fits
  entirely (no padding), per channel; an image's SSIM is the mean over positions and channels, as
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255, channel_axis=-1)``. Plain numpy, to avoid a scikit-image dependency.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

K1, K2, L, SIGMA, WINDOW = 0.01, 0.03, 255.0, 1.5, 11


def _gaussian(size: int) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * SIGMA ** 2))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filtering of [N, H, W, C] along H and W."""
    x = np.einsum("nhwck,k->nhwc", sliding_window_view(x, len(g), axis=1), g)
    return np.einsum("nhwck,k->nhwc", sliding_window_view(x, len(g), axis=2), g)


def _ssim_map(x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """SSIM at every position where a ``size`` window fits, of float [N, H, W, C] arrays."""
    g = _gaussian(size)
    mx, my = _filter(x, g), _filter(y, g)
    vx = _filter(x * x, g) - mx * mx
    vy = _filter(y * y, g) - my * my
    cxy = _filter(x * y, g) - mx * my
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _window(height: int, width: int) -> int:
    size = min(WINDOW, height, width)
    return size - (1 - size % 2)  # odd, so the window has a centre


def ssim(clean: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """Per-image SSIM of two [N, H, W, C] uint8 arrays."""
    size = _window(clean.shape[1], clean.shape[2])
    return _ssim_map(clean.astype(np.float64), protected.astype(np.float64), size).mean(axis=(1, 2, 3))


def ssim_banded(clean: np.ndarray, protected: np.ndarray, band: int = 256) -> float:
    """:func:`ssim` of one pair of [H, W, C] uint8 images of any size, computed over bands of ``band``
    rows of window positions so that a full-size photo needs memory for a band, not for the image."""
    h, w = clean.shape[:2]
    size = _window(h, w)
    total, count = 0.0, 0
    for y in range(0, h - size + 1, band):
        rows = slice(y, min(h, y + band + size - 1))
        s = _ssim_map(clean[None, rows].astype(np.float64), protected[None, rows].astype(np.float64), size)
        total, count = total + float(s.sum()), count + s.size
    return total / count


def psnr(clean: np.ndarray, protected: np.ndarray) -> float | None:
    """PSNR in dB of one pair of uint8 images of one shape (any size), as above; None when identical.
    Summed in bands of rows, so that a camera-size photo needs no float copy of itself."""
    sq = sum(int(np.square(clean[y:y + 256].astype(np.int32) - protected[y:y + 256]).sum())
             for y in range(0, len(clean), 256))
    mse = sq / clean.size
    return None if mse == 0 else float(10 * np.log10(L * L / mse))


def imperceptibility(clean_u8: np.ndarray, protected_u8: np.ndarray, chunk: int = 256) -> dict:
    """``psnr_mean`` (dB, over changed images; None if none changed), ``ssim_mean`` and ``n_unchanged``
    of [N, H, W, 3] uint8 clean and protected images, in chunks of ``chunk`` images to bound memory."""
    return imperceptibility_of_chunks(
        (clean_u8[i:i + chunk], protected_u8[i:i + chunk]) for i in range(0, max(len(clean_u8), 1), chunk))


def imperceptibility_of_chunks(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict:
    """:func:`imperceptibility` of images given as ``(clean, protected)`` chunks of [n, H, W, 3] uint8,
    so that the protected copy never has to be held in memory whole. Raises ``ValueError`` on arrays of
    different shapes, another dtype or another rank."""
    mse, ssims = [], []
    for a, b in pairs:
        if a.shape != b.shape or a.ndim != 4:
            raise ValueError(f"expected two [N, H, W, C] arrays of one shape, got {a.shape} and {b.shape}")
        if a.dtype != np.uint8 or b.dtype != np.uint8:
            raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
        if len(a):
            mse.append(((a.astype(np.float64) - b) ** 2).reshape(len(a), -1).mean(axis=1))
            ssims.append(ssim(a, b))
    if not mse:
        return {"psnr_mean": None, "ssim_mean": None, "n_unchanged": 0}
    mse = np.concatenate(mse)
    changed = mse[mse > 0]
    psnr_mean = float(np.mean(10 * np.log10(L * L / changed))) if len(changed) else None
    return {"psnr_mean": psnr_mean, "ssim_mean": float(np.concatenate(ssims).mean()),
            "n_unchanged": int((mse == 0).sum())}
