"""``ue-bench protect`` and the protected export: round trip, budget, layouts, refusals, atomicity,
and that open_clip's own trainer reads the copy."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ue_bench import protection, registry

from ue_bench.publish import export
from ue_bench.errors import ProtectionRejected
from ue_bench.protection import Protection, publish, verify
from ue_bench.cli import main

SYNTH = "synthetic:size=24,test_size=8,resolution=16,captions=2"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UE_BENCH_CACHE", str(tmp_path / "cache"))


def protect(*argv: str) -> int:
    """``ue-bench protect`` as the command line runs it (a UsageError: one line on stderr, exit 2)."""
    return main(["protect", *argv])


def synthetic_train():
    return registry.create("datasets", "synthetic", {"size": 24, "test_size": 8, "resolution": 16, "captions": 2}).load().train


def test_csv_export_round_trips_bit_identically_within_eps(tmp_path):
    out = tmp_path / "copy"
    assert protect("--attack", "random:eps=6", "--dataset", SYNTH, "--seed", "3", "--out", str(out)) == 0
    source = synthetic_train()
    expected = publish(source, registry.create("attacks", "random", {"eps": 6}).protect(source, None, 3, torch.device("cpu")))
    back = registry.create("datasets", "csv", {"": str(out / "train.csv"), "test_fraction": 0, "resolution": 16}).load()
    assert np.array_equal(np.asarray(back.train.images), expected.images)
    assert back.train.captions == expected.captions
    diff = np.abs(np.asarray(back.train.images, dtype=np.int16) - source.images.astype(np.int16))
    assert diff.max() <= 6 and diff.max() > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["attack"]["params"] == {"eps": 6} and manifest["eps"] == 6 and manifest["linf_max"] <= 6
    assert manifest["source_sha256"] == source.fingerprint()
    assert manifest["published_sha256"] == expected.fingerprint() == back.train.fingerprint()
    assert manifest["open_clip_args"][:2] == ["--dataset-type", "csv"]
    assert [p for p in os.listdir(tmp_path) if p != "cache"] == ["copy"]  # no temporary folder left


def test_webdataset_export_keeps_triggers_and_reads_back(tmp_path):
    source = synthetic_train()
    rng = np.random.default_rng(0)
    prot = Protection(delta=rng.integers(-4, 5, size=source.images.shape, dtype=np.int16),
                      triggers=[f"zq{i % 3}" for i in range(len(source))])
    export.export_protected(tmp_path / "wds", source, prot, export.Layout(format="webdataset", shard_size=10),
                            "png", {"attack": "test"})
    expected = publish(source, prot)
    shards = sorted((tmp_path / "wds" / "shards").iterdir())
    assert len(shards) == 5  # 48 samples (24 images x 2 captions), 10 per shard
    back = registry.create("datasets", "webdataset", {"": str(tmp_path / "wds" / "shards"), "test_fraction": 0,
                                                      "resolution": 16}).load()
    assert back.train.captions == expected.captions and back.train.captions[4][1].startswith("zq1 ")
    assert np.array_equal(np.asarray(back.train.images), expected.images)


def test_csv_input_is_exported_in_its_own_columns_and_never_modified(tmp_path):
    from PIL import Image
    (tmp_path / "in").mkdir()
    for i in range(4):
        Image.fromarray(np.full((20, 24, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "in" / f"{i}.jpg")
    (tmp_path / "in" / "pairs.csv").write_text("img;text\n" + "".join(f"{i}.jpg;a photo {i}\n" for i in range(4)))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "in").iterdir()}
    spec = f"csv:{tmp_path / 'in' / 'pairs.csv'},img_key=img,caption_key=text,test_fraction=0,resolution=16"
    assert protect("--attack", "random", "--dataset", spec, "--out", str(tmp_path / "out")) == 0
    assert (tmp_path / "out" / "train.csv").read_text().splitlines()[:2] == ["img;text", "train/0.png;a photo 0"]
    assert Image.open(tmp_path / "out" / "train" / "0.png").size == (24, 20)  # full resolution, the input's name
    assert protect("--attack", "random", "--dataset", spec, "--out", str(tmp_path / "small"), "--import-resolution") == 0
    assert (tmp_path / "small" / "train.csv").read_text().splitlines()[:2] == ["img;text", "images/00000000.png;a photo 0"]
    assert Image.open(tmp_path / "small" / "images" / "00000000.png").size == (16, 16)
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "in").iterdir()}


def test_format_flag_overrides_the_input_layout(tmp_path):
    assert protect("--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "o"), "--format", "webdataset",
                   "--shard-size", "20") == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["format"] == "webdataset" and sorted(manifest["files"]) == [
        "model/open_clip_config.json", *[f"shards/00000{i}.tar" for i in range(3)], "val_shards/000000.tar"]
    assert manifest["open_clip_args"] == ["--dataset-type", "webdataset", "--train-data", "shards/{000000..000002}.tar",
                                          "--train-num-samples", "48", "--val-data", "val_shards/{000000..000000}.tar",
                                          "--val-num-samples", "8"]


def test_lossy_format_is_refused_unless_forced(tmp_path, capsys):
    assert protect("--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "o"), "--image-format", "jpg") == 2
    assert "lossy compression rounds away" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert protect("--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "o"), "--image-format", "jpg",
                   "--force-lossy") == 0
    assert (tmp_path / "o" / "images" / "00000000.jpg").exists()


@pytest.mark.parametrize("argv, message", [
    (["--attack", "random,em"], "exactly one attack"),
    (["--attack", "nope"], "unknown attack"),
    (["--attack", "random", "--dataset", "csv"], "parameter 'path' is required"),
    (["--attack", "random", "--seed", "-1"], "--seed"),
    (["--attack", "random", "--threads", "0"], "--threads: expected an integer >= 1"),
])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    assert protect(*argv, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep").write_text("x")
    assert protect("--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "o")) == 2
    assert os.listdir(tmp_path / "o") == ["keep"]


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def broken(image, fmt):
        calls.append(1)
        if len(calls) > 5:
            raise OSError("disk full")
        return b"png"

    monkeypatch.setattr(export, "_encode", broken)
    with pytest.raises(OSError):
        protect("--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "o"))
    assert [p for p in os.listdir(tmp_path) if p != "cache"] == []


def test_chunked_verify_names_the_sample_across_chunks(monkeypatch):
    source = synthetic_train()
    monkeypatch.setattr(export, "CHUNK", 5)
    monkeypatch.setattr(protection, "CHUNK", 5)
    delta = np.zeros(source.images.shape, dtype=np.int16)
    prot = Protection(delta=delta, triggers=["t"] * len(source))
    verify("x", prot, source, 8, None)
    delta[17, 1, 2, 0] = 9
    with pytest.raises(ProtectionRejected, match="sample 17 has L∞ 9 "):
        verify("x", prot, source, 8, None)
    for bad in (np.zeros((len(source) + 1, 16, 16, 3), np.int16), np.zeros((len(source) - 1, 16, 16, 3), np.int16)):
        with pytest.raises(ProtectionRejected, match="shape"):
            verify("x", Protection(delta=bad), source, 8, None)


def test_export_has_one_caption_per_clean_val_image_and_the_model_folder(tmp_path):
    out = tmp_path / "copy"
    assert protect("--attack", "random", "--dataset", SYNTH, "--victim", "tiny-rn:batch_size=16", "--out", str(out)) == 0
    test = registry.create("datasets", "synthetic", {"size": 24, "test_size": 8, "resolution": 16, "captions": 2}).load().test
    back = registry.create("datasets", "csv", {"": str(out / "val.csv"), "test_fraction": 0, "resolution": 16}).load()
    assert np.array_equal(np.asarray(back.train.images), test.images)          # clean, not protected
    assert back.train.captions == [caps[:1] for caps in test.captions]
    cfg = json.loads((out / "model" / "open_clip_config.json").read_text())["model_cfg"]
    assert cfg["vision_cfg"]["image_size"] == 16 and cfg["embed_dim"] == 128
    manifest = json.loads((out / "manifest.json").read_text())
    assert "--val-data val.csv" in manifest["open_clip_command"] and "--model local-dir:model" in manifest["open_clip_command"]
    # ue-bench: 40 epochs × 2 steps of 16 of the 24 images = 80 steps; open_clip: 48 caption rows, 3 steps an epoch
    assert "--epochs 27 --batch-size 16 --lr 0.001 --wd 0.1 --warmup 4 " in manifest["open_clip_command"]


@pytest.mark.skipif(importlib.util.find_spec("open_clip_train") is None,
                    reason="open_clip_train is not importable: pip install 'ue-bench[train]'")
@pytest.mark.parametrize("full_size", [False, True], ids=["synthetic", "full-size-photos"])
def test_open_clip_trainer_runs_the_printed_command_end_to_end(tmp_path, capsys, full_size):
    out = tmp_path / "copy"
    dataset = "synthetic:size=48,test_size=16,resolution=32,captions=2"
    if full_size:  # 64 photos of 97-640 px, 48 train and 16 test: open_clip reads the full-size files
        from test_protect_full import write_photos
        write_photos(tmp_path / "photos", n=64, captions=2)
        dataset = f"folder:{tmp_path / 'photos'},resolution=32,test_fraction=0.25"
    assert protect("--attack", "random", "--dataset", dataset, "--victim", "tiny-rn:epochs=1,batch_size=16",
                   "--out", str(out), "--device", "cpu") == 0
    printed = capsys.readouterr().err.strip().splitlines()[-1]
    assert printed.startswith(f"cd {out} && python -m open_clip_train.main ")
    assert printed.endswith(json.loads((out / "manifest.json").read_text())["open_clip_command"])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}  # `python` is this one
    run = subprocess.run(["bash", "-c", printed], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "[96/96 (100%)]" in log                                  # 1 epoch: every caption row once, 6 steps
    assert "image_to_text_R@1" in log and "num_samples: 16" in log   # validated on the 16 clean test images
    assert list((tmp_path / "copy" / "logs").glob("*/checkpoints/epoch_1.pt"))


@pytest.mark.parametrize("attack", [
    "rem:outer_iters=1,surrogate_steps=1,pgd_steps=1,batch_size=8,adv_steps=1,eot_samples=1",
    "mem-classwise:outer_iters=1,surrogate_steps=1,pgd_steps=1,batch_size=8,hotflip_iters=1,candidates=2,"
    "grouping=random,groups=3",
    "t2ue:surrogate_epochs=1,generator_steps=2,width=8,batch_size=8",
], ids=["rem", "mem-classwise", "t2ue"])
def test_a_data_owner_publishes_with_each_newer_attack(tmp_path, attack):
    out, dataset = tmp_path / "copy", "synthetic:size=24,test_size=8,resolution=32,captions=2"
    assert protect("--attack", attack, "--dataset", dataset, "--surrogate", "tiny-rn:batch_size=8",
                   "--victim", "tiny-rn:epochs=1,batch_size=8", "--out", str(out), "--device", "cpu") == 0
    source = registry.create("datasets", "synthetic", {"size": 24, "test_size": 8, "resolution": 32, "captions": 2}).load().train
    back = registry.create("datasets", "csv", {"": str(out / "train.csv"), "test_fraction": 0, "resolution": 32}).load()
    diff = np.abs(np.asarray(back.train.images, dtype=np.int16) - source.images.astype(np.int16))
    assert 0 < diff.max() <= 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["attack"]["name"] == attack.split(":")[0] and manifest["linf_max"] == diff.max()


def test_protect_takes_a_preset_under_the_flags_own_values(tmp_path, capsys):
    """``--preset tiny`` gives each plugin its tiny values as ``run --preset`` does; a flag's own value wins."""
    out = tmp_path / "copy"
    assert protect("--preset", "tiny", "--attack", "mem:outer_iters=2", "--dataset", "synthetic:size=24,test_size=8",
                   "--device", "cpu",
                   "--cache", str(tmp_path / "c"), "--out", str(out), "--threads", "1") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    tiny = registry.get("attacks", "mem").presets["tiny"]
    params = manifest["attack"]["params"]
    assert params["outer_iters"] == 2 and params["pgd_steps"] == tiny["pgd_steps"] != 8
    assert manifest["surrogate"]["params"]["batch_size"] == registry.get("victims", "tiny-rn").presets["tiny"]["batch_size"]
    capsys.readouterr()
    assert protect("--preset", "huge", "--attack", "random", "--dataset", SYNTH, "--out", str(tmp_path / "x")) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_surrogate_the_attack_does_not_train_need_not_fit_the_split(tmp_path, capsys):
    """lowfreq-words reads only the surrogate's tokenizer, ar with random groups no model at all: the
    default surrogate batch of 64 is no reason to refuse 24 images; ar's k-means surrogate is."""
    for i, attack in enumerate(("lowfreq-words", "ar:grouping=random")):
        assert protect("--attack", attack, "--dataset", SYNTH, "--out", str(tmp_path / f"ok{i}"),
                       "--cache", str(tmp_path / "c"), "--threads", "1") == 0, capsys.readouterr().err
    capsys.readouterr()
    assert protect("--attack", "ar", "--dataset", SYNTH, "--out", str(tmp_path / "x"),
                   "--cache", str(tmp_path / "c")) == 2
    assert "--surrogate tiny-rn batch_size 64: larger than the train split" in capsys.readouterr().err


def test_protect_names_every_batch_that_does_not_fit_in_one_line(tmp_path, capsys):
    code = protect("--attack", "mem", "--dataset", SYNTH, "--surrogate", "tiny-rn:batch_size=64",
                   "--out", str(tmp_path / "x"), "--cache", str(tmp_path / "c"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--surrogate tiny-rn batch_size 64, --attack mem batch_size 64: larger than the train split" in err[0], err
    assert "give batch_size=24 or less (e.g. --surrogate tiny-rn:batch_size=24 --attack mem:batch_size=24)" in err[0]
    assert not (tmp_path / "x").exists()
