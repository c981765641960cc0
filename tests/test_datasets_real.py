"""The real-data loaders (CSV, Karpathy JSON, webdataset shards) on fixtures generated here, offline."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from ue_bench import registry
from ue_bench.errors import UsageError
from ue_bench.datasets import _imports
from ue_bench.datasets._imports import decode
from ue_bench.datasets._example import write_tar


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UE_BENCH_CACHE", str(tmp_path / "cache"))


def stripes(w: int, h: int, seed: int = 0) -> Image.Image:
    """Three vertical bands (red | green | blue) plus a seed-dependent corner pixel, so images differ."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 3, 0] = 255
    a[:, w // 3: 2 * w // 3, 1] = 255
    a[:, 2 * w // 3:, 2] = 255
    a[0, 0] = (seed * 37) % 256
    return Image.fromarray(a)


def image_bytes(seed: int, fmt: str = "PNG", size=(30, 20)) -> bytes:
    buf = io.BytesIO()
    stripes(*size, seed=seed).save(buf, format=fmt)
    return buf.getvalue()


def write_images(folder, n, fmt="png"):
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img{i}.{fmt}"
        (folder / name).write_bytes(image_bytes(i, "JPEG" if fmt == "jpg" else "PNG", size=(30 + i, 20)))
        names.append(name)
    return names


def load(name, imports=None, **params):
    return registry.create("datasets", name, {k: str(v) for k, v in params.items()}).load(imports)


def test_decode_resizes_shorter_side_and_crops_the_centre():
    out = decode(image_bytes(0, size=(60, 20)), 12, "x")
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    # the 60x20 image becomes 36x12; the central 12 columns are the green band
    assert out[:, 2:10, 1].min() > 200 and out[:, 2:10, 0].max() < 60 and out[:, 2:10, 2].max() < 60


def test_csv_groups_captions_detects_separator_and_holds_out_images(tmp_path):
    write_images(tmp_path / "imgs", 6)
    rows = ["filepath,title"] + [f"imgs/img{i // 2}.png,\"photo {i // 2}, take {i % 2}\"" for i in range(12)]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    data = load("csv", path=tmp_path / "pairs.csv", test_fraction=0.34, resolution=16)
    assert len(data.train) == 4 and len(data.test) == 2
    assert isinstance(data.train.images, np.memmap) and data.train.images.shape == (4, 16, 16, 3)
    for caps in data.train.captions + data.test.captions:
        assert len(caps) == 2 and caps[0].endswith("take 0")  # the comma inside quotes is not a separator
    # the same held-out draw again, and from the cache: nothing decoded
    again = load("csv", path=tmp_path / "pairs.csv", test_fraction=0.34, resolution=16)
    assert again.train.captions == data.train.captions
    assert np.array_equal(again.train.images, data.train.images)


def test_csv_tab_separated_with_test_file_and_custom_columns(tmp_path, monkeypatch):
    write_images(tmp_path / "a", 3, "jpg")
    (tmp_path / "train.tsv").write_text("id\timage\tcaption\n" + "".join(f"{i}\ta/img{i}.jpg\tcap {i}\n" for i in range(2)))
    (tmp_path / "test.tsv").write_text("id\timage\tcaption\n2\ta/img2.jpg\tcap 2\n")
    data = load("csv", path=tmp_path / "train.tsv", test_path=tmp_path / "test.tsv", img_key="image",
                caption_key="caption", resolution=16)
    assert data.train.captions == [["cap 0"], ["cap 1"]] and data.test.captions == [["cap 2"]]
    monkeypatch.setattr(_imports, "decode", lambda *a: pytest.fail("cache miss"))
    load("csv", path=tmp_path / "train.tsv", test_path=tmp_path / "test.tsv", img_key="image",
         caption_key="caption", resolution=16)


@pytest.mark.parametrize("content, message", [
    ("path,title\nx.png,a\n", "no column 'filepath'|expected a header"),
    ("filepath,title\nimg0.png,a\nimg1.png\n", "line 3: expected 2 fields"),
    ("filepath,title\nimg0.png,a\nmissing.png,b\n", "line 3 (missing.png): image file"),
    ("filepath,title\nimg0.png,\n", "line 2: expected a non-empty"),
])
def test_csv_bad_input_names_file_and_line(tmp_path, content, message):
    write_images(tmp_path, 1)
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(UsageError) as err:
        load("csv", path=tmp_path / "bad.csv", test_fraction=0, resolution=16)
    text = str(err.value)
    assert "bad.csv" in text and any(m in text for m in message.split("|"))


def test_csv_undecodable_image_names_the_row(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    (tmp_path / "p.csv").write_text("filepath,title\nx.png,hello\n")
    with pytest.raises(UsageError, match=r"p.csv line 2 \(x.png\): cannot decode"):
        load("csv", path=tmp_path / "p.csv", test_fraction=0, resolution=16)
    assert not list((tmp_path / "cache" / "imports").iterdir())  # no half-built cache left


def karpathy_fixture(tmp_path, coco: bool):
    splits = ["train", "train", "restval", "val", "test", "test"]
    images = []
    for i, split in enumerate(splits):
        sub = ("train2014" if split == "train" else "val2014") if coco else ""
        (tmp_path / "imgs" / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / sub / f"im{i}.jpg").write_bytes(image_bytes(i, "JPEG"))
        entry = {"filename": f"im{i}.jpg", "split": split, "imgid": i,
                 "sentences": [{"raw": f" caption {k} of {i} ", "tokens": []} for k in range(6 if i == 0 else 5)]}
        if coco:
            entry["filepath"] = sub
        images.append(entry)
    path = tmp_path / ("dataset_coco.json" if coco else "dataset_flickr8k.json")
    path.write_text(json.dumps({"images": images, "dataset": "coco" if coco else "flickr8k"}))
    return path


@pytest.mark.parametrize("coco", [False, True])
def test_karpathy_splits_and_five_captions(tmp_path, coco):
    path = karpathy_fixture(tmp_path, coco)
    data = load("karpathy", path=path, image_root=tmp_path / "imgs", resolution=16)
    assert len(data.train) == 2 and len(data.test) == 2
    assert all(len(c) == 5 for c in data.train.captions + data.test.captions)
    assert data.train.captions[0][0] == "caption 0 of 0" and data.test.captions[0][0] == "caption 0 of 4"
    both = load("karpathy", path=path, image_root=tmp_path / "imgs", train_splits="train+restval",
                test_split="val", resolution=16)
    assert len(both.train) == 3 and len(both.test) == 1


def test_karpathy_missing_image_is_a_usage_error(tmp_path):
    path = karpathy_fixture(tmp_path, coco=False)
    with pytest.raises(UsageError, match=r"images\[0\] \(im0.jpg\): image file .* does not exist"):
        load("karpathy", path=path, image_root=tmp_path / "elsewhere", resolution=16)




def test_webdataset_reads_shards_and_merges_duplicate_image_runs(tmp_path):
    (tmp_path / "shards").mkdir()
    write_tar(tmp_path / "shards" / "000000.tar", [
        ("a_0", {"jpg": image_bytes(0, "JPEG"), "txt": b"first of a"}),
        ("a_1", {"jpg": image_bytes(0, "JPEG"), "txt": b"second of a"}),
        ("b", {"png": image_bytes(1), "txt": b"only b", "json": b"{}"}),
    ])
    write_tar(tmp_path / "shards" / "000001.tar", [(f"sub/c{i}", {"png": image_bytes(2 + i), "txt": b"c"}) for i in range(3)])
    data = load("webdataset", path=tmp_path / "shards", test_fraction=0, resolution=16)
    assert data.train.captions == [["first of a", "second of a"], ["only b"], ["c"], ["c"], ["c"]]
    assert data.train.images.shape == (5, 16, 16, 3) and len(data.test) == 0
    split = load("webdataset", path=tmp_path / "shards", test_fraction=0.4, resolution=16)
    assert (len(split.train), len(split.test)) == (3, 2)


def test_webdataset_sample_without_caption_is_refused(tmp_path):
    write_tar(tmp_path / "s.tar", [("k", {"jpg": image_bytes(0, "JPEG")})])
    with pytest.raises(UsageError, match=r"s.tar sample 'k': expected an image .* and a txt caption"):
        load("webdataset", path=tmp_path / "s.tar", test_fraction=0, resolution=16)


def test_webdataset_compressed_shard_is_refused(tmp_path):
    with tarfile.open(tmp_path / "s.tar", "w:gz") as tar:
        info = tarfile.TarInfo("k.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UsageError, match="not an uncompressed tar"):
        load("webdataset", path=tmp_path / "s.tar", resolution=16)


def write_folder(root, files):
    """``files``: {relative path: bytes or text}; folders are created as needed."""
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            (root / rel).write_text(content, encoding="utf-8")
        else:
            (root / rel).write_bytes(content)
    return root


def test_folder_reads_sidecar_captions_recursively_in_sorted_order(tmp_path):
    root = write_folder(tmp_path / "photos", {
        "b.png": image_bytes(0), "b.txt": "only caption\n",
        "a-b/c.PNG": image_bytes(1), "a-b/c.txt": "c caption",
        "a/z.jpg": image_bytes(2, "JPEG"), "a/z.txt": "\ufeff first \n\n second\nthird\r\n  \nfourth\nfifth\n",
        "orphan.txt": "no image", "notes.md": "ignored",
        ".hidden/x.png": image_bytes(3), ".y.png": image_bytes(4),
    })
    data = load("folder", path=root, test_fraction=0, resolution=16)
    assert data.train.captions == [["first", "second", "third", "fourth", "fifth"], ["c caption"], ["only caption"]]
    expected = [decode(image_bytes(2, "JPEG"), 16, "z"), decode(image_bytes(1), 16, "c"), decode(image_bytes(0), 16, "b")]
    assert np.array_equal(data.train.images, np.stack(expected))
    assert data.train.meta["format"] == "folder" and data.train.meta["unpaired_captions"] == 1
    assert len(data.test) == 0


def test_folder_on_missing_caption_skip_counts_the_dropped_images(tmp_path, capsys):
    root = write_folder(tmp_path / "f", {**{f"img{i}.png": image_bytes(i) for i in range(4)},
                                         "img0.txt": "zero", "img2.txt": "two"})
    with pytest.raises(UsageError, match=r"img1.png: no caption file img1.txt beside it"):
        load("folder", path=root, test_fraction=0, resolution=16)
    data = load("folder", path=root, test_fraction=0, resolution=16, on_missing_caption="skip")
    assert data.train.captions == [["zero"], ["two"]]
    assert data.train.meta["skipped_images"] == 2 and data.train.meta["skipped_examples"] == ["img1.png: no img1.txt",
                                                                                             "img3.png: no img3.txt"]
    assert "skipped 2 image(s) without a caption file (on_missing_caption=skip)" in capsys.readouterr().err


@pytest.mark.parametrize("files, message", [
    ({"a.png": image_bytes(0), "a.txt": " \n\n"}, r"a.txt: empty caption file"),
    ({"a.png": image_bytes(0), "a.txt": b"caf\xe9\n"}, r"a.txt line 1: byte 0xe9 is not valid UTF-8"),
    ({"a.txt": "a caption", "b.jpeg.txt": "x"}, r"has no images in it or its subfolders"),
])
def test_folder_bad_input_names_the_file(tmp_path, files, message):
    root = write_folder(tmp_path / "f", files)
    with pytest.raises(UsageError, match=message):
        load("folder", path=root, test_fraction=0, resolution=16)


def originals_fixture(kind, tmp_path):
    """Parameters of a ``kind`` dataset with a non-empty train and test split, of mixed image formats."""
    imgs = {f"sub{i % 2}/img{i}.{'jpg' if i % 3 else 'png'}": image_bytes(i, "JPEG" if i % 3 else "PNG", (30 + i, 20))
            for i in range(9)}
    if kind == "csv":
        write_folder(tmp_path, imgs)
        rows = [f"{name},caption {k} of {name}" for k in range(2) for name in imgs]
        (tmp_path / "pairs.csv").write_text("filepath,title\n" + "\n".join(rows) + "\n")
        return {"path": tmp_path / "pairs.csv", "test_fraction": 0.34}
    if kind == "karpathy":
        return {"path": karpathy_fixture(tmp_path, coco=True), "image_root": tmp_path / "imgs"}
    if kind == "webdataset":
        write_tar(tmp_path / "s.tar", [(name.rsplit(".", 1)[0], {name.rsplit(".", 1)[1]: data, "txt": name.encode()})
                                       for name, data in imgs.items()])
        return {"path": tmp_path / "s.tar", "test_fraction": 0.34}
    write_folder(tmp_path / "f", {**imgs, **{name.rsplit(".", 1)[0] + ".txt": f"{name}\nsecond" for name in imgs}})
    return {"path": tmp_path / "f", "test_fraction": 0.34}


@pytest.mark.parametrize("kind", ["csv", "karpathy", "webdataset", "folder"])
def test_originals_are_load_order_with_unique_mirrored_names(tmp_path, kind):
    params = {k: str(v) for k, v in {**originals_fixture(kind, tmp_path), "resolution": 16}.items()}
    dataset = registry.create("datasets", kind, params)
    data, (train, test) = dataset.load(), dataset.originals()
    for split, records in ((data.train, train), (data.test, test)):
        assert len(records) == len(split) > 0
        assert [list(r.captions) for r in records] == split.captions
        assert np.array_equal(np.stack([decode(r.read(), 16, r.where) for r in records]), split.images)
        assert len({r.name for r in records}) == len(records)
        assert all("." not in r.name and not r.name.startswith("/") for r in records)
    names = {r.name for r in train + test}
    expected = {"csv": "sub1/img1", "karpathy": "train2014/im0", "webdataset": "sub1/img1", "folder": "sub1/img1"}
    assert expected[kind] in names


def test_synthetic_has_no_originals():
    assert registry.create("datasets", "synthetic", {"size": "16", "test_size": "8"}).originals() is None


def test_names_keep_the_extension_only_where_dropping_it_collides(tmp_path):
    root = write_folder(tmp_path / "f", {"a.jpg": image_bytes(0, "JPEG"), "a.png": image_bytes(1), "a.txt": "shared",
                                         "b/c.png": image_bytes(2), "b/c.txt": "c"})
    train, _ = registry.create("datasets", "folder", {"path": str(root), "test_fraction": "0"}).originals()
    assert [r.name for r in train] == ["a.jpg", "a.png", "b/c"] and train[0].captions == train[1].captions == ("shared",)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "d.png").write_bytes(image_bytes(3))
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "pairs.csv").write_text(
        f"filepath,title\n../f/a.jpg,x\n./../f/b/c.png,y\n{tmp_path / 'out' / 'd.png'},z\n../f/a.png,w\n")
    train, _ = registry.create("datasets", "csv", {"path": str(tmp_path / "csv" / "pairs.csv"),
                                                   "test_fraction": "0"}).originals()
    assert [r.name for r in train] == ["a.jpg", "c", "d", "a.png"]  # outside the CSV's folder: base names
    same = [_imports.Record("x", tmp_path, ("c",), name=n) for n in ("k.png", "k.png", "k.jpg", "k.png-2.png")]
    assert [r.name for r in _imports.unique_names(same)] == ["k.png", "k.png-2", "k.jpg", "k.png-2-2"]


def _many_images_csv(tmp_path, n):
    names = write_images(tmp_path / "img", n)
    (tmp_path / "p.csv").write_text("filepath,title\n" + "".join(f"img/{m},picture {i}\n" for i, m in enumerate(names)))
    return tmp_path / "p.csv"


def test_an_import_decoded_by_worker_processes_is_the_one_decoded_here(tmp_path):
    from ue_bench.store.artifacts import ArtifactStore

    path = _many_images_csv(tmp_path, _imports.POOL_FROM + 6)
    got = {}
    for workers in (1, 2):
        imports = ArtifactStore(tmp_path / f"cache{workers}").imports(workers=workers)
        data = load("csv", imports, path=path, test_fraction=0, resolution=16)
        manifest = json.loads(next((tmp_path / f"cache{workers}" / "imports").glob("*/manifest.json")).read_text())
        got[workers] = (data.train.fingerprint(), manifest["content_hashes"])
    assert got[1] == got[2] and len(got[2][1]["train"]) == _imports.POOL_FROM + 6


def test_a_worker_process_that_cannot_decode_names_the_row(tmp_path):
    from ue_bench.store.imports import ImportStage

    path = _many_images_csv(tmp_path, _imports.POOL_FROM + 6)
    (tmp_path / "img" / "img40.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match=r"p.csv line 42 \(img/img40.png\): cannot decode"):
        load("csv", ImportStage(tmp_path / "cache" / "imports", workers=2), path=path, test_fraction=0, resolution=16)
    assert not list((tmp_path / "cache" / "imports").iterdir())  # no half-built cache left
