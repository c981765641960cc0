"""Carrying a protection from the surrogate's view of an image to the image's own, full-size pixels.

An attack optimises its noise ``delta_R`` on the view a trainer takes of each image: the import's
resize of the shorter side to ``R`` pixels (bicubic, antialiased) and central ``R x R`` crop, the
geometry of open_clip's and CLIP's preprocessing. A data owner publishes the full-size photo, so the
noise must live on the original ``H x W`` pixels and reappear after the trainer's own preprocessing.
:func:`lift` finds that full-size noise by optimisation through a differentiable model of the
preprocessing (:func:`center_view`: ``torch.nn.functional.interpolate`` bicubic with antialiasing,
the filter of PIL's resize, then the crop):

    minimise over d   mean_T || T(x + d) - target_T ||^2    subject to |d| <= eps, 0 <= x + d <= 255

with ``target = clip(center_view(x) + delta_R)`` for the central view, so that the trainer sees the
noise the attack optimised. With ``eot_views = K > 0`` the expectation also runs over K random views
per step drawn as torchvision's ``RandomResizedCrop(R, scale=(eot_scale, 1), ratio=(3/4, 4/3))``
draws them on the full-size image (open_clip's default training transform: scale 0.9–1), each with
the target ``T(clip(x + lift0))``, where ``lift0`` is the nearest-neighbour enlargement of
``delta_R`` onto the central square: the noise follows the content it was optimised on under every
crop and scale (Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018, for EOT).

The optimiser is Adam on the float noise, projected onto the box after each step, starting at
``lift0``; the result is rounded to integers and projected again, so the published uint8 file
``x + d`` is within ±eps of the original by construction (the writer checks it again on the
decoded file). Deterministic for a given image, protection and seed on one machine.

**Camera-size photos.** With the central view only (``eot_views = 0``, the default) the view is a
linear map ``V(x) = A_y x A_xᵀ`` per channel, whose matrices :class:`CentralView` takes from
``interpolate`` itself (a resize of unit vectors): only the window of pixels it reads (the central
square and the filter's reach) can change, and the channels are independent. :func:`lift` then runs
the same Adam steps written out in place, one channel of that window at a time (the gradient is
``A_yᵀ (V(d) - (target - V(x))) A_x`` times the mean's factor), so memory is a few float copies of one
channel's window instead of autograd's graph of the whole image, and the result is the autograd
version's up to float rounding (a pixel in 10⁴ differs by 1). With EOT views it keeps the general
version, whose memory grows with the image (about 165 bytes per pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ue_bench.engine.views import crop_boxes
from ue_bench.engine.images import shorter_side_size
from ue_bench.engine.pixel_box import project


@dataclass(frozen=True)
class LiftSettings:
    """How :func:`lift` optimises: ``steps`` Adam steps of ``lr`` pixel units; ``eot_views`` random
    resize-crops per step besides the central view (0: the central view only), the smallest crop area
    ``eot_scale`` (a fraction of the image); ``seed`` seeds the views."""

    steps: int = 40
    lr: float = 1.0
    eot_views: int = 0
    eot_scale: float = 0.9
    seed: int = 0


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def center_view(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """The trainer's view of float ``[1, 3, H, W]`` pixels (0..255): shorter side resized to
    ``resolution`` (bicubic, antialiased), central ``resolution x resolution`` crop; differentiable."""
    h, w = shorter_side_size(*x.shape[-2:], resolution)
    top, left = (h - resolution) // 2, (w - resolution) // 2
    return _resize(x, (h, w))[..., top:top + resolution, left:left + resolution]


def central_square(height: int, width: int, resolution: int) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` in full-size pixels of the region :func:`center_view` keeps."""
    h, w = shorter_side_size(height, width, resolution)
    top, left = (h - resolution) // 2, (w - resolution) // 2
    sy, sx = height / h, width / w
    y0, x0 = round(top * sy), round(left * sx)
    return y0, x0, min(height, round((top + resolution) * sy)) - y0, min(width, round((left + resolution) * sx)) - x0


def enlarge(delta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``delta`` float ``[1, 3, R, R]`` enlarged (nearest neighbour) onto the central square of a
    ``height x width`` image, zero elsewhere: ``[1, 3, height, width]``."""
    top, left, h, w = central_square(height, width, delta.shape[-1])
    out = torch.zeros(1, 3, height, width, dtype=delta.dtype)
    out[..., top:top + h, left:left + w] = F.interpolate(delta, size=(h, w), mode="nearest")
    return out


def _chw(a: np.ndarray) -> torch.Tensor:
    """float32 ``[1, 3, H, W]`` of an ``[H, W, 3]`` array (copied: the array may be read-only)."""
    return torch.tensor(np.asarray(a), dtype=torch.float32).permute(2, 0, 1)[None]


def _crop_view(x: torch.Tensor, box, resolution: int) -> torch.Tensor:
    i, j, h, w = box
    return _resize(x[..., i:i + h, j:j + w], (resolution, resolution))


def resize_matrix(n: int, m: int, chunk: int = 256) -> torch.Tensor:
    """``[m, n]``: :func:`_resize` (bicubic, antialiased) of a length-``n`` signal to length ``m`` as a
    matrix, from the resize of the ``n`` unit vectors (``chunk`` at a time)."""
    parts = []
    for a in range(0, n, chunk):
        k = min(chunk, n - a)
        eye = torch.zeros(k, 1, 1, n)
        eye[torch.arange(k), 0, 0, torch.arange(a, a + k)] = 1.0
        parts.append(_resize(eye, (1, m))[:, 0, 0, :])
    return torch.cat(parts).T.contiguous()


class CentralView:
    """:func:`center_view` of an ``height x width`` image as ``A_y x A_xᵀ`` per channel, restricted to
    the ``rows`` and ``cols`` of the pixels it reads (``A_y``: ``[R, rows]``, ``A_x``: ``[R, cols]``)."""

    def __init__(self, height: int, width: int, resolution: int) -> None:
        h, w = shorter_side_size(height, width, resolution)
        top, left = (h - resolution) // 2, (w - resolution) // 2
        ay = resize_matrix(height, h)[top:top + resolution]
        ax = resize_matrix(width, w)[left:left + resolution]
        ys, xs = torch.nonzero(ay.abs().sum(0)).flatten(), torch.nonzero(ax.abs().sum(0)).flatten()
        self.rows, self.cols = slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)
        self.ay, self.ax = ay[:, self.rows].contiguous(), ax[:, self.cols].contiguous()

    def window(self, image: np.ndarray, channel: int) -> torch.Tensor:
        """float32 ``[rows, cols]`` of one channel of uint8 ``image`` ``[H, W, 3]``."""
        return torch.from_numpy(np.ascontiguousarray(image[self.rows, self.cols, channel])).float()

    def of(self, window: torch.Tensor) -> torch.Tensor:
        """The ``[R, R]`` view of one channel's window."""
        return self.ay @ window @ self.ax.T


def _lift_central(image: np.ndarray, delta: np.ndarray, eps: int, settings: LiftSettings) -> np.ndarray:
    """:func:`lift` with the central view only, one channel of :class:`CentralView`'s window at a time:
    Adam (torch's update, betas 0.9/0.999, eps 1e-8) written out in place on the window."""
    resolution = delta.shape[0]
    view = CentralView(*image.shape[:2], resolution)
    top, left, h, w = central_square(*image.shape[:2], resolution)
    square = (slice(top - view.rows.start, top - view.rows.start + h),
              slice(left - view.cols.start, left - view.cols.start + w))
    factor = 2.0 / delta.size  # the gradient of the mean squared error over the 3 x R x R view
    out = np.zeros(image.shape, dtype=np.int16)
    for c in range(3):
        x = view.window(image, c)
        lo, hi = (-x).clamp_(min=-eps), (255.0 - x).clamp_(max=eps)  # the box of d
        d_r = torch.from_numpy(np.ascontiguousarray(delta[..., c])).float()
        seen = view.of(x)
        aim = (seen + d_r).clamp(0, 255) - seen  # what the view of d should be
        del x
        d = torch.zeros_like(lo)
        d[square] = F.interpolate(d_r[None, None], size=(h, w), mode="nearest")[0, 0]  # lift0
        torch.clamp(d, lo, hi, out=d)
        m, v, denom = torch.zeros_like(d), torch.zeros_like(d), torch.empty_like(d)
        for t in range(1, settings.steps + 1):
            g = view.ay.T @ ((view.of(d) - aim) * factor) @ view.ax
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            del g
            torch.sqrt(v, out=denom).div_((1 - 0.999 ** t) ** 0.5).add_(1e-8)
            d.addcdiv_(m, denom, value=-settings.lr / (1 - 0.9 ** t))
            torch.clamp(d, lo, hi, out=d)
        out[view.rows, view.cols, c] = torch.clamp(d.round_(), lo, hi).to(torch.int16).numpy()
    return out


def lift(image: np.ndarray, delta: np.ndarray, eps: int, settings: LiftSettings = LiftSettings()) -> np.ndarray:
    """The full-size noise of one image.

    ``image``: uint8 ``[H, W, 3]``, the original pixels; ``delta``: integer ``[R, R, 3]``, the attack's
    noise on the image's central view at ``R`` pixels (pixel units out of 255, within ±``eps``).
    Returns int16 ``[H, W, 3]`` with ``|d| <= eps`` and ``0 <= image + d <= 255``. An image of exactly
    ``R x R`` pixels gets ``delta`` itself (its view is the identity). Raises ``ValueError`` on shapes
    that do not match.
    """
    if image.ndim != 3 or image.shape[-1] != 3 or delta.ndim != 3 or delta.shape[0] != delta.shape[1]:
        raise ValueError(f"expected image [H, W, 3] and delta [R, R, 3], got {image.shape} and {delta.shape}")
    resolution = delta.shape[0]
    if image.shape[:2] == (resolution, resolution):
        return np.clip(delta.astype(np.int16), -image.astype(np.int16), 255 - image.astype(np.int16))
    if not settings.eot_views:
        return _lift_central(image, delta, eps, settings)
    return _lift_general(image, delta, eps, settings)


def _lift_general(image: np.ndarray, delta: np.ndarray, eps: int, settings: LiftSettings) -> np.ndarray:
    """:func:`lift` by autograd through :func:`center_view` and the EOT views on the whole image (its
    memory grows with the image: about 165 bytes per pixel)."""
    resolution = delta.shape[0]
    x = _chw(image)
    d_r = _chw(delta)
    with torch.no_grad():
        target = (center_view(x, resolution) + d_r).clamp(0, 255)
        start = project(enlarge(d_r, *image.shape[:2]), x, eps)
        follow = x + start  # within [0, 255]: start is projected
    gen = torch.Generator().manual_seed(settings.seed)
    d = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([d], lr=settings.lr)
    for _ in range(settings.steps):
        loss = F.mse_loss(center_view(x + d, resolution), target)
        for box in crop_boxes(x, settings.eot_views, (settings.eot_scale, 1.0), gen) if settings.eot_views else ():
            with torch.no_grad():
                aim = _crop_view(follow, box, resolution)
            loss = loss + F.mse_loss(_crop_view(x + d, box, resolution), aim)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            d.copy_(project(d, x, eps))
    with torch.no_grad():
        out = project(d.round(), x, eps)
    return out[0].permute(1, 2, 0).to(torch.int16).numpy()


def view_error(published: np.ndarray, original: np.ndarray, delta: np.ndarray) -> tuple[float, float]:
    """How far the trainer's central view of the ``published`` uint8 ``[H, W, 3]`` file is from the
    view the attack optimised (the original's view plus ``delta`` ``[R, R, 3]``): mean and max absolute
    difference in pixel units. Both views are clipped to 0..255, as an 8-bit resize gives them, so a
    bicubic overshoot at a sharp edge of a small photo, which no trainer sees, is not counted as error."""
    view = CentralView(*original.shape[:2], delta.shape[0])
    diffs = []
    for c in range(3):  # one channel of the window at a time
        seen = view.of(view.window(original, c)).clamp(0, 255)
        aim = (seen + torch.from_numpy(np.asarray(delta[..., c], np.float32))).clamp(0, 255)
        diffs.append((view.of(view.window(published, c)).clamp(0, 255) - aim).abs())
    diff = torch.stack(diffs)
    return float(diff.mean()), float(diff.max())
