"""Data integrity of the real-data inputs: images decoded as a viewer shows them, text read strictly,
no test/train leakage, and an import cache that lives under --cache, is verified, and is not written
by a run that only checks its input. Every fixture is generated here, a few tiny images each."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ue_bench import registry
from ue_bench.cli import main
from ue_bench.engine.images import decode_rgb_array
from ue_bench.datasets import _imports
from ue_bench.errors import UsageError
from ue_bench.datasets._example import write_tar


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("UE_BENCH_CACHE", str(tmp_path / "envcache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()


def protect(*argv: str) -> int:
    """``ue-bench protect`` as the command line runs it (a UsageError: one line on stderr, exit 2)."""
    return main(["protect", *argv])


def load(name, imports=None, **params):
    return registry.create("datasets", name, {k: str(v) for k, v in params.items()}).load(imports)


def solid(i: int, size=(24, 24)) -> np.ndarray:
    """A distinct image per ``i``."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def write_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(solid(i)).save(folder / f"img{i}.png")
    return [f"img{i}.png" for i in range(n)]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [e for e in err if e.startswith("ue-bench: error:")]
    assert len(errors) == 1, err
    return errors[0]


# --- row 1 of the report: an unclosed quote swallowed rows in silence --------------------------------

def quote_tsv(tmp_path: Path, closed_later: bool) -> Path:
    names = write_images(tmp_path, 20)
    rows = [f"{n}\tphoto {i}" for i, n in enumerate(names)]
    rows[5] = f'{names[5]}\t"photo 5 opens a quote'  # data row 6, line 7 of the file
    if closed_later:
        rows[8] = f'{names[8]}\tphoto 8 closes it"'  # the old reader made rows 7-9 part of row 6's caption
    (tmp_path / "train.tsv").write_text("filepath\ttitle\n" + "\n".join(rows) + "\n")
    return tmp_path / "train.tsv"


@pytest.mark.parametrize("closed_later, message", [
    (True, "line 7: a quoted field opens here and runs over 4 lines (to line 10)"),
    (False, "line 7: a quoted field opens on this line and is never closed"),
])
def test_unclosed_quote_is_refused_naming_the_row(tmp_path, capsys, closed_later, message):
    path = quote_tsv(tmp_path, closed_later)
    code = protect("--attack", "random", "--dataset", f"csv:{path},test_fraction=0,resolution=16",
                   "--out", str(tmp_path / "out"))
    line = one_error_line(capsys)
    assert code == 2 and "train.tsv" in line and message in line and "quotes=none" in line
    assert not (tmp_path / "out").exists()


def test_quotes_none_reads_every_row_as_written(tmp_path):
    path = quote_tsv(tmp_path, closed_later=True)
    data = load("csv", path=path, quotes="none", test_fraction=0, resolution=16)
    assert len(data.train) == 20
    assert data.train.captions[5] == ['"photo 5 opens a quote'] and data.train.captions[8] == ['photo 8 closes it"']


# --- row 2: a 16-bit greyscale PNG came out 96.9 % white -----------------------------------------------

def test_sixteen_bit_png_is_imported_as_a_ramp(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    (tmp_path / "p.csv").write_text("filepath,title\ndeep.png,a ramp\n")
    img = np.asarray(load("csv", path=tmp_path / "p.csv", test_fraction=0, resolution=32).train.images[0])
    expected = (ramp // 257).astype(np.uint8)
    assert np.array_equal(img[..., 0], expected) and np.array_equal(img[..., 2], expected)
    assert (img == 255).mean() < 0.01


# --- row 3: an EXIF-rotated JPEG was imported and exported sideways ------------------------------------

def test_exif_orientation_is_applied_in_training_and_in_the_protected_copy(tmp_path):
    stored = np.zeros((32, 48, 3), dtype=np.uint8)  # sensor order: red | green over blue | white
    stored[:16, :24], stored[:16, 24:], stored[16:, :24], stored[16:, 24:] = (255, 0, 0), (0, 255, 0), (0, 0, 255), 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    for i in range(8):
        Image.fromarray(stored).save(tmp_path / f"{i}.jpg", exif=exif.tobytes(), quality=95)
    (tmp_path / "p.csv").write_text("filepath,title\n" + "".join(f"{i}.jpg,photo {i}\n" for i in range(8)))
    upright = np.rot90(stored, -1)[8:40].astype(np.int16)  # 32 wide, 48 high; the central 32 rows
    train = load("csv", path=tmp_path / "p.csv", test_fraction=0, resolution=32).train
    assert np.abs(np.asarray(train.images[0], dtype=np.int16) - upright).mean() < 6
    spec = f"csv:{tmp_path / 'p.csv'},test_fraction=0,resolution=32"
    assert protect("--attack", "random:eps=4", "--dataset", spec, "--out", str(tmp_path / "out"),
                   "--import-resolution") == 0
    copy = np.asarray(Image.open(tmp_path / "out" / "images" / "00000000.png"), dtype=np.int16)
    assert np.abs(copy - upright).mean() < 8
    assert np.abs(copy - np.asarray(train.images[0], dtype=np.int16)).max() <= 4
    assert protect("--attack", "random:eps=4", "--dataset", spec, "--out", str(tmp_path / "full")) == 0
    full = np.asarray(Image.open(tmp_path / "full" / "train" / "0.png"), dtype=np.int16)  # the whole photo, upright
    assert full.shape == (48, 32, 3) and np.abs(full - np.rot90(stored, -1)).mean() < 8
    assert np.abs(full - decode_rgb_array(tmp_path / "0.jpg")).max() <= 4


# --- row 4: a test split sharing images with the train split was accepted in silence -------------------

def leaky(tmp_path: Path) -> str:
    write_images(tmp_path / "a", 8)
    (tmp_path / "a" / "copy.png").write_bytes((tmp_path / "a" / "img4.png").read_bytes())
    (tmp_path / "train.tsv").write_text("filepath\ttitle\n" + "".join(f"a/img{i}.png\tt {i}\n" for i in range(6)))
    test_rows = ["a/img0.png", "./a/img1.png", "a/../a/img2.png", "a/copy.png", "a/img7.png"]
    (tmp_path / "test.tsv").write_text("filepath\ttitle\n" + "".join(f"{r}\ttest {i}\n" for i, r in enumerate(test_rows)))
    return f"csv:{tmp_path / 'train.tsv'},test_path={tmp_path / 'test.tsv'},resolution=16"


def test_test_split_sharing_train_images_is_refused(tmp_path, capsys):
    code = protect("--attack", "random", "--dataset", leaky(tmp_path), "--out", str(tmp_path / "out"))
    line = one_error_line(capsys)
    assert code == 2
    assert "4 test image(s) are also in the train split (3 the same file, 1 a copy with the same decoded pixels)" in line
    assert "test.tsv line 2 (a/img0.png) = " in line and "train.tsv line 2 (a/img0.png)" in line
    assert "allow_test_overlap=true" in line
    assert not (tmp_path / "out").exists()


def test_allow_test_overlap_keeps_them_and_reports_the_count(tmp_path, capsys):
    spec = leaky(tmp_path) + ",allow_test_overlap=true"
    data = registry.create_many("datasets", spec, "--dataset")[0].load()
    assert len(data.test) == 5
    assert data.test.meta["test_overlap"] == {"test_overlap_images": 4, "test_overlap_same_file": 3}
    assert "4 test image(s) are also in the train split" in capsys.readouterr().err


def test_karpathy_and_webdataset_refuse_overlap_too(tmp_path):
    write_images(tmp_path, 3)
    entries = [{"filename": f"img{i}.png", "split": s, "sentences": [{"raw": f"c {i}"}]}
               for i, s in [(0, "train"), (1, "train"), (0, "test"), (2, "test")]]
    (tmp_path / "k.json").write_text(json.dumps({"images": entries}))
    with pytest.raises(UsageError, match=r"1 test image\(s\) are also in the train split \(1 the same file\)"):
        load("karpathy", path=tmp_path / "k.json", resolution=16)
    assert len(load("karpathy", path=tmp_path / "k.json", resolution=16, allow_test_overlap="true").test) == 2
    png = (tmp_path / "img0.png").read_bytes()
    write_tar(tmp_path / "train.tar", [("a", {"png": png, "txt": b"a"}), ("b", {"png": (tmp_path / "img1.png").read_bytes(), "txt": b"b"})])
    write_tar(tmp_path / "test.tar", [("c", {"png": png, "txt": b"same pixels, other shard"})])
    with pytest.raises(UsageError, match=r"test.tar sample 'c' = .*train.tar sample 'a'"):
        load("webdataset", path=tmp_path / "train.tar", test_path=tmp_path / "test.tar", resolution=16)


# --- row 5: --cache was ignored by the import cache; dry runs and refused runs wrote it ----------------

def snapshot(*folders: Path) -> dict[str, int]:
    out = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                out[str(p)] = p.stat().st_size if p.is_file() else -1
    return out


def small_csv(tmp_path: Path, n: int = 12) -> Path:
    write_images(tmp_path / "data", n)
    (tmp_path / "data" / "p.csv").write_text("filepath,title\n" + "".join(f"img{i}.png,photo {i}\n" for i in range(n)))
    return tmp_path / "data" / "p.csv"


def test_protect_caches_its_import_under_cache_only(tmp_path):
    path = small_csv(tmp_path)
    assert protect("--attack", "random", "--dataset", f"csv:{path},test_fraction=0,resolution=16",
                   "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")) == 0
    assert len([p for p in (tmp_path / "c" / "imports").iterdir() if not p.name.startswith(".")]) == 1
    assert not (tmp_path / "envcache").exists() and snapshot(tmp_path / "home") == {}


@pytest.mark.parametrize("victim, extra, code", [("tiny-rn:epochs=1,batch_size=8", ["--dry-run"], 0),
                                                 ("tiny-rn:epochs=1,batch_size=64", [], 2)])
def test_dry_run_and_refused_run_write_no_decoded_dataset(tmp_path, capsys, monkeypatch, victim, extra, code):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))  # matplotlib's own font cache is not ours
    path = small_csv(tmp_path)
    (tmp_path / "c").mkdir()
    before = snapshot(tmp_path / "c", tmp_path / "home", tmp_path / "data")
    argv = ["run", "--dataset", f"csv:{path},test_fraction=0.25,resolution=32", "--victims", victim,
            "--surrogates", "tiny-rn:batch_size=8",
            "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c"), "--threads", "1", *extra]
    assert main(argv) == code, capsys.readouterr().err
    assert snapshot(tmp_path / "c", tmp_path / "home", tmp_path / "data") == before
    assert not (tmp_path / "envcache").exists() and not (tmp_path / "run").exists()


def test_a_staged_import_is_kept_once_the_command_is_accepted(tmp_path):
    from ue_bench.store.artifacts import ArtifactStore
    path = small_csv(tmp_path)
    with ArtifactStore(tmp_path / "c").imports(staged=True) as stage:
        data = load("csv", stage, path=path, test_fraction=0, resolution=16)
        assert not [p for p in (tmp_path / "c" / "imports").iterdir() if not p.name.startswith(".")]
        stage.commit()
    folder = Path(data.train.meta["import_dir"])
    assert folder.parent == tmp_path / "c" / "imports" and (folder / "manifest.json").exists()
    assert np.array_equal(np.asarray(data.train.images), np.asarray(load("csv", path=path, test_fraction=0,
                                                                          resolution=16).train.images))


def test_a_staged_import_not_committed_leaves_nothing(tmp_path):
    from ue_bench.store.artifacts import ArtifactStore
    path = small_csv(tmp_path)
    with ArtifactStore(tmp_path / "c").imports(staged=True) as stage:
        data = load("csv", stage, path=path, test_fraction=0, resolution=16)
        assert Path(data.train.meta["import_dir"]).is_dir()  # readable while the command checks its input
    assert not (tmp_path / "c").exists()  # discarded with the folders it created


def test_import_cache_with_flipped_bytes_is_rebuilt_not_used(tmp_path, monkeypatch, capsys):
    path = small_csv(tmp_path)
    first = load("csv", path=path, test_fraction=0, resolution=16)
    original = np.array(first.train.images)
    u8 = Path(first.train.meta["import_dir"]) / "train.u8"
    del first
    raw = bytearray(u8.read_bytes())
    raw[100] ^= 0xFF
    u8.write_bytes(bytes(raw))
    decoded = []
    real = _imports.decode
    monkeypatch.setattr(_imports, "decode", lambda *a: decoded.append(1) or real(*a))
    again = load("csv", path=path, test_fraction=0, resolution=16)
    assert len(decoded) == 12 and np.array_equal(np.asarray(again.train.images), original)
    assert "failed verification" in capsys.readouterr().err
    decoded.clear()
    load("csv", path=path, test_fraction=0, resolution=16)  # the rebuilt cache verifies: nothing decoded
    assert decoded == []


# --- text inputs read strictly -------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"filepath,title\nimg0.png,ok\nimg1.png,caf\xe9\n", r"p.csv line 3: byte 0xe9 at column 13 is not valid utf-8"),
    (b"filepath,title\nimg0.png,ok\nimg1.png,a,b\n", r"p.csv line 3: expected 2 fields"),
    (b"filepath,title\nimg0.png,ok\nimg1.png,  \n", r"p.csv line 3: expected a non-empty 'filepath' and 'title'"),
    (b'filepath,title\nimg0.png,"a photo" of it\n', r"p.csv line 2: unreadable row"),
])
def test_csv_text_errors_name_the_line(tmp_path, content, message):
    write_images(tmp_path, 2)
    (tmp_path / "p.csv").write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load("csv", path=tmp_path / "p.csv", test_fraction=0, resolution=16)


def test_csv_encoding_parameter_reads_a_cp1252_file(tmp_path):
    write_images(tmp_path, 1)
    (tmp_path / "p.csv").write_bytes("filepath,title\nimg0.png,café\n".encode("cp1252"))
    assert load("csv", path=tmp_path / "p.csv", encoding="cp1252", test_fraction=0, resolution=16).train.captions == [["café"]]


def test_on_bad_rows_skip_counts_and_reports_what_it_dropped(tmp_path, capsys):
    write_images(tmp_path, 4)
    (tmp_path / "p.csv").write_text("filepath,title\nimg0.png,a\nimg1.png\nimg2.png,\nimg3.png,d\n")
    data = load("csv", path=tmp_path / "p.csv", on_bad_rows="skip", test_fraction=0, resolution=16)
    assert data.train.captions == [["a"], ["d"]]
    assert data.train.meta["skipped_rows"] == 2 and data.train.meta["skipped_examples"][0].startswith("line 3:")
    assert "skipped 2 bad row(s) (on_bad_rows=skip): line 3:" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ('{"images": [{"filename": "a.png", "split": "train",\n "sentences": [}]}', r"k.json line 2 column 16: not valid JSON"),
    ('{"images": [{"filename": "img0.png", "sentences": [{"raw": "x"}]}]}', r"k.json images\[0\]: no key 'split'"),
    ('{"imgs": []}', r"k.json: not a Karpathy split file: expected a JSON object with an 'images' list"),
])
def test_karpathy_errors_name_the_file_and_place(tmp_path, text, message):
    (tmp_path / "k.json").write_text(text)
    with pytest.raises(UsageError, match=message):
        load("karpathy", path=tmp_path / "k.json", resolution=16)




def png_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(solid(i)).save(buf, format="PNG")
    return buf.getvalue()


def test_webdataset_caption_that_is_not_utf8_is_refused(tmp_path):
    write_tar(tmp_path / "s.tar", [("k0", {"png": png_bytes(0), "txt": b"fine"}),
                                     ("k1", {"png": png_bytes(1), "txt": b"caf\xe9"})])
    with pytest.raises(UsageError, match=r"s.tar sample 'k1': the txt caption is not UTF-8"):
        load("webdataset", path=tmp_path / "s.tar", test_fraction=0, resolution=16)


def test_webdataset_caption_without_image_is_refused(tmp_path):
    write_tar(tmp_path / "s.tar", [("k0", {"png": png_bytes(0), "txt": b"fine"}), ("k1", {"txt": b"alone"})])
    with pytest.raises(UsageError, match=r"s.tar sample 'k1': .*\(no image\)"):
        load("webdataset", path=tmp_path / "s.tar", test_fraction=0, resolution=16)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_shard_is_refused(tmp_path, keep):
    write_tar(tmp_path / "full.tar", [(f"k{i}", {"png": png_bytes(i), "txt": f"c {i}".encode()}) for i in range(6)])
    data = (tmp_path / "full.tar").read_bytes()
    end = len(data.rstrip(b"\0"))  # where the last member's data ends, before the end-of-archive blocks
    (tmp_path / "s.tar").write_bytes(data[: int(end * keep)])
    with pytest.raises(UsageError, match=r"s.tar: the tar is truncated"):
        load("webdataset", path=tmp_path / "s.tar", test_fraction=0, resolution=16)


# --- captions longer than the text tower's context ------------------------------------------------------

def test_truncated_captions_are_counted(capsys):
    from ue_bench.engine.training import tokenize_captions
    tokenizer = registry.create("victims", "tiny-rn").tokenizer()
    long = " ".join(["word"] * 40)  # 40 tokens + start + end > 32
    exact = " ".join(["word"] * 30)  # exactly 32 with start and end: fits
    tokens, _, _ = tokenize_captions(tokenizer, [[long, "short"], [exact], [long + " more"]], "test-split")
    assert tokens.shape == (4, 32)
    assert ("ue-bench: 2 of 4 captions are longer than the 32-token context of the text tower (test-split) "
            "and are truncated") in capsys.readouterr().err
