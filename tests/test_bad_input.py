"""Bad input, table-driven: every case runs ``ue-bench`` in a child process (see ``_cliproc``) and must
end with exit code 2, no traceback, ``ue-bench: error:`` naming the flag, parameter or file as the last
line of stderr, and the file system unchanged (data, out, cache, and HOME, which is a tmp folder)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import _cliproc

TINY = ["--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--threads", "1"]
NO_CUDA = not torch.cuda.is_available()


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _cell(**over) -> dict:
    labels = {"dataset": "d", "attack": "a", "surrogate": "s", "defense": "n", "victim": "v", "seed": 0,
              "poison_ratio": 1.0}
    return {"cell_id": "c1", "config": {}, "labels": labels, "status": "ok", "wall_s": 1.0, **over}


def make_inputs(root: Path) -> None:
    """Every bad (and good) data file the table refers to, under ``root/data``."""
    data = root / "data"
    data.mkdir()
    for i in range(8):
        (data / f"img{i}.png").write_bytes(_png(i))
    (data / "cut.jpg").write_bytes(_jpeg(99)[:300])
    rows = "".join(f"img{i}.png,photo {i}\n" for i in range(8))
    (data / "truncated_jpeg.csv").write_text("filepath,title\n" + rows + "cut.jpg,a cut photo\n")
    (data / "quote.csv").write_text("filepath,title\n" + rows + 'img0.png,"an open quote\n')
    (data / "eight.csv").write_text("filepath,title\n" + rows)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(8):
            for ext, payload in (("png", _png(i)), ("txt", f"caption {i}".encode())):
                info = tarfile.TarInfo(f"k{i}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    full = buf.getvalue()
    (data / "cut.tar").write_bytes(full[: int(len(full.rstrip(b"\0")) * 0.7)])
    (data / "karpathy.json").write_text('{"images": [{"filename": "img0.png",,}]}')
    bad_captions = {"nocap": {"img5.txt": None}, "emptycap": {"img3.txt": b"\n  \n"},
                    "latin1": {"img3.txt": "caf\xe9".encode("latin-1")}}
    for name, captions in bad_captions.items():
        folder = data / "folders" / name
        folder.mkdir(parents=True)
        for i in range(8):
            (folder / f"img{i}.png").write_bytes(_png(i))
            caption = captions.get(f"img{i}.txt", f"photo {i}".encode())
            if caption is not None:
                (folder / f"img{i}.txt").write_bytes(caption)
    (data / "folders" / "noimages").mkdir()
    (data / "folders" / "noimages" / "notes.txt").write_text("a caption file without an image")
    (data / "bad.toml").write_text('attacks = "none\n')
    (data / "init.pt").write_bytes(b"not a state dict")
    (data / "file").write_text("a file, not a folder")
    (data / "full").mkdir()
    (data / "full" / "x").write_text("taken")
    for name, content in {"empty": None, "list": "[]", "cut": '{"cell_id": "c1"',
                          "nometrics": json.dumps(_cell()), "labels": json.dumps(_cell(labels=5)),
                          "metricstr": json.dumps(_cell(metrics="high"))}.items():
        (root / "runs" / name / "cells").mkdir(parents=True)
        if content is not None:
            (root / "runs" / name / "cells" / "c1.json").write_text(content)


D = "{data}"
R = "{runs}"

# (id, argv, what the last line must name). {data}: the inputs folder; {runs}: the run folders.
CASES = [
    # --- flags of `run`
    ("device-unknown", ["run", *TINY, "--device", "tpu7"], "--device"),
    pytest.param("device-cuda-absent", ["run", *TINY, "--device", "cuda"], "--device",
                 marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")),
    pytest.param("device-cuda3-absent", ["run", *TINY, "--device", "cuda:3"], "--device",
                 marks=pytest.mark.skipif(torch.cuda.device_count() > 3, reason="this machine has cuda:3")),
    ("device-cpu-index", ["run", *TINY, "--device", "cpu:1"], "--device"),
    ("flag-of-another-command", ["run", *TINY, "--lift-steps", "80"], "error: unrecognized arguments: --lift-steps 80"),
    ("flag-without-value", ["run", *TINY, "--seeds"], "error: run: argument --seeds: expected one argument"),
    ("seed-huge", ["run", *TINY, "--seeds", "99999999999999999999"], "--seeds"),
    ("seed-negative", ["run", *TINY, "--seeds=0,-1"], "--seeds"),
    ("seed-text", ["run", *TINY, "--seeds", "0,x"], "--seeds"),
    ("threads-zero", ["run", *TINY, "--threads", "0"], "--threads"),
    ("ratio-zero", ["run", *TINY, "--attacks", "random", "--poison-ratio", "0"], "--poison-ratio"),
    ("ratio-no-image", ["run", *TINY, "--attacks", "random", "--poison-ratio", "0.01"], "--poison-ratio 0.01 protects 0"),
    ("ratio-over-one", ["run", *TINY, "--poison-ratio", "1.5"], "--poison-ratio"),
    ("executor", ["run", *TINY, "--executor", "dask"], "--executor"),
    ("unknown-flag", ["run", *TINY, "--bogus"], "--bogus"),
    ("unknown-attack", ["run", *TINY, "--attacks", "mme"], "unknown attack 'mme'"),
    ("param-bounds", ["run", *TINY, "--attacks", "mem:eps=99"], "eps"),
    ("param-type", ["run", *TINY, "--victims", "tiny-rn:lr=fast"], "lr"),
    ("victim-batch", ["run", *TINY, "--victims", "tiny-rn:batch_size=64"], "batch_size 64"),
    ("attack-batch", ["run", *TINY, "--attacks", "em:batch_size=64"], "--attacks em"),
    ("attack-batch-ratio", ["run", *TINY, "--attacks", "tap", "--poison-ratio", "0.25"], "--attacks tap"),
    ("surrogate-batch-ratio", ["run", *TINY, "--attacks", "em:batch_size=8", "--surrogates", "tiny-rn:batch_size=32",
                               "--poison-ratio", "0.5"], "--surrogates tiny-rn"),
    ("test-split-empty", ["run", *TINY, "--dataset", f"csv:{D}/eight.csv,test_fraction=0"], "holds 0 image(s)"),
    ("test-split-one", ["run", *TINY, "--dataset", f"csv:{D}/eight.csv,test_fraction=0.1"], "holds 1 image(s)"),
    ("vit-patch", ["run", *TINY, "--dataset", "synthetic:size=32,test_size=8,resolution=36", "--victims", "tiny-vit"],
     "--victims tiny-vit"),
    ("rn-too-small", ["run", *TINY, "--dataset", "synthetic:size=32,test_size=8,resolution=16"], "--victims tiny-rn"),
    ("dataset-param", ["run", *TINY, "--dataset", "synthetic:size=-3"], "size"),
    ("victim-init-missing", ["run", *TINY, "--victim-init", f"{D}/nothere.pt"], "--victim-init"),
    ("victim-init-garbage", ["run", *TINY, "--victim-init", f"{D}/init.pt"], "init.pt"),
    ("config-toml", ["run", "-c", f"{D}/bad.toml"], "bad.toml"),
    ("out-under-file", ["run", *TINY, "--out", f"{D}/file/run"], "--out"),
    ("cache-under-file", ["run", *TINY, "--cache", f"{D}/file/cache"], "--cache"),
    # --- data files
    ("csv-truncated-jpeg", ["run", *TINY, "--dataset", f"csv:{D}/truncated_jpeg.csv,test_fraction=0.25"], "cut.jpg"),
    ("csv-open-quote", ["run", *TINY, "--dataset", f"csv:{D}/quote.csv,test_fraction=0.25"], "quote.csv"),
    ("tar-truncated", ["run", *TINY, "--dataset", f"webdataset:{D}/cut.tar,test_fraction=0.25"], "cut.tar"),
    ("karpathy-json", ["run", *TINY, "--dataset", f"karpathy:{D}/karpathy.json"], "karpathy.json"),
    ("folder-missing-caption", ["run", *TINY, "--dataset", f"folder:path={D}/folders/nocap,test_fraction=0.25"],
     "img5.png: no caption file img5.txt"),
    ("folder-empty-caption", ["run", *TINY, "--dataset", f"folder:path={D}/folders/emptycap,test_fraction=0.25"],
     "img3.txt: empty caption file"),
    ("folder-caption-not-utf8", ["run", *TINY, "--dataset", f"folder:path={D}/folders/latin1,test_fraction=0.25"],
     "img3.txt line 1: byte 0xe9 is not valid UTF-8"),
    ("folder-no-images", ["run", *TINY, "--dataset", f"folder:path={D}/folders/noimages"], "has no images"),
    ("folder-not-a-folder", ["run", *TINY, "--dataset", f"folder:path={D}/quote.csv"], "is not a folder"),
    ("protect-folder-missing-caption", ["protect", "--attack", "random", "--dataset",
                                        f"folder:path={D}/folders/nocap,test_fraction=0"], "img5.txt"),
    # --- protect
    ("protect-seed-huge", ["protect", "--attack", "random", "--dataset", "synthetic:size=32,test_size=8",
                           "--seed", "99999999999"], "--seed"),
    ("protect-device", ["protect", "--attack", "random", "--device", "gpu"], "--device"),
    ("protect-surrogate-name", ["protect", "--attack", "random", "--surrogate", "tiny-vitt"],
     "error: --surrogate: unknown victim 'tiny-vitt'"),
    ("protect-attack-batch", ["protect", "--attack", "em:batch_size=64", "--dataset", "synthetic:size=32,test_size=8",
                              "--surrogate", "tiny-rn:batch_size=16"],
     "--attack em"),
    ("protect-lossy", ["protect", "--attack", "random", "--image-format", "jpg"], "--image-format"),
    ("protect-shard-size", ["protect", "--attack", "random", "--shard-size", "0"], "--shard-size"),
    ("protect-format", ["protect", "--attack", "random", "--format", "parquet"], "--format"),
    ("protect-tar-truncated", ["protect", "--attack", "random", "--dataset", f"webdataset:{D}/cut.tar,test_fraction=0"],
     "cut.tar"),
    ("protect-out-taken", ["protect", "--attack", "random", "--out", f"{D}/full"], "--out"),
    # --- report
    ("report-no-cells", ["report", f"{R}/empty"], "empty"),
    ("report-list-json", ["report", f"{R}/list"], "list/cells/c1.json"),
    ("report-cut-json", ["report", f"{R}/cut"], "cut/cells/c1.json"),
    ("report-ok-without-metrics", ["report", f"{R}/nometrics"], "nometrics/cells/c1.json"),
    ("report-labels-not-object", ["report", f"{R}/labels"], "labels/cells/c1.json"),
    ("report-metrics-not-object", ["report", f"{R}/metricstr"], "metricstr/cells/c1.json"),
    ("report-format", ["report", f"{R}/nometrics", "--format", "pdf"], "--format"),
    ("report-two-without-out", ["report", f"{R}/list", f"{R}/cut"], "c1.json"),
]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its size and mtime (folders too): any write shows."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    make_inputs(root)
    return root


def _case_id(case):
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("name, argv, needle", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(inputs, tmp_path, name, argv, needle):
    work = tmp_path / "work"
    (work / "home").mkdir(parents=True)
    argv = [a.replace(D, str(inputs / "data")).replace(R, str(inputs / "runs")) for a in argv]
    needle = needle.replace(D, str(inputs / "data"))
    if argv[0] in ("run", "protect") and "--out" not in argv:
        argv += ["--out", str(work / "out")]
    if argv[0] in ("run", "protect") and "--cache" not in argv:
        argv += ["--cache", str(work / "cache")]
    before = {"inputs": snapshot(inputs), "work": snapshot(work)}
    done = _cliproc.run(argv, cwd=work, env={"HOME": str(work / "home"), "UE_BENCH_CACHE": None},
                        log=tmp_path / "log", timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.code == 2, (done.code, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert lines and lines[-1].startswith("ue-bench: error:"), lines[-5:]
    if name.startswith("flag-"):  # argparse's own refusals: the one line, no usage block before it
        assert len(lines) == 1, lines
    assert needle in lines[-1], lines[-1]
    assert {"inputs": snapshot(inputs), "work": snapshot(work)} == before, "a refused command wrote something"
