"""``ue-bench protect`` at full resolution: every image at its own size and name, within ε on the
written file, the owner's metadata policy, a resumable build, the preview, and ``publish=original``
in a run reading exactly what protect publishes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import _cliproc
from ue_bench import registry
from ue_bench.publish import export_full
from ue_bench.cli import main
from ue_bench.cli.protect import _size
from ue_bench.publish.export import Layout
from ue_bench.engine.images import decode_rgb_array, fit
from ue_bench.engine.lift import LiftSettings
from ue_bench.protection import Protection

SIZES = [(300, 200), (200, 300), (256, 256), (420, 260), (97, 131), (640, 480)]
GPS_TAG, ARTIST_TAG, ORIENTATION_TAG = 0x8825, 0x013B, 0x0112


def write_photos(folder: Path, n: int = 12, captions: int = 2) -> None:
    """``n`` smooth JPEG/PNG photos of varied sizes, half in a subfolder, each with ``NAME.txt``."""
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        img = Image.fromarray(rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        name = folder / ("sub" if i % 2 else "") / f"photo{i}"
        name.parent.mkdir(parents=True, exist_ok=True)
        img.save(name.with_suffix(".jpg" if i % 3 else ".png"), **({"quality": 92} if i % 3 else {}))
        name.with_suffix(".txt").write_text("".join(f"photo {i} caption {c}\n" for c in range(captions)))


def protect(*argv: str) -> int:
    return main(["protect", *argv])


@pytest.fixture
def photos(tmp_path):
    write_photos(tmp_path / "photos")
    return tmp_path / "photos"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_image_keeps_its_size_and_name_and_is_within_eps_after_decoding(photos, tmp_path, capsys):
    out = tmp_path / "copy"
    spec = f"folder:{photos},resolution=32,test_fraction=0.25"
    assert protect("--attack", "random:eps=6", "--dataset", spec, "--out", str(out), "--cache", str(tmp_path / "c"),
                   "--victim", "tiny-rn:batch_size=4", "--preview", "3") == 0
    err = capsys.readouterr().err
    originals, test = registry.create("datasets", "folder", {"": str(photos), "resolution": 32,
                                                             "test_fraction": 0.25}).originals()
    assert len(originals) == 9 and len(test) == 3
    for r in originals:
        original = decode_rgb_array(r.read())
        published = decode_rgb_array(out / "train" / f"{r.name}.png")
        assert published.shape == original.shape                              # its own width and height
        diff = np.abs(published.astype(np.int16) - original)
        assert 0 < diff.max() <= 6                                            # protected, within eps
        sidecar = (out / "train" / f"{r.name}.txt").read_text().splitlines()  # the folder layout mirrored
        assert sidecar == list(r.captions)
    for r in test:                                                            # clean validation data
        assert np.array_equal(decode_rgb_array(out / "val" / f"{r.name}.png"), decode_rgb_array(r.read()))
    manifest = json.loads((out / "manifest.json").read_text())
    s = manifest["summary"]
    assert manifest["full_resolution"] and manifest["format"] == "folder" and s["n_images"] == 9
    assert s["linf_max"] == 6 and 30 < s["psnr_min"] <= s["psnr_max"] < 40 and 0 < s["ssim_min"] <= s["ssim_max"] < 1
    widths = [decode_rgb_array(r.read()).shape[1] for r in originals]
    assert s["width_range"] == [min(widths), max(widths)] and s["view_error_mean"] < 1.0
    rows = [json.loads(line) for line in (out / "files.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows if r["split"] == "train"] == [r.name for r in originals]
    assert [(r["split"], r["i"]) for r in rows] == [("train", i) for i in range(9)] + [("val", i) for i in range(3)]
    train_rows = [r for r in rows if r["split"] == "train"]                  # the summary is these rows'
    assert s["bytes"] == sum(r["bytes"] for r in train_rows) and s["psnr_min"] == min(r["psnr"] for r in train_rows)
    assert s["view_error_mean"] == pytest.approx(np.mean([r["view_error_mean"] for r in train_rows]))
    for row in rows:
        data = (out / ("train" if row["split"] == "train" else "val") / f"{row['name']}.png").read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    assert "max L∞ 6/255 (eps 6) measured on the written files" in err
    assert f"px, {_size(s['bytes'])}; " in err
    assert "the 3 test images are copied UNPROTECTED" in err
    sheet = Image.open(out / "preview.png")
    assert sheet.size == (5 * 264, 18 + 3 * (264 + 14))
    assert (out / "train.csv").read_text().splitlines()[1].startswith(f"train/{originals[0].name}.png\t")
    assert not list(tmp_path.glob(".copy*"))                                  # no partial folder left
    umask = os.umask(0)
    os.umask(umask)
    for path in (out / "manifest.json", out / "train" / f"{originals[0].name}.png", out / "train"):
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~umask, path  # publishable


def test_the_summary_gives_a_copy_s_size_in_a_unit_that_shows_it():
    assert [_size(n) for n in (512, 27_000, 1_134_080, 3 * 2**30)] == ["512 B", "26.4 KiB", "1.1 MiB", "3.0 GiB"]


def test_every_image_is_protected_unless_a_test_split_is_asked_for(photos, tmp_path, capsys):
    """A data owner's photos are all protected: ``test_fraction`` (0.1 in a benchmark run) is 0 in
    ``protect`` unless given, so nothing is left clean in ``val/``."""
    out = tmp_path / "all"
    assert protect("--attack", "random", "--dataset", f"folder:{photos},resolution=32", "--out", str(out),
                   "--cache", str(tmp_path / "c"), "--victim", "tiny-rn:batch_size=4") == 0
    assert "UNPROTECTED" not in capsys.readouterr().err
    assert len(list((out / "train").rglob("*.png"))) == 12 and not (out / "val").exists()
    assert json.loads((out / "manifest.json").read_text())["dataset"]["params"]["test_fraction"] == 0


def test_exif_orientation_is_applied_the_icc_profile_kept_and_identifying_exif_dropped(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pixels = np.random.default_rng(1).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6           # stored sideways: a viewer rotates it to 40 wide x 60 high
    exif[ARTIST_TAG] = "Jane Owner"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # an RGB profile: kept
    for i in range(8):
        Image.fromarray(pixels).save(folder / f"p{i}.png", exif=exif, icc_profile=icc, dpi=(300, 300))
        (folder / f"p{i}.txt").write_text("a photo\n")
    out = tmp_path / "out"
    assert protect("--attack", "random", "--dataset", f"folder:{folder},resolution=16,test_fraction=0",
                   "--out", str(out), "--cache", str(tmp_path / "c")) == 0
    img = Image.open(out / "train" / "p0.png")
    assert img.size == (40, 60)
    assert img.info.get("icc_profile") == icc and tuple(round(v) for v in img.info["dpi"]) == (300, 300)
    assert ARTIST_TAG not in img.getexif() and ORIENTATION_TAG not in img.getexif()


def _export(tmp_path, records, out, delta, triggers=None):
    layout = Layout()
    return export_full.export_full_resolution(out, records, [], Protection(delta=delta, triggers=triggers), 8,
                                              layout, True, LiftSettings(steps=5), {"job": 1}, {"attack": "t"})


@pytest.fixture
def records(photos):
    return registry.create("datasets", "folder", {"": str(photos), "resolution": 32, "test_fraction": 0}).originals()[0]


def test_triggers_are_written_into_the_sidecars_and_the_index(tmp_path, records):
    delta = np.random.default_rng(0).integers(-8, 9, (len(records), 32, 32, 3)).astype(np.int8)
    triggers = [f"zq{i}" for i in range(len(records))]
    _export(tmp_path, records, tmp_path / "o", delta, triggers)
    assert (tmp_path / "o" / "train" / f"{records[3].name}.txt").read_text().splitlines()[0] == f"zq3 {records[3].captions[0]}"
    index = (tmp_path / "o" / "train.csv").read_text().splitlines()
    assert index[1] == f"train/{records[0].name}.png\tzq0 {records[0].captions[0]}" and len(index) == 1 + 2 * len(records)


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it, and the partial folder stays as a kill leaves it."""


@pytest.mark.parametrize("where, after", [("image", 0), ("image", 4), ("record", 1), ("record", 7), ("index", 0)])
def test_a_killed_export_resumes_to_byte_identical_files(tmp_path, records, monkeypatch, where, after):
    """Killed before an image is written, between an image's file and its record, or while the index is
    written: the rerun skips what is recorded, redoes the rest, and the copy is byte for byte the same."""
    delta = np.random.default_rng(0).integers(-8, 9, (len(records), 32, 32, 3)).astype(np.int8)
    _export(tmp_path, records, tmp_path / "ref", delta)
    expected = tree(tmp_path / "ref")
    targets = {"image": (export_full, "_protect_one"), "record": (export_full.Progress, "add"),
               "index": (export_full, "_write_index")}
    owner, name = targets[where]
    real, calls = getattr(owner, name), []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dies)
    with pytest.raises(Killed):
        _export(tmp_path, records, tmp_path / "out", delta)
    monkeypatch.setattr(owner, name, real)
    partial = export_full.partial_folder(tmp_path / "out")
    assert partial.is_dir() and not (tmp_path / "out").exists()
    _export(tmp_path, records, tmp_path / "out", delta)
    assert tree(tmp_path / "out") == expected
    assert not partial.exists()


def test_a_partial_copy_of_other_arguments_is_discarded_not_mixed_in(tmp_path, records, monkeypatch, capsys):
    delta = np.random.default_rng(0).integers(-8, 9, (len(records), 32, 32, 3)).astype(np.int8)
    real = export_full._write_index
    monkeypatch.setattr(export_full, "_write_index", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        _export(tmp_path, records, tmp_path / "out", -delta)
    monkeypatch.setattr(export_full, "_write_index", real)
    out = tmp_path / "out"
    export_full.export_full_resolution(out, records, [], Protection(delta=delta), 8, Layout(), True,
                                       LiftSettings(steps=5), {"job": 2}, {"attack": "t"})
    assert "discarding" in capsys.readouterr().err
    _export(tmp_path, records, tmp_path / "ref", delta)
    assert tree(out) == tree(tmp_path / "ref")


def test_a_sigkilled_protect_resumes_to_byte_identical_files(photos, tmp_path):
    """The command itself, SIGKILLed once the partial copy has recorded some images, then rerun."""
    def argv(out, cache):
        return ["protect", "--attack", "random", "--dataset", f"folder:{photos},resolution=32,test_fraction=0",
                "--out", str(out), "--cache", str(cache), "--lift-steps", "200"]

    done = _cliproc.run(argv(tmp_path / "ref", tmp_path / "c1"), tmp_path, {"OMP_NUM_THREADS": "1"}, tmp_path / "ref")
    assert done.code == 0, done.stderr[-2000:]
    out = tmp_path / "out"
    progress = export_full.partial_folder(out) / export_full.PROGRESS
    proc = _cliproc.start(argv(out, tmp_path / "c2"), tmp_path, {"OMP_NUM_THREADS": "1"}, tmp_path / "killed")
    _cliproc.wait_for(lambda: progress.exists() and progress.read_bytes().count(b"\n") >= 3, proc, 300)
    landed = proc.is_alive()
    proc.kill()
    proc.join()
    if landed:
        assert not out.exists()
    again = _cliproc.run(argv(out, tmp_path / "c2"), tmp_path, {"OMP_NUM_THREADS": "1"}, tmp_path / "rerun")
    assert again.code == 0, again.stderr[-2000:]
    assert landed, "the protect finished before the kill: give it more images or lift steps"
    assert "resuming the partial copy" in again.stderr
    got, expected = tree(out), tree(tmp_path / "ref")
    for manifest in (got, expected):
        manifest.pop("manifest.json")  # holds the run's own times and paths
    assert got == expected


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "synthetic:size=24,test_size=8,resolution=16", "--full-resolution"], "has no original image files"),
    (["--format", "webdataset"], "full-resolution copies are written as image files"),
    (["--image-format", "jpg", "--force-lossy"], "full-resolution copies are PNG"),
    (["--dataset", "synthetic:size=24,test_size=8,resolution=16", "--preview", "2"], "--preview: needs"),
    (["--lift-eot-scale", "2"], "--lift-eot-scale: parameter 'lift_eot_scale'=2.0 is out of bounds [0.05, 1.0]"),
    (["--lift-steps", "x"], "--lift-steps: parameter 'lift_steps' expects int, got 'x'"),
    (["--lift-steps", "-1"], "--lift-steps: parameter 'lift_steps'=-1 is out of bounds (expected at least 0)"),
    (["--lift-steps", "5", "--dataset", "synthetic:size=24,test_size=8,resolution=16"],
     "--lift-steps: dataset 'synthetic' has no original image files"),
    (["--lift-eot-views", "2", "--import-resolution"], "lift_eot_views=2 sets how the noise is carried onto the "
                                                       "full-size files, and no full-size copy is made here"),
])
def test_bad_full_resolution_flags_are_one_line_and_write_nothing(photos, tmp_path, capsys, argv, message):
    base = ["--attack", "random", "--dataset", f"folder:{photos},resolution=32", "--cache", str(tmp_path / "c")]
    assert protect(*base, "--out", str(tmp_path / "o"), *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not export_full.partial_folder(tmp_path / "o").exists()


def test_a_run_with_publish_original_trains_on_the_trainers_view_of_the_protected_files(tmp_path):
    """``publish=original``: the images a run's victim trains on are the resize + crop of the very files
    ``protect`` writes, for the same attack and seed."""
    photos = tmp_path / "p"
    write_photos(photos, n=40, captions=1)
    spec = f"folder:{photos},resolution=32,test_fraction=0.2"
    out, cache = tmp_path / "copy", tmp_path / "c"
    assert protect("--attack", "random", "--dataset", spec, "--seed", "3", "--out", str(out), "--cache", str(cache),
                   "--victim", "tiny-rn:batch_size=8") == 0
    assert main(["run", "--dataset", spec + ",publish=original", "--attacks", "random", "--surrogates",
                 "tiny-rn:batch_size=8", "--victims",
                 "tiny-rn:epochs=1,batch_size=8", "--seeds", "3", "--out", str(tmp_path / "run"), "--cache",
                 str(cache), "--threads", "1"]) == 0
    (published,) = list((cache / "published").glob("*/images.npy"))
    originals = registry.create("datasets", "folder", {"": str(photos), "resolution": 32,
                                                       "test_fraction": 0.2}).originals()[0]
    expected = np.stack([fit(Image.open(io.BytesIO((out / "train" / f"{r.name}.png").read_bytes())).convert("RGB"), 32)
                         for r in originals])
    assert np.array_equal(np.load(published), expected)
    cell = json.loads(next((tmp_path / "run" / "cells").glob("*.json")).read_text())
    assert cell["status"] == "ok" and cell["config"]["dataset"]["params"]["publish"] == "original"
    assert os.listdir(out / "train")
