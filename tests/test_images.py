"""ue_bench.engine.images.decode_image: every mode PIL returns becomes 8-bit RGB as a viewer shows it.

Each test writes a small file in one mode, decodes it, and compares it with a reference rendering
computed here with numpy from the values written (max abs difference <= 2)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ue_bench.engine import images
from ue_bench.errors import UsageError
from ue_bench.engine.images import decode_image

W, H = 48, 32
TOL = 2


def ramp16() -> np.ndarray:
    """A 0…65535 ramp over the whole image (first pixel 0, last 65535)."""
    return np.linspace(0, 65535, W * H).round().astype(np.uint16).reshape(H, W)


def ramp8(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png16(samples: np.ndarray, color_type: int, size: tuple[int, int] | None = None) -> bytes:
    """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB): ``samples`` uint16 [H, W, C];
    ``size`` (w, h) overrides the size the header declares."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    w, h = size or (w, h)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference: ``rgb`` over white with ``alpha`` (0…255)."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return rgb.astype(np.float64) * a + 255.0 * (1.0 - a)


def grey(a: np.ndarray) -> np.ndarray:
    return np.repeat(a.astype(np.float64)[..., None], 3, axis=2)


def check(data: bytes, reference: np.ndarray, mode: str | None = None) -> int:
    if mode is not None:
        assert Image.open(io.BytesIO(data)).mode == mode  # the file really arrives in that mode
    out = decode_image(data, name="t")
    assert out.mode == "RGB" and out.size == (reference.shape[1], reference.shape[0])
    diff = int(np.abs(np.asarray(out, dtype=np.float64) - reference).max())
    assert diff <= TOL, f"max abs difference {diff}"
    return diff


def case_1():
    bits = (np.indices((H, W)).sum(0) % 2).astype(bool)
    return save(Image.fromarray(bits), "PNG"), grey(bits * 255.0), "1"


def case_L():
    a = ramp8()[..., 0]
    return save(Image.fromarray(a, "L"), "PNG"), grey(a), "L"


def case_LA():
    g, alpha = ramp8(1)[..., 0], ramp8(2)[..., 0]
    return save(Image.fromarray(np.dstack([g, alpha]), "LA"), "PNG"), composite(grey(g), alpha), "LA"


def _palette_image():
    pal = np.random.default_rng(3).integers(0, 256, size=(16, 3), dtype=np.uint8)
    idx = (np.arange(H * W).reshape(H, W) % 16).astype(np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette(pal.tobytes())
    return img, idx, pal


def case_P():
    img, idx, pal = _palette_image()
    return save(img, "PNG"), pal[idx].astype(np.float64), "P"


def case_P_transparent_index():
    img, idx, pal = _palette_image()
    ref = pal[idx].astype(np.float64)
    ref[idx == 5] = 255.0  # the transparent entry shows the white background
    return save(img, "PNG", transparency=5), ref, "P"


def case_P_alpha_palette():
    img, idx, pal = _palette_image()
    alphas = np.linspace(0, 255, 16).round().astype(np.uint8)
    return save(img, "PNG", transparency=alphas.tobytes()), composite(pal[idx], alphas[idx]), "P"


def case_I16_png():
    a = ramp16()
    return save(Image.fromarray(a), "PNG"), grey(a // 257), "I;16"


def case_I16B_tiff():
    a = ramp16()
    img = Image.frombytes("I;16B", (W, H), a.astype(">u2").tobytes())
    return save(img, "TIFF"), grey(a // 257), "I;16B"


def case_I16L_tiff():
    a = ramp16()
    img = Image.frombytes("I;16L", (W, H), a.astype("<u2").tobytes())
    return save(img, "TIFF"), grey(a // 257), "I;16"  # PIL names little-endian I;16


def case_I32_tiff():
    a = ramp16().astype(np.int32)  # 16-bit data in a 32-bit integer image, as older Pillow returns it
    a[0, :4] = [-5, 70000, 65535, 0]  # clipped to 0…65535
    ref = np.clip(a, 0, 65535) // 257
    return save(Image.fromarray(a, "I"), "TIFF"), grey(ref), "I"


def case_F_tiff():
    a = np.linspace(-0.2, 1.2, W * H, dtype=np.float32).reshape(H, W)  # clipped to 0…1
    return save(Image.fromarray(a, "F"), "TIFF"), grey(np.rint(np.clip(a, 0, 1) * 255)), "F"


def case_RGBA():
    rgb, alpha = ramp8(4), ramp8(5)[..., 0]
    return save(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"), composite(rgb, alpha), "RGBA"


def case_RGB_transparent_colour():
    rgb = ramp8(6)
    rgb[:4, :4] = (10, 20, 30)
    ref = rgb.astype(np.float64)
    ref[(rgb == (10, 20, 30)).all(-1)] = 255.0
    return save(Image.fromarray(rgb), "PNG", transparency=(10, 20, 30)), ref, "RGB"


def case_CMYK():
    cmyk = ramp8(7)
    cmyk = np.dstack([cmyk, ramp8(8)[..., :1]])
    c = cmyk.astype(np.float64)
    ref = (255.0 - c[..., :3]) * (255.0 - c[..., 3:]) / 255.0  # subtractive: (1 - c)(1 - k)
    return save(Image.fromarray(cmyk, "CMYK"), "TIFF"), ref, "CMYK"


def case_YCbCr():
    rgb = ramp8(9).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # JFIF (full-range BT.601) conversion
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    ycc = np.clip(np.rint(np.dstack([y, cb, cr])), 0, 255).astype(np.uint8)
    # rounding to 8-bit YCbCr moves RGB by up to ~1.4; the reference is the exact inverse of what was stored
    yy, cbb, crr = (ycc[..., i].astype(np.float64) for i in range(3))
    ref = np.dstack([yy + 1.402 * (crr - 128), yy - 0.344136 * (cbb - 128) - 0.714136 * (crr - 128),
                     yy + 1.772 * (cbb - 128)])
    return save(Image.fromarray(ycc, "YCbCr"), "TIFF"), np.clip(ref, 0, 255), "YCbCr"


def case_RGB16_png():
    rgb = np.stack([ramp16(), ramp16()[::-1], np.full((H, W), 40000, np.uint16)], axis=-1)
    return png16(rgb, 2), (rgb // 257).astype(np.float64), "RGB"


def case_RGBA16_png():
    rgb = np.stack([ramp16(), ramp16()[::-1], np.full((H, W), 40000, np.uint16)], axis=-1)
    alpha = ramp16()[::-1, ::-1]
    return png16(np.dstack([rgb, alpha]), 6), composite(rgb // 257, alpha // 257), "RGBA"


def case_LA16_png():
    g, alpha = ramp16(), ramp16()[::-1]
    return png16(np.dstack([g, alpha]), 4), composite(grey(g // 257), alpha // 257), "RGBA"


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_mode_decodes_to_rgb_as_a_viewer_shows_it(case):
    data, reference, mode = CASES[case]()
    check(data, reference, mode)


def test_sixteen_bit_ramp_is_not_clipped_white():
    """The reported case: a 0…65535 I;16 ramp came out 96.9 % white."""
    out = np.asarray(decode_image(save(Image.fromarray(ramp16()), "PNG"), name="t"))
    assert (out == 255).mean() < 0.01
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and out[H // 2, 0, 0] in (127, 128)


def quadrants() -> np.ndarray:
    """Four solid quadrants (red, green / blue, white): any rotation or flip changes the layout."""
    a = np.zeros((H, W, 3), dtype=np.uint8)
    a[: H // 2, : W // 2] = (255, 0, 0)
    a[: H // 2, W // 2:] = (0, 255, 0)
    a[H // 2:, : W // 2] = (0, 0, 255)
    a[H // 2:, W // 2:] = (255, 255, 255)
    return a


# EXIF orientation → how the stored (sensor-order) pixels must be turned to show the scene
ORIENT = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def with_orientation(a: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(Image.fromarray(a), fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    stored = quadrants()
    expected = ORIENT[orientation](stored)
    out = np.asarray(decode_image(with_orientation(stored, orientation, "PNG"), name="t"))
    assert out.shape == expected.shape and np.array_equal(out, expected)


def test_jpeg_orientation_6_is_shown_upright():
    stored = quadrants()  # 48 wide, 32 high in sensor order
    out = np.asarray(decode_image(with_orientation(stored, 6, "JPEG"), name="t"), dtype=np.int16)
    assert out.shape == (W, H, 3)  # rotated: 32 wide, 48 high
    # rotated 90° clockwise: the blue bottom-left quadrant is now top-left, red top-right
    assert np.abs(out[4, 4] - (0, 0, 255)).max() < 40 and np.abs(out[4, -5] - (255, 0, 0)).max() < 40


def test_undecodable_bytes_name_the_source():
    with pytest.raises(UsageError, match=r"^p.csv line 3 \(x.png\): cannot decode the image"):
        decode_image(b"not an image at all", name="p.csv line 3 (x.png)")


def test_truncated_file_is_refused():
    data = save(Image.fromarray(ramp8()), "PNG")
    with pytest.raises(UsageError, match=r"t: cannot decode"):
        decode_image(data[: len(data) // 2], name="t")
    jpeg = save(Image.fromarray(ramp8()), "JPEG")
    with pytest.raises(UsageError, match=r"t: cannot decode"):
        decode_image(jpeg[: len(jpeg) // 2], name="t")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        decode_image(tmp_path / "nope.png")


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", W * H - 1)
    with pytest.raises(UsageError, match=r"t: the image is 48x32 = 1536 pixels, more than the limit of 1535"):
        decode_image(save(Image.fromarray(ramp8()), "PNG"), name="t")
    # a real bomb: a tiny PNG declaring 20000 x 20000 pixels is refused from its header
    bomb = png16(np.zeros((1, 1, 3), np.uint16), 2, size=(20000, 20000))
    monkeypatch.setattr(images, "MAX_PIXELS", 89_478_485)
    with pytest.raises(UsageError, match="decompression bomb"):
        decode_image(bomb, name="t")
