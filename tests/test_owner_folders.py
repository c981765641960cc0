"""A data owner's real folders (issue 28), one test per row of its table: odd file names, image kinds
and sizes, caption line breaks, CSV line breaks, output folders in odd places, an impossible synthetic
size, and two ue-bench processes at once on one ``--out`` or ``--cache``. Every input is generated
here, a few small images each; the attack is ``random`` (no model)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageCms, features

import _cliproc
from ue_bench import registry
from ue_bench.cli import main
from ue_bench.datasets._imports import caption_lines
from ue_bench.engine.images import readable_extensions

ATTACK = ["--attack", "random:eps=8", "--threads", "1"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("UE_BENCH_CACHE", str(tmp_path / "envcache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()


def pixels(i: int, w: int = 40, h: int = 40) -> Image.Image:
    """A distinct smooth image per ``i``."""
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)


def photos(folder: Path, n: int = 8, **size) -> Path:
    """``n`` PNG photos ``p<i>.png`` with a one-line ``p<i>.txt`` each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels(i, **size).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(f"photo number {i}\n")
    return folder


def protect(data: str, out: Path, cache: Path, *extra: str) -> int:
    return main(["protect", *ATTACK, "--dataset", data, "--out", str(out), "--cache", str(cache), *extra])


def error_line(capsys) -> str:
    """The one ``ue-bench: error:`` line on stderr (and no traceback)."""
    err = capsys.readouterr().err
    errors = [e for e in err.splitlines() if e.startswith("ue-bench: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def nothing_written(tmp_path: Path, out: Path, cache: Path) -> None:
    """No copy, no partial folder, no lock and no decoded dataset or artifact left behind."""
    assert not out.exists(), list(out.iterdir())
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not (cache / "imports").exists() or not [p for p in (cache / "imports").rglob("*") if p.is_file()]
    assert not (cache / "protection").exists()


def folder_spec(folder: Path, resolution: int = 16) -> str:
    return f"folder:{folder},resolution={resolution}"


# --- row 1: file names that are not valid UTF-8 -------------------------------------------------------

def write_bytes_name(folder: Path, name: bytes, data: bytes) -> None:
    with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
        fh.write(data)


def png_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    pixels(i).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("stem, shown", [(b"caf\xe9", "caf\\xe9"), (b"\x83e\x83X\x83g", "\\x83e\\x83X\\x83g")],
                         ids=["latin-1", "shift-jis"])
def test_file_names_that_are_not_utf8_are_refused_before_any_work(tmp_path, capsys, stem, shown):
    folder = photos(tmp_path / "photos")
    write_bytes_name(folder, stem + b".png", png_bytes(99))
    write_bytes_name(folder, stem + b".txt", b"a cafe\n")
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect(folder_spec(folder), out, cache) == 2
    line = error_line(capsys)
    assert f"{shown}.png" in line and "not valid UTF-8" in line and "\\udc" not in line, line
    nothing_written(tmp_path, out, cache)


def test_a_non_utf8_member_name_in_a_webdataset_shard_is_refused(tmp_path, capsys):
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT, encoding="latin-1") as tar:
        for i, key in enumerate(["ok0", "ok1", "caf\xe9"]):
            for ext, data in (("png", png_bytes(i)), ("txt", f"photo {i}".encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect(f"webdataset:{shard},resolution=16", out, cache) == 2
    line = error_line(capsys)
    assert "caf\\xe9" in line and "not valid UTF-8" in line, line
    nothing_written(tmp_path, out, cache)


# --- row 2: image kinds: every one Pillow decodes is read, the rest named and counted -----------------

def test_every_image_kind_pillow_decodes_is_read_and_the_rest_are_named_and_counted(tmp_path, capsys):
    folder = photos(tmp_path / "photos", n=4)
    kinds = {"a.jfif": "JPEG", "b.jpe": "JPEG", "c.JPG": "JPEG", "d.qoi": "QOI", "e.TIF": "TIFF"}
    if features.check("avif"):
        kinds["f.avif"] = "AVIF"
    for i, (name, fmt) in enumerate(kinds.items()):
        pixels(10 + i).save(folder / name, format=fmt)
        (folder / name).with_suffix(".txt").write_text(f"a {fmt} photo\n")
    assert ".heic" not in readable_extensions(), "a HEIF plugin is installed: pick another unreadable kind"
    (folder / "g.HEIC").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (folder / "g.txt").write_text("an iPhone photo\n")
    (folder / "notes.md").write_text("shot in May\n")
    (folder / ".DS_Store").write_bytes(b"\0" * 8)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect(folder_spec(folder), out, cache) == 0
    err = capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_images"] == 4 + len(kinds)
    assert {p.name for p in (out / "train").glob("*.png")} >= {"a.png", "b.png", "c.png", "d.png", "e.png"}
    warning = next(line for line in err.splitlines() if "left out" in line)
    assert "2 file(s)" in warning and "g.HEIC" in warning and "notes.md" in warning and ".DS_Store" in warning
    read = manifest["input"]
    assert read["ignored_files"] == 2 and set(read["ignored_files_examples"]) == {"g.HEIC", "notes.md"}
    assert read["hidden_entries"] == 1 and read["unpaired_captions"] == 1  # g.txt: its image is not read


# --- row 3: degenerate sizes --------------------------------------------------------------------------

def test_images_too_small_for_the_view_are_refused_at_import_with_a_count(tmp_path, capsys):
    folder = photos(tmp_path / "photos", n=6)
    for name, (w, h) in {"thin": (1, 300), "flat": (300, 1), "dot": (1, 1), "ok": (8, 300)}.items():
        pixels(7, w, h).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(f"a {name} image\n")
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect(folder_spec(folder, 32), out, cache) == 2
    line = error_line(capsys)
    assert "3 of 10 train images are smaller than 8 px" in line, line
    assert all(f"{n}.png (" in line for n in ("thin", "flat", "dot")) and "ok.png" not in line
    nothing_written(tmp_path, out, cache)


# --- row 5: --out an empty mount point, or a symlink to an empty folder -------------------------------

def test_out_a_symlink_to_an_empty_folder_is_built_beside_its_target(tmp_path, capsys):
    folder = photos(tmp_path / "photos", n=4)
    target = tmp_path / "disk" / "target"
    target.mkdir(parents=True)
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "out"
    link.symlink_to(target)
    assert protect(folder_spec(folder), link, tmp_path / "cache") == 0
    assert link.is_symlink() and (target / "manifest.json").is_file() and len(list((target / "train").glob("*.png"))) == 4
    assert os.listdir(tmp_path / "links") == ["out"] and sorted(os.listdir(tmp_path / "disk")) == ["target"]


def test_out_an_empty_mount_point_is_refused_up_front(tmp_path):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs unshare -m (a private mount namespace) to mount a tmpfs")
    folder = photos(tmp_path / "photos", n=4)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount -t tmpfs none {mnt} && HOME={tmp_path / 'home'} {sys.executable} -m ue_bench.cli protect "
              f"{' '.join(ATTACK)} --dataset {folder_spec(folder)} --out {mnt} --cache {tmp_path / 'cache'}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("ue-bench: error: --out") and "mount point" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "cache" / "protection").exists()
    assert os.listdir(tmp_path) and not [p for p in os.listdir(tmp_path) if p.startswith(".mnt.")]


# --- row 6: caption sidecars split only at \n, \r\n, \r -----------------------------------------------

def test_caption_sidecars_split_only_at_line_breaks(tmp_path):
    folder = photos(tmp_path / "photos", n=4)
    odd = {"p0": "a dog\u2028on a beach", "p1": "a cat\x85asleep", "p2": "a page\x0cturned",
           "p3": "one\r\ntwo\rthree\nfour\u2029still four"}
    for stem, text in odd.items():
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8", newline="")
    expected = [caption_lines(odd[f"p{i}"]) for i in range(4)]
    assert [len(c) for c in expected] == [1, 1, 1, 4]
    data = registry.create("datasets", "folder", {"path": str(folder), "resolution": "16", "test_fraction": "0"}).load()
    assert data.train.captions == [[c.strip() for c in caps] for caps in expected]
    out = tmp_path / "out"
    assert protect(folder_spec(folder), out, tmp_path / "cache") == 0
    for i, caps in enumerate(data.train.captions):  # the published sidecars, read back as ue-bench reads them
        back = [c for c in caption_lines((out / "train" / f"p{i}.txt").read_text(encoding="utf-8")) if c]
        assert back == caps
    frame = pd.read_csv(out / "train.csv", sep="\t")  # open_clip's trainer reads the index so
    assert frame["title"].tolist() == [c for caps in data.train.captions for c in caps]


# --- row 7: --out inside the folder being protected ---------------------------------------------------

def test_a_copy_inside_the_input_folder_is_skipped_with_a_word(tmp_path, capsys):
    folder = photos(tmp_path / "photos", n=6)
    assert protect(folder_spec(folder), folder / "protected", tmp_path / "cache") == 0
    capsys.readouterr()
    data = registry.create("datasets", "folder", {"path": str(folder), "resolution": "16", "test_fraction": "0"}).load()
    err = capsys.readouterr().err
    assert len(data.train) == 6 and data.train.meta["ue_bench_output"] == 1
    assert "protected/ (its manifest.json)" in err and "not read as photos" in err
    assert main(["protect", *ATTACK, "--dataset", folder_spec(folder), "--out", str(tmp_path / "again"),
                 "--cache", str(tmp_path / "cache")]) == 0
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["n_images"] == 6


# --- row 8: CSV quoted captions holding line breaks (RFC 4180) ----------------------------------------

def test_csv_quoted_captions_with_line_breaks_are_read_and_a_swallowing_quote_is_still_refused(tmp_path, capsys):
    photos(tmp_path / "d", n=8)
    captions = [f"photo {i}" for i in range(8)]
    captions[2] = "a dog\non the beach, at dusk"
    captions[5] = 'two lines\r\nwith a "quote" and, a comma'
    frame = pd.DataFrame({"filepath": [f"p{i}.png" for i in range(8)], "title": captions})
    frame.to_csv(tmp_path / "d" / "excel.csv", index=False)  # pandas quotes the fields with line breaks
    data = registry.create("datasets", "csv", {"path": str(tmp_path / "d" / "excel.csv"), "resolution": "16",
                                               "test_fraction": "0"}).load()
    assert [c[0] for c in data.train.captions] == captions
    out = tmp_path / "out"
    assert protect(f"csv:{tmp_path / 'd' / 'excel.csv'},resolution=16", out, tmp_path / "cache") == 0
    published = pd.read_csv(out / "train.csv", sep=",")
    assert published["title"].tolist() == captions and published["filepath"].tolist() == [f"train/p{i}.png" for i in range(8)]
    capsys.readouterr()
    rows = [f"p{i}.png,photo {i}" for i in range(8)]
    rows[3] = 'p3.png,"photo 3 opens a quote'
    rows[6] = 'p6.png,photo 6 closes it"'
    (tmp_path / "d" / "stray.csv").write_text("filepath,title\n" + "\n".join(rows) + "\n")
    assert protect(f"csv:{tmp_path / 'd' / 'stray.csv'},resolution=16", tmp_path / "o2", tmp_path / "cache") == 2
    line = error_line(capsys)
    assert "stray.csv line 5: a quoted field opens here and runs over 4 lines (to line 8)" in line, line


# --- row 9: a synthetic test split larger than the attribute combinations -----------------------------

def test_synthetic_test_size_beyond_the_combinations_is_one_error_line(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect("synthetic:test_size=5000", out, cache) == 2
    line = error_line(capsys)
    assert "test_size=5000" in line and "4608" in line
    assert not out.exists() and not (cache / "protection").exists()


# --- row 4 (and deliverable 4): two ue-bench processes at once on one --out or --cache ------------------

def tree_hashes(root: Path, skip=("manifest.json",)) -> dict[str, str]:
    """sha256 of every file under ``root`` but those named in ``skip`` (timings, environment)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def together(argvs: list[list[str]], cwd: Path) -> list[_cliproc.Done]:
    """Start every command at once (forked from one server, within milliseconds), wait for all."""
    procs = [_cliproc.start(a, cwd, {}, cwd / f"log{i}") for i, a in enumerate(argvs)]
    return [_cliproc.finish(p, cwd / f"log{i}", 300) for i, p in enumerate(procs)]


def published(out: Path) -> tuple:
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest["published_sha256"], manifest["n_images"], tree_hashes(out)


@pytest.fixture
def owner_folder(tmp_path):
    return photos(tmp_path / "photos", n=12, w=48, h=36)


def protect_argv(folder: Path, out: Path, cache: Path) -> list[str]:
    return ["protect", *ATTACK, "--dataset", folder_spec(folder), "--out", str(out), "--cache", str(cache)]


def test_two_protects_on_one_out_and_cache_one_writes_the_sequential_copy_the_other_is_refused(owner_folder, tmp_path):
    reference = _cliproc.run(protect_argv(owner_folder, tmp_path / "ref", tmp_path / "refcache"), tmp_path, {},
                             tmp_path / "ref-log")
    assert reference.code == 0, reference.stderr[-2000:]
    out, cache = tmp_path / "out", tmp_path / "cache"
    done = together([protect_argv(owner_folder, out, cache)] * 2, tmp_path)
    codes = sorted(d.code for d in done)
    assert codes == [0, 2], [d.stderr[-1500:] for d in done]
    loser = next(d for d in done if d.code == 2)
    assert "Traceback" not in loser.stderr and loser.stderr.strip().splitlines()[-1].startswith("ue-bench: error: --out")
    assert published(out) == published(tmp_path / "ref")
    assert len((out / "files.jsonl").read_text().splitlines()) == 12
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []  # no partial, no lock left


def test_two_protects_sharing_a_cache_both_write_the_sequential_copy(owner_folder, tmp_path):
    reference = _cliproc.run(protect_argv(owner_folder, tmp_path / "ref", tmp_path / "refcache"), tmp_path, {},
                             tmp_path / "ref-log")
    assert reference.code == 0, reference.stderr[-2000:]
    cache = tmp_path / "cache"
    done = together([protect_argv(owner_folder, tmp_path / f"out{i}", cache) for i in range(2)], tmp_path)
    assert [d.code for d in done] == [0, 0], [d.stderr[-1500:] for d in done]
    assert published(tmp_path / "out0") == published(tmp_path / "out1") == published(tmp_path / "ref")
    assert len(list((cache / "protection").iterdir())) == 1 and len(list((cache / "imports").glob("[!.]*"))) == 1


RUN = ["run", "--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--attacks", "random",
       "--threads", "1"]


def cells(out: Path) -> dict[str, dict]:
    """Each cell's metrics and status (the parts of a cell that do not depend on timing)."""
    found = {}
    for p in sorted((out / "cells").glob("*.json")):
        cell = json.loads(p.read_text())
        found[p.name] = {"status": cell["status"], "metrics": cell.get("metrics")}
    return found


def test_two_runs_on_one_out_and_a_report_during_a_run(tmp_path):
    reference = _cliproc.run([*RUN, "--out", str(tmp_path / "ref"), "--cache", str(tmp_path / "refcache")], tmp_path,
                             {}, tmp_path / "ref-log")
    assert reference.code == 0, reference.stderr[-2000:]
    out, cache = tmp_path / "out", tmp_path / "cache"
    done = together([[*RUN, "--out", str(out), "--cache", str(cache)]] * 2, tmp_path)
    assert sorted(d.code for d in done) == [0, 2], [d.stderr[-1500:] for d in done]
    loser = next(d for d in done if d.code == 2)
    assert "Traceback" not in loser.stderr and "in use by another ue-bench process" in loser.stderr.splitlines()[-1]
    assert cells(out) == cells(tmp_path / "ref") and cells(out)
    # a report started while a run writes its folder is refused; once it is done, the report is the run's own
    again = _cliproc.start([*RUN, "--out", str(tmp_path / "out2"), "--cache", str(cache)], tmp_path, {}, tmp_path / "r2")
    assert _cliproc.wait_for(lambda: (tmp_path / ".out2.lock").exists(), again, 120)
    report = _cliproc.run(["report", str(tmp_path / "out2")], tmp_path, {}, tmp_path / "rep")
    first = _cliproc.finish(again, tmp_path / "r2", 300)
    assert first.code == 0, first.stderr[-1500:]
    assert report.code == 2 and "run directory" in report.stderr.splitlines()[-1], report.stderr[-1500:]
    assert cells(tmp_path / "out2") == cells(tmp_path / "ref")
    assert _cliproc.run(["report", str(tmp_path / "out2")], tmp_path, {}, tmp_path / "rep2").code == 0


# --- deliverable 2: the written index is read by open_clip's trainer (pandas) as written, or flagged ---

@pytest.mark.parametrize("size", ["--full-resolution", "--import-resolution"])
def test_captions_open_clips_pandas_reader_would_read_differently_are_flagged(tmp_path, capsys, size):
    folder = photos(tmp_path / "photos", n=6)
    odd = {"p1": "NA", "p3": "None", "p4": 'tab\there, "quotes", commas, and\ta line\u2028separator'}
    for stem, text in odd.items():
        (folder / f"{stem}.txt").write_text(text + "\n")
    out = tmp_path / "out"
    assert protect(folder_spec(folder), out, tmp_path / "cache", size) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trainer_misreads"] == 2, manifest.get("trainer_misreads_examples")
    assert all("is read as" in e and "'nan')" in e for e in manifest["trainer_misreads_examples"])
    assert "reads 2 row(s) differently" in capsys.readouterr().err
    frame = pd.read_csv(out / "train.csv", sep="\t")  # every other caption, the odd one too, reads as written
    assert frame["title"].tolist()[4] == odd["p4"]


# --- deliverable 2: what decoding changes (frames, bit depth, transparency, colour model) is counted ---

def test_what_the_copy_holds_differently_from_the_input_is_named_and_counted(tmp_path, capsys):
    folder = photos(tmp_path / "photos", n=4)
    frames = [pixels(20 + k) for k in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(np.linspace(0, 65535, 40 * 40).astype(np.uint16).reshape(40, 40)).save(folder / "deep.png")
    rgba = np.dstack([np.asarray(pixels(30)), np.full((40, 40), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "glass.png")
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not RGB data, as a CMYK profile
    pixels(31).convert("CMYK").save(folder / "print.jpg", icc_profile=lab)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels(32).save(folder / "p0.png", icc_profile=srgb)
    for stem in ("anim", "deep", "glass", "print"):
        (folder / f"{stem}.txt").write_text(f"the {stem} image\n")
    out = tmp_path / "out"
    assert protect(folder_spec(folder), out, tmp_path / "cache") == 0
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["converted"] == {"CMYK colours to RGB": 1, "16-bit samples to 8": 1, "first frame of several kept": 1,
                                    "transparency composited on white": 1, "ICC profile for Lab data dropped": 1}
    assert "icc_profile" not in Image.open(out / "train" / "print.png").info  # RGB pixels, no Lab profile
    kept = Image.open(out / "train" / "p0.png").info["icc_profile"]  # an RGB profile is kept, and opens
    assert kept == srgb and ImageCms.ImageCmsProfile(io.BytesIO(kept)).profile.xcolor_space == "RGB "
    rows = {r["name"]: r for r in map(json.loads, (out / "files.jsonl").read_text().splitlines())}
    assert [n for n, r in sorted(rows.items()) if "converted" in r] == ["anim", "deep", "glass", "print"]
    line = next(e for e in capsys.readouterr().err.splitlines() if "converted as a viewer shows them" in e)
    assert "1 CMYK colours to RGB" in line and "1 first frame of several kept" in line


# --- deliverable 3: a photo larger than a full-resolution copy lifts in 2 GB is refused up front --------

def test_a_photo_over_the_full_resolution_limit_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from ue_bench.publish import export_full
    folder = photos(tmp_path / "photos", n=4)
    pixels(40, 64, 50).save(folder / "huge.jpg")
    (folder / "huge.txt").write_text("a camera photo\n")
    monkeypatch.setattr(export_full, "MAX_FULL_PIXELS", 3000)  # 64 x 50 stands for a 48 MP photo
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert protect(folder_spec(folder), out, cache) == 2
    line = error_line(capsys)
    assert "1 of 5 images are larger than 0.003 MP" in line and "huge.jpg" in line and "64x50" in line, line
    nothing_written(tmp_path, out, cache)
    assert protect(folder_spec(folder), out, cache, "--import-resolution") == 0
