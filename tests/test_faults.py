"""Faults: SIGKILL at several points of run/protect/report, corrupted cached artifacts, a full disk, a
plugin that raises, and plugins returning broken protections. Every input folder is hashed before and
after the test that reads it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import _cliproc
from ue_bench import registry
from ue_bench.attack import Attack
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.cli import main
from ue_bench.protection import Protection

TINY = ["--preset", "tiny", "--dataset", "synthetic:size=32,test_size=8", "--threads", "1"]
STABLE = ["dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio", "i2t_r1", "i2t_r5",
          "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "i2t_medr", "t2i_medr", "mean_recall", "status", "cell_id"]
RUN = [*TINY, "--attacks", "none,random", "--defenses", "none,jpeg:quality=50"]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UE_BENCH_CACHE", raising=False)
    (tmp_path / "home").mkdir()


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """A small CSV dataset (16 PNGs), hashed before and after the module's tests read it."""
    root = tmp_path_factory.mktemp("inputs")
    for i in range(16):
        img = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"img{i}.png")
    (root / "pairs.csv").write_text("filepath,title\n" + "".join(f"img{i}.png,photo number {i}\n" for i in range(16)))
    before = tree_hash(root)
    yield root
    assert tree_hash(root) == before, "an input file was modified"


def leftovers(*roots: Path) -> list[str]:
    """Temporary or partial files and folders: ``.tmp-*``, ``*.tmp``, ``.*.tmp-*``, trash folders."""
    found = []
    for root in roots:
        for p in Path(root).rglob("*"):
            if ".tmp" in p.name or p.name.startswith(".trash-"):
                found.append(str(p))
    return found


def table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")[STABLE].sort_values("cell_id").reset_index(drop=True)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- SIGKILL at several points, then rerun ------------------------------------------------------------

def _first(pattern: str, root: Path):
    """A kill condition: something matches ``pattern`` under ``root``. The process under test renames and
    removes folders while the glob walks them; a folder gone mid-walk reads as "not yet" (polled again)."""
    def found() -> bool:
        try:
            return any(Path(root).glob(pattern))
        except FileNotFoundError:
            return False
    return found


def test_kill_condition_reads_a_folder_removed_mid_walk_as_not_yet(tmp_path, monkeypatch):
    """CI saw ``.out.tmp-*/*`` fail with FileNotFoundError: protect renamed the folder between the glob's
    listing of its parent and its walk into it."""
    (tmp_path / ".out.tmp-x").mkdir()
    condition = _first(".out.tmp-*/*", tmp_path)
    assert not condition()
    (tmp_path / ".out.tmp-x" / "a").write_text("")
    assert condition()
    real_scandir = os.scandir
    def scandir_after_rename(path="."):  # the folder is renamed once listed, before it is read
        if Path(path).name == ".out.tmp-x":
            (tmp_path / ".out.tmp-x").rename(tmp_path / "out")
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir_after_rename)
    assert not condition()


def kill_then_rerun(tmp_path, argv, when, cwd, timeout=600):
    """Start ``ue-bench argv``, SIGKILL it once ``when()`` holds (or it ends), rerun it to completion."""
    proc = _cliproc.start(argv, cwd, {}, tmp_path / "killed")
    _cliproc.wait_for(when, proc, timeout)
    killed = proc.is_alive()
    proc.kill()
    proc.join()
    if argv[0] == "protect" and (Path(argv[argv.index("--out") + 1]) / "manifest.json").exists():
        return False  # it finished first; protect refuses a finished --out, by design
    done = _cliproc.run(argv, cwd, {}, tmp_path / "rerun", timeout)
    assert done.code == 0, done.stderr[-3000:]
    return killed


@pytest.fixture(scope="module")
def run_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-ref")
    done = _cliproc.run(["run", *RUN, "--out", str(root / "out"), "--cache", str(root / "cache")], root, {},
                        root / "log")
    assert done.code == 0, done.stderr[-3000:]
    return root


KILL_RUN = {  # kill point: a condition on (out, cache)
    "at-start": lambda out, cache: lambda: True,
    "protection-building": lambda out, cache: _first("protection/.tmp-*", cache),
    "first-protection": lambda out, cache: _first("protection/*/manifest.json", cache),
    "defended-building": lambda out, cache: _first("defended/.tmp-*", cache),
    "first-victim": lambda out, cache: _first("victim/*/manifest.json", cache),
    "first-cell": lambda out, cache: _first("cells/*.json", out),
    "report": lambda out, cache: _first("report", out),
}


@pytest.mark.parametrize("point", list(KILL_RUN))
def test_run_killed_then_rerun_equals_uninterrupted_and_leaves_no_temp(run_reference, tmp_path, point):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["run", *RUN, "--out", str(out), "--cache", str(cache)]
    kill_then_rerun(tmp_path, argv, KILL_RUN[point](out, cache), tmp_path)
    pd.testing.assert_frame_equal(table(out), table(run_reference / "out"))
    assert not leftovers(out, cache), leftovers(out, cache)
    store = ArtifactStore(cache)
    for stage in ("protection", "defended", "victim"):
        for folder in (cache / stage).iterdir():
            assert store.status(stage, folder.name) == "cached", folder
    assert sorted(p.name for p in (out / "report").iterdir()) == sorted(p.name for p in (run_reference / "out" / "report").iterdir())


def test_cells_record_the_defense_transform_time_of_its_artifact(run_reference):
    """A cell's ``defense.defend_s`` is its defended data's build time (the defense-cost table's input)."""
    store = ArtifactStore(run_reference / "cache")
    cells = [json.loads(p.read_text()) for p in (run_reference / "out" / "cells").glob("*.json")]
    jpeg = [c for c in cells if c["labels"]["defense"].startswith("jpeg")]
    assert jpeg and all(c["defense"]["key"] == c["hashes"]["defended"] for c in cells)
    for c in jpeg:
        assert c["defense"]["defend_s"] == store.manifest("defended", c["defense"]["key"])["build_s"] > 0
    assert all(c["defense"]["defend_s"] == 0.0 for c in cells if c["labels"]["defense"] == "none")
    assert "defense-cost.csv" in {p.name for p in (run_reference / "out" / "report").iterdir()}


def protect_argv(data: Path, out: Path, cache: Path, fmt: str) -> list[str]:
    return ["protect", "--attack", "random", "--dataset", f"csv:{data / 'pairs.csv'},test_fraction=0,resolution=32",
            "--out", str(out), "--cache", str(cache), "--format", fmt, "--shard-size", "4", "--import-resolution"]


KILL_PROTECT = {
    "at-start": lambda out, cache: lambda: True,
    "import-building": lambda out, cache: _first("imports/.tmp-*", cache),
    "protection-stored": lambda out, cache: _first("protection/*/manifest.json", cache),
    "export-building": lambda out, cache: _first(f".{out.name}.tmp-*/*", out.parent),
}


@pytest.mark.parametrize("fmt", ["csv", "webdataset"])
def test_protect_killed_then_rerun_writes_byte_identical_copy(data_folder, tmp_path, fmt):
    ref = tmp_path / "ref"
    ref.mkdir()
    done = _cliproc.run(protect_argv(data_folder, ref / "out", ref / "cache", fmt), tmp_path, {}, tmp_path / "ref")
    assert done.code == 0, done.stderr[-3000:]
    expected = files(ref / "out")
    assert expected
    killed = []
    for point, when in KILL_PROTECT.items():
        run = tmp_path / point
        run.mkdir()
        out, cache = run / "out", run / "cache"
        if kill_then_rerun(run, protect_argv(data_folder, out, cache, fmt), when(out, cache), tmp_path):
            killed.append(point)
        got = files(out)
        manifest, ref_manifest = json.loads(got.pop("manifest.json")), json.loads(expected["manifest.json"])
        assert got == {k: v for k, v in expected.items() if k != "manifest.json"}, point
        for key in ("published_sha256", "protection_sha256", "files", "source_sha256", "n_images"):
            assert manifest[key] == ref_manifest[key], (point, key)
        assert not leftovers(run), (point, leftovers(run))
    # "at-start" always lands; whether a later point lands before a tiny protect finishes depends on the
    # machine's load (a fresh-user run saw only one in four), and every point that lands is checked above
    assert "at-start" in killed, f"only {killed} killed the command before it finished"


def test_report_killed_then_rerun_writes_identical_files(run_reference, tmp_path):
    reference = files(run_reference / "out" / "report")
    for i, delay in enumerate([0.0, 0.3, 0.8, 1.5]):
        run = tmp_path / f"k{i}"
        (run / "out").mkdir(parents=True)
        import shutil
        shutil.copytree(run_reference / "out" / "cells", run / "out" / "cells")
        argv = ["report", str(run / "out")]
        import time
        start = time.time()
        kill_then_rerun(run, argv, lambda: time.time() - start >= delay, run)
        got = files(run / "out" / "report")
        assert got.keys() == reference.keys()
        # text formats are byte-identical; PNGs and the HTML page embed them: compare sizes only loosely
        for name in got:
            if name.endswith((".md", ".csv", ".tex")):  # cells.csv names the file each cell came from
                here = got[name].replace(str(run / "out").encode(), str(run_reference / "out").encode())
                assert here == reference[name], name
        assert not leftovers(run), leftovers(run)


# --- corrupted artifacts --------------------------------------------------------------------------------

CORRUPT = [("protection", "delta.npy"), ("protection", "indices.npy"), ("protection", "triggers.json"),
           ("protection", "info.json"), ("protection", "manifest.json"), ("defended", "images.npy"),
           ("victim", "model.pt"), ("victim", "train.json")]
CORRUPT_RUN = [*TINY, "--attacks", "mem", "--defenses", "jpeg:quality=50"]


def flip(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    i = len(data) - 5  # near the end: inside the array / last value, not a header a loader would reject
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def test_corrupted_artifacts_are_detected_and_rebuilt_never_used(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["run", *CORRUPT_RUN, "--out", str(tmp_path / "ref"), "--cache", str(cache)]) == 0
    reference = table(tmp_path / "ref")
    store = ArtifactStore(cache)
    for i, (stage, name) in enumerate(CORRUPT):
        (folder,) = [p for p in (cache / stage).iterdir() if not p.name.startswith(".")]
        corrupted = flip(folder / name)
        assert store.status(stage, folder.name) == "corrupt", (stage, name)
        assert main(["run", *CORRUPT_RUN, "--out", str(tmp_path / f"r{i}"), "--cache", str(cache)]) == 0
        assert store.status(stage, folder.name) == "cached", (stage, name)
        assert (folder / name).read_bytes() != corrupted, f"{stage}/{name} was not rebuilt"
        pd.testing.assert_frame_equal(table(tmp_path / f"r{i}"), reference, obj=f"{stage}/{name}")
    capsys.readouterr()


# --- a full disk ------------------------------------------------------------------------------------------

def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "injected")


@pytest.mark.parametrize("where", ["numpy.save", "ue_bench.store.atomic.os.fsync", "torch.save"])
def test_full_disk_is_one_line_and_the_cache_stays_valid(tmp_path, capsys, monkeypatch, where):
    cache = tmp_path / "cache"
    assert main(["run", *TINY, "--out", str(tmp_path / "first"), "--cache", str(cache)]) == 0
    before = tree_hash(cache)
    capsys.readouterr()
    module, attr = where.rsplit(".", 1)
    target = __import__(module.split(".")[0])
    for part in module.split(".")[1:]:
        target = getattr(target, part)

    real = getattr(target, attr)

    def partial_then_enospc(*args, **kwargs):  # write something, then fail, as a filling disk does
        if attr == "save" and len(args) >= 2:
            real(*args, **kwargs)
        _enospc()

    monkeypatch.setattr(target, attr, partial_then_enospc)
    code = main(["run", *TINY, "--attacks", "random", "--defenses", "jpeg:quality=50", "--victims", "tiny-rn:epochs=1",
                 "--out", str(tmp_path / "second"), "--cache", str(cache)])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("ue-bench: error:") and "No space left on device" in err[-1], err[-3:]
    assert not leftovers(cache, tmp_path / "second"), leftovers(cache, tmp_path / "second")
    store = ArtifactStore(cache)
    for stage_dir in cache.iterdir():
        if stage_dir.name == "imports":
            continue
        for folder in stage_dir.iterdir():
            assert store.status(stage_dir.name, folder.name) == "cached", folder
    after = tree_hash(cache)
    assert {k: after[k] for k in before} == before, "an existing artifact changed"
    assert not list((tmp_path / "second" / "cells").glob("*.json")) if (tmp_path / "second" / "cells").exists() else True


# --- plugins that raise or return broken protections ------------------------------------------------------

class _Plain(Attack):
    """test attack"""
    uses_surrogate = False

    def budget(self) -> int:
        return 8


def _attack(name: str, make):
    cls = type(name.title().replace("-", ""), (_Plain,), {"protect": lambda self, split, s, seed, d: make(split),
                                                          "__doc__": f"test attack {name}"})
    registry.register("attacks", name, cls)
    return name


def _boom(split):
    raise RuntimeError("boom from the plugin")


def _delta(split, dtype=np.int16, value=0, at=None):
    d = np.zeros(split.images.shape, dtype=dtype)
    if at is not None:
        d[at] = value
    return d


BROKEN = {  # name: (protection maker, check named, first bad sample named or None)
    "bad-type": (lambda s: {"delta": None}, "type", None),
    "bad-shape": (lambda s: Protection(delta=_delta(s)[:, :-1]), "delta-shape", None),
    "bad-nan": (lambda s: Protection(delta=_delta(s, np.float32, np.nan, 3)), "delta-finite", "sample 3"),
    "bad-float": (lambda s: Protection(delta=_delta(s, np.float32, 0.03, 2)), "delta-integer", None),
    "bad-budget": (lambda s: Protection(delta=_delta(s, np.int16, 9, 5)), "budget", "sample 5"),
}


@pytest.fixture
def test_attacks():
    names = [_attack("boom", _boom)] + [_attack(n, fn) for n, (fn, _, _) in BROKEN.items()]
    yield names
    for n in names:
        registry.unregister("attacks", n)


def test_a_raising_plugin_fails_only_its_cell(tmp_path, capsys, caplog, test_attacks):
    out = tmp_path / "out"
    code = main(["run", *TINY, "--attacks", "none,boom,random", "--out", str(out), "--cache", str(tmp_path / "c")])
    assert code == 1
    cells = {json.loads(p.read_text())["labels"]["attack"].split(":")[0]: json.loads(p.read_text())
             for p in (out / "cells").glob("*.json")}
    assert {a: c["status"] for a, c in cells.items()} == {"none": "ok", "boom": "failed", "random": "ok"}
    assert cells["boom"]["error"] == "RuntimeError: boom from the plugin"
    assert "raise RuntimeError" in cells["boom"]["traceback"]
    assert list(pd.read_csv(out / "results.csv")["status"]) == ["ok", "failed", "ok"]
    assert "Traceback" not in capsys.readouterr().err + caplog.text
    assert [m for m in caplog.messages if "boom from the plugin" in m] == [
        f"cell {cells['boom']['cell_id']} failed: boom from the plugin"]


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_protection_is_refused_in_run_and_protect(tmp_path, capsys, caplog, test_attacks, name):
    _, check, sample = BROKEN[name]
    code = main(["run", *TINY, "--attacks", name, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err + "\n".join(caplog.messages)  # log records go to stderr outside pytest
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if f"attack {name!r} failed check {check}" in line]
    assert len(lines) == 1, err
    assert sample is None or sample in lines[0], lines[0]
    (cell,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*.json")]
    assert cell["status"] == "failed" and check in cell["error"]
    assert not (tmp_path / "c" / "protection").exists() or not any((tmp_path / "c" / "protection").iterdir())

    code = main(["protect", "--attack", name, "--dataset", "synthetic:size=32,test_size=8",
                 "--out", str(tmp_path / "copy"), "--cache", str(tmp_path / "c2")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if f"attack {name!r} failed check {check}" in line]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    assert sample is None or sample in lines[0]
    assert not (tmp_path / "copy").exists() and not leftovers(tmp_path)
    assert not (tmp_path / "c2" / "protection").exists() or not any((tmp_path / "c2" / "protection").iterdir())
