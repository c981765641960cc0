"""The lift settings as dataset parameters (``PublishParams``): a run with ``publish=original`` trains on
the copy ``protect`` makes with the same settings, the defaults keep every key made before they were
parameters, and bad or unused values are refused in one line."""

from __future__ import annotations

import io
import json
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from test_protect_full import write_photos
from ue_bench import PublishParams, registry
from ue_bench.bench.matrix import Cell, dataset_key
from ue_bench.cli import main
from ue_bench.engine.images import fit
from ue_bench.engine.lift import LiftSettings

#: Keys computed on 5207893, the commit before the lift settings became parameters
#: (``PYTHONPATH=<its worktree>``): the defaults must leave them as they were.
DATASET_KEYS_BEFORE = {
    ("folder", "import"): "94d5265548e61bb27d5b46e9f449c2e40fc586dd1519baf809820849ddb6edd3",
    ("folder", "original"): "0d80879d99c73d933201c588a33161e551ff13ce4a28cf436b1aec2de53145f5",
    ("csv", "original"): "525b5119cb66e13efdb25a003c86a98ccafe5e0cf14356c6af42707cb63d18a6",
    ("karpathy", "original"): "81bd2760be8d13660308d1f1b0ad4a3c9d3737a4d4abe509829cc87f11a82bb1",
    ("webdataset", "original"): "d7d330ffbf20053fa5d84c4935d3bb24dd70fd44055674f188cbf0c4ebc96058",
}
CELL_ID_BEFORE = "5f9b8373943d92f8"  # random on folder (publish=original), tiny-rn, seed 0, ratio 1, same commit


def dataset(name: str, **values):
    return registry.create("datasets", name, {"path": "photos/", **values})


@pytest.mark.parametrize("name, publish", sorted(DATASET_KEYS_BEFORE))
def test_default_lift_settings_keep_the_dataset_keys(name, publish):
    ds = dataset(name, publish=publish)
    assert dataset_key(ds) == DATASET_KEYS_BEFORE[(name, publish)]
    assert not any(k.startswith("lift_") for k in ds.spec()["params"])
    # given explicitly at their defaults, they are the same dataset
    defaults = {f: getattr(PublishParams(), f) for f in ("lift_steps", "lift_lr", "lift_eot_views", "lift_eot_scale")}
    assert dataset_key(dataset(name, publish=publish, **defaults)) == DATASET_KEYS_BEFORE[(name, publish)]


def test_default_lift_settings_keep_the_cell_id_and_the_published_stage_key():
    cell = Cell(dataset("folder", publish="original"), registry.create("attacks", "random"), None,
                registry.create("defenses", "none"), registry.create("victims", "tiny-rn"), 0, 1.0)
    assert cell.cell_id == CELL_ID_BEFORE
    # the published split's stage key hashes asdict(lift): before, the runner passed LiftSettings(seed=seed)
    assert asdict(cell.dataset.lift(7)) == asdict(LiftSettings(seed=7))


def test_a_set_lift_parameter_enters_the_spec_label_and_settings():
    ds = dataset("folder", publish="original", lift_steps=80, lift_eot_scale=0.5)
    assert ds.spec()["params"]["lift_steps"] == 80 and ds.spec()["params"]["lift_eot_scale"] == 0.5
    assert "lift_lr" not in ds.spec()["params"]  # still at its default
    assert "lift_steps=80" in ds.label()
    assert dataset_key(ds) != DATASET_KEYS_BEFORE[("folder", "original")]
    assert ds.lift(3) == LiftSettings(steps=80, eot_scale=0.5, seed=3)


def _run(spec: str, out, cache) -> dict:
    assert main(["run", "--dataset", spec, "--attacks", "random", "--surrogates", "tiny-rn:batch_size=8",
                 "--victims", "tiny-rn:epochs=1,batch_size=8",
                 "--seeds", "3", "--out", str(out), "--cache", str(cache), "--threads", "1"]) == 0
    (cell,) = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert cell["status"] == "ok", cell.get("error")
    return cell


def test_a_run_trains_on_the_copy_protect_makes_with_the_same_lift_settings(tmp_path):
    photos = tmp_path / "p"
    write_photos(photos, n=20, captions=1)
    spec = f"folder:{photos},resolution=32,test_fraction=0.2"
    cache, steps = tmp_path / "c", "3"  # few steps: far from the default 40, so the lifted noise differs
    assert main(["protect", "--attack", "random", "--dataset", spec, "--seed", "3", "--out", str(tmp_path / "copy"),
                 "--cache", str(cache), "--victim", "tiny-rn:batch_size=8", "--lift-steps", steps]) == 0
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert manifest["lift"]["steps"] == int(steps) and manifest["dataset"]["params"]["lift_steps"] == int(steps)

    before = {p.parent.name for p in (cache / "published").glob("*/images.npy")}
    cell = _run(f"{spec},publish=original,lift_steps={steps}", tmp_path / "run", cache)
    (key,) = {p.parent.name for p in (cache / "published").glob("*/images.npy")} - before
    default = _run(f"{spec},publish=original", tmp_path / "run-default", cache)
    (default_key,) = {p.parent.name for p in (cache / "published").glob("*/images.npy")} - before - {key}

    originals = registry.create("datasets", "folder", {"": str(photos), "resolution": 32,
                                                       "test_fraction": 0.2}).originals()[0]
    copy = np.stack([fit(Image.open(io.BytesIO((tmp_path / "copy" / "train" / f"{r.name}.png").read_bytes()))
                         .convert("RGB"), 32) for r in originals])
    lifted, at_default = (np.load(cache / "published" / k / "images.npy") for k in (key, default_key))
    assert np.array_equal(lifted, copy)  # the run's view of protect's copy, made with the same settings
    assert not np.array_equal(at_default, copy)  # ... which the default settings do not make
    assert cell["hashes"]["published_train"] != default["hashes"]["published_train"]
    # the cell's provenance: the set value in its config, every setting in its publication record
    assert cell["config"]["dataset"]["params"]["lift_steps"] == int(steps)
    assert "lift_steps" not in default["config"]["dataset"]["params"]
    assert cell["publication"]["lift"] == asdict(LiftSettings(steps=int(steps), seed=3))
    assert default["publication"]["lift"] == asdict(LiftSettings(seed=3))
    assert cell["cell_id"] != default["cell_id"]


@pytest.mark.parametrize("extra, message", [
    ("publish=original,lift_steps=-1", "parameter 'lift_steps'=-1 is out of bounds (expected at least 0)"),
    ("publish=original,lift_eot_scale=2", "parameter 'lift_eot_scale'=2.0 is out of bounds [0.05, 1.0]"),
    ("publish=original,lift_lr=x", "parameter 'lift_lr' expects float, got 'x'"),
    ("lift_steps=80", "lift_steps=80 sets how the noise is carried onto the full-size files, and no full-size "
                      "copy is made here; add publish=original"),
])
def test_bad_or_unused_lift_settings_are_refused_in_one_line(tmp_path, capsys, extra, message):
    photos = tmp_path / "p"
    write_photos(photos, n=4, captions=1)
    code = main(["run", "--dataset", f"folder:{photos},resolution=32,{extra}", "--out", str(tmp_path / "run"),
                 "--cache", str(tmp_path / "c"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "c" / "imports").exists() or not any((tmp_path / "c" / "imports").iterdir())


def test_a_flag_and_its_dataset_parameter_are_refused_together(tmp_path, capsys):
    photos = tmp_path / "p"
    write_photos(photos, n=4, captions=1)
    code = main(["protect", "--attack", "random", "--dataset", f"folder:{photos},resolution=32,lift_steps=5",
                 "--lift-steps", "5", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "--lift-steps: --dataset" in err and "sets lift_steps too; give it once" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()
