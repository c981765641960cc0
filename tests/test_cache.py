"""The artifact store: atomic builds, reuse, and corrupted artifacts rebuilt rather than used."""

import json
import socket
import subprocess

import pytest

from ue_bench.store.artifacts import ArtifactStore, artifact_key


def write_payload(text):
    def build(tmp):
        (tmp / "payload.txt").write_text(text)
        return {"note": text}
    return build


def test_build_once_then_reuse(tmp_path):
    store = ArtifactStore(tmp_path)
    folder, built = store.get_or_build("stage", {"a": 1}, write_payload("x"))
    assert built and (folder / "payload.txt").read_text() == "x"
    again, built = store.get_or_build("stage", {"a": 1}, write_payload("never"))
    assert not built and again == folder and (again / "payload.txt").read_text() == "x"
    assert store.builds == {"stage": 1}
    assert json.loads((folder / "manifest.json").read_text())["note"] == "x"


def test_other_dependencies_get_another_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    a, _ = store.get_or_build("stage", {"a": 1}, write_payload("x"))
    b, built = store.get_or_build("stage", {"a": 2}, write_payload("y"))
    assert built and a != b


def test_corrupted_artifact_is_rebuilt(tmp_path):
    store = ArtifactStore(tmp_path)
    folder, _ = store.get_or_build("stage", {"a": 1}, write_payload("x"))
    (folder / "payload.txt").write_text("tampered")
    assert store.status("stage", folder.name) == "corrupt"
    folder2, built = store.get_or_build("stage", {"a": 1}, write_payload("x"))
    assert built and folder2 == folder and (folder / "payload.txt").read_text() == "x"


def test_folder_without_manifest_is_not_used(tmp_path):
    store = ArtifactStore(tmp_path)
    folder, _ = store.get_or_build("stage", {"a": 1}, write_payload("x"))
    (folder / "manifest.json").unlink()
    assert store.status("stage", folder.name) == "corrupt"


def test_failed_build_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(tmp):
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("stage", {"a": 1}, broken)
    assert list((tmp_path / "stage").iterdir()) == []



def test_orphaned_temporary_folder_of_a_dead_builder_is_removed(tmp_path):
    """What a SIGKILLed build leaves behind is cleaned up by the next build of the same artifact."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    key = artifact_key({"a": 1})
    orphan = tmp_path / "stage" / f".tmp-{key}-{socket.gethostname()}-{dead.pid}-abcd1234"
    orphan.mkdir(parents=True)
    (orphan / "half.txt").write_text("partial")
    folder, built = ArtifactStore(tmp_path).get_or_build("stage", {"a": 1}, write_payload("y"))
    assert built and not orphan.exists() and (folder / "payload.txt").read_text() == "y"
