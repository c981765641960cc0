"""A content-addressed artifact store: each stage's output under a hash of everything it depends on.

An artifact is a folder ``<root>/<stage>/<key>/`` holding its files and a ``manifest.json`` with the
sha256 and size of each file. It is built in a temporary folder and renamed into place only when
complete, so a crash (even SIGKILL) leaves either nothing or a whole artifact; a folder whose files do
not match its manifest is treated as absent and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ue_bench.store.atomic import building, locked, write_json
from ue_bench.store.imports import ImportStage

MANIFEST = "manifest.json"

#: Folder of the store's lock files (one per artifact being looked up or built; removed after use).
LOCKS = ".locks"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_sha256(obj: Any) -> str:
    """sha256 of a JSON-serialisable object in canonical form (sorted keys): the one identity hash of
    configurations (cell ids, artifact keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def artifact_key(deps: Any) -> str:
    """The key of an artifact: the first 24 hex digits of :func:`canonical_sha256` of its dependencies."""
    return canonical_sha256(deps)[:24]



class ArtifactStore:
    """Builds, validates and reuses stage artifacts; counts builds so tests can assert reuse."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.builds: dict[str, int] = {}

    def imports(self, workers: int | None = None, staged: bool = False) -> ImportStage:
        """The store's import stage, ``<root>/imports``: the decoded datasets, handed to
        ``Dataset.load`` (:class:`~ue_bench.store.imports.ImportStage`; ``workers`` decoding processes,
        ``staged``: new imports published only at its ``commit()``)."""
        return ImportStage(self.root / "imports", workers, staged)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def status(self, stage: str, key: str) -> str:
        """``cached`` (complete and verified), ``corrupt`` (present but failing its manifest) or ``missing``."""
        folder = self.path(stage, key)
        if not folder.exists():
            return "missing"
        return "cached" if self._valid(folder) else "corrupt"

    def _valid(self, folder: Path) -> bool:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            # the manifest itself: it must describe this folder (its deps hash to the folder's key)
            if manifest["key"] != folder.name or artifact_key(manifest["deps"]) != folder.name \
                    or manifest["stage"] != folder.parent.name:
                return False
            for name, entry in manifest["files"].items():
                f = folder / name
                if f.stat().st_size != entry["size"] or file_sha256(f) != entry["sha256"]:
                    return False
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def manifest(self, stage: str, key: str) -> dict:
        return json.loads((self.path(stage, key) / MANIFEST).read_text())

    def get_or_build(self, stage: str, deps: Any, build: Callable[[Path], dict | None]) -> tuple[Path, bool]:
        """The verified artifact folder for ``deps`` and whether it was built now.

        ``build(tmp_folder)`` writes the artifact's files into ``tmp_folder`` and may return extra
        manifest fields (e.g. timings). A corrupt artifact is removed and rebuilt. Processes sharing the
        store take turns per artifact (:func:`ue_bench.store.atomic.locked` on ``.locks/<stage>-<key>.lock``).
        """
        key = artifact_key(deps)
        self.path(stage, key).parent.mkdir(parents=True, exist_ok=True)
        locks = self.root / LOCKS
        locks.mkdir(exist_ok=True)
        with locked(locks / f"{stage}-{key}.lock", f"artifact {stage}/{key}", wait=True):
            return self._get_or_build(stage, key, deps, build)

    def _get_or_build(self, stage: str, key: str, deps: Any, build: Callable[[Path], dict | None]) -> tuple[Path, bool]:
        """:meth:`get_or_build` while holding the artifact's lock: a process that finds another building
        the same artifact waits for it and then uses it, and no process removes a corrupt artifact that
        another has just rebuilt."""
        folder = self.path(stage, key)
        state = self.status(stage, key)
        if state == "cached":
            return folder, False
        if state == "corrupt":
            shutil.rmtree(folder, ignore_errors=True)
        try:
            with building(folder, prefix=f".tmp-{key}-") as tmp:
                start = time.perf_counter()
                extra = build(tmp) or {}
                files = {
                    p.name: {"sha256": file_sha256(p), "size": p.stat().st_size}
                    for p in sorted(tmp.iterdir()) if p.is_file()
                }
                write_json(tmp / MANIFEST, {"stage": stage, "key": key, "deps": deps, "files": files,
                                            "build_s": time.perf_counter() - start, "created": time.time(), **extra})
        except OSError:
            # another worker finished the same artifact first (the rename failed); keep theirs if valid
            if not self._valid(folder):
                raise
        self.builds[stage] = self.builds.get(stage, 0) + 1
        return folder, True
