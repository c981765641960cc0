"""The full-resolution lift (``ue_bench.engine.lift``), the banded SSIM and the preview contact sheet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ue_bench.engine.images import fit
from ue_bench.engine.imperceptibility import ssim, ssim_banded
from ue_bench.engine.lift import (CentralView, LiftSettings, _lift_central, _lift_general, center_view, enlarge, lift,
                           view_error)
from ue_bench.publish.preview import LABELS, contact_sheet, row


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(base).astype(int) + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("shape", [(256, 384), (401, 257), (300, 300), (64, 97)])
def test_the_differentiable_view_is_the_import_geometry(shape):
    """``center_view`` (torch, differentiable) and the import's PIL resize + center crop agree to the
    uint8 rounding (PIL also rounds and clips between its horizontal and vertical passes, which shows
    most at scale factors near 1): the lift optimises against the preprocessing a trainer applies."""
    img = photo(*shape)
    view = center_view(tensor(img), 32)[0].permute(1, 2, 0).numpy()
    diff = np.abs(view - fit(Image.fromarray(img), 32))
    assert diff.mean() < 0.5 and diff.max() < 1.5, (diff.mean(), diff.max())


@pytest.mark.parametrize("eot", [0, 2])
def test_lift_keeps_the_budget_and_reproduces_the_protected_view(eot):
    img = photo(256, 384)
    rng = np.random.default_rng(1)
    delta = rng.integers(-8, 9, (32, 32, 3)).astype(np.int16)
    noise = lift(img, delta, 8, LiftSettings(eot_views=eot))
    assert noise.shape == img.shape and noise.dtype == np.int16
    assert np.abs(noise).max() <= 8
    published = img.astype(np.int16) + noise
    assert published.min() >= 0 and published.max() <= 255
    published = published.astype(np.uint8)
    mean, _ = view_error(published, img, delta)
    with torch.no_grad():
        naive = (img + enlarge(tensor(delta), 256, 384)[0].permute(1, 2, 0).numpy()).clip(0, 255).astype(np.uint8)
    naive_mean, _ = view_error(naive, img, delta)
    # the trainer sees the attack's noise to a fraction of a pixel (|delta| averages ~4.4 px), far closer
    # than the plain enlargement of the noise gets
    assert mean < (0.3 if eot == 0 else 0.7) and mean < naive_mean / 2, (mean, naive_mean)
    assert np.array_equal(noise, lift(img, delta, 8, LiftSettings(eot_views=eot)))  # deterministic


@pytest.mark.parametrize("shape, resolution", [((256, 384), 32), ((131, 97), 32), ((300, 260), 224), ((40, 1200), 32)])
def test_the_central_view_as_matrices_is_the_view_and_lifts_as_autograd_does(shape, resolution):
    img = photo(*shape)
    view = CentralView(*shape, resolution)
    x = tensor(img)
    for c in range(3):
        assert torch.allclose(view.of(view.window(img, c)), center_view(x, resolution)[0, c], atol=1e-3)
    delta = np.random.default_rng(3).integers(-8, 9, (resolution, resolution, 3)).astype(np.int16)
    fast, slow = _lift_central(img, delta, 8, LiftSettings()), _lift_general(img, delta, 8, LiftSettings())
    differ = fast != slow  # float rounding of the two forms flips a rare .5: by 1, on few pixels
    assert np.abs(fast.astype(int) - slow).max() <= 1 and differ.mean() < 1e-3, differ.mean()
    outside = np.ones(shape, bool)
    outside[view.rows, view.cols] = False
    assert not fast[outside].any()  # the pixels the view does not read are published as they are


def test_an_image_at_the_view_size_gets_the_delta_itself():
    img = photo(32, 32)
    delta = np.random.default_rng(2).integers(-8, 9, (32, 32, 3)).astype(np.int16)
    expected = np.clip(img.astype(np.int16) + delta, 0, 255) - img
    assert np.array_equal(lift(img, delta, 8), expected)


def test_lift_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="expected image"):
        lift(np.zeros((10, 10), np.uint8), np.zeros((4, 4, 3), np.int16), 8)


def test_banded_ssim_equals_the_whole_image_ssim():
    a = photo(300, 200)
    b = np.clip(a.astype(int) + np.random.default_rng(3).integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    whole = ssim(a[None], b[None])[0]
    assert ssim_banded(a, b, band=64) == pytest.approx(whole, abs=1e-12)
    assert ssim_banded(a, b, band=1000) == pytest.approx(whole, abs=1e-12)
    assert ssim_banded(a, a) == pytest.approx(1.0)


def test_contact_sheet_has_a_row_of_five_panels_per_image():
    a = np.minimum(photo(300, 500), 250)
    b = np.clip(a.astype(np.int16) + 4, 0, 255).astype(np.uint8)
    panels = row(a, b, 8)
    assert [p.size for p in panels] == [(256, 154), (256, 154), (256, 154), (128, 128), (128, 128)]
    assert np.asarray(panels[2]).min() >= 128 + 4 * 127 // 8 - 1  # the +4 noise shows amplified, not averaged away
    sheet = contact_sheet([panels, panels])
    assert sheet.size == (5 * 264, 18 + 2 * 264) and len(LABELS) == 5


def test_contact_sheet_enlarges_a_small_image_by_a_whole_factor():
    """A 40 x 60 px photo fills the box as 4 x 4 squares of its own pixels, not a corner of an empty cell."""
    small = photo(40, 60)
    panels = row(small, small, 8)
    assert [p.size for p in panels] == [(240, 160), (240, 160), (240, 160), (60, 40), (60, 40)]
    assert np.array_equal(np.asarray(panels[0])[::4, ::4], small)


def test_contact_sheet_draws_accented_names_not_boxes():
    """A data owner's ``café à la plage.jpg`` is named in letters: the same sheet with an unassigned code
    point (drawn as the font's box) in place of the accents differs, as it does not with PIL's default font."""
    panels = row(photo(40, 40), photo(40, 40), 8)
    named = np.asarray(contact_sheet([panels], ["café à la plage.jpg"]))
    boxed = np.asarray(contact_sheet([panels], ["caf\u0378 \u0378 la plage.jpg"]))
    assert not np.array_equal(named, boxed)


def test_view_error_counts_what_a_trainer_sees_not_the_resize_overshoot():
    """A small photo of black squares on white: the bicubic view overshoots past 255 beside each edge, where
    an 8-bit resize clips. Publishing the original unchanged with a zero delta is no error at all, and the
    lift of a ±8 noise stays within about ε of the attack's view at every pixel (it read 25/255 before the
    clip, on a fresh user's folder of small photos)."""
    img = np.full((40, 57, 3), 255, np.uint8)
    img[8:14, 10:30] = 0
    img[20:31, 35:41] = 0
    zero = np.zeros((32, 32, 3), np.int16)
    assert view_error(img, img, zero) == (0.0, 0.0)
    delta = np.random.default_rng(3).integers(-8, 9, (32, 32, 3)).astype(np.int16)
    published = (img.astype(np.int16) + lift(img, delta, 8)).astype(np.uint8)
    mean, worst = view_error(published, img, delta)
    assert mean < 1.0 and worst <= 9.0, (mean, worst)
