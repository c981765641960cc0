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


def load(name, **params):
    return registry.create("datasets", name, {k: str(v) for k, v in params.items()}).load()


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
