"""The artifact store's import stage: where decoded datasets are cached, and when they are written there.

The real-data plugins (``csv``, ``folder``, ``karpathy``, ``webdataset``, ``emoji``) decode their images
once into an import cache (see ``ue_bench.datasets._imports``). An :class:`ImportStage` is that cache,
handed to ``Dataset.load(imports)`` by whoever loads the dataset — no process-wide state:

* **The root.** ``<store>/imports``, where ``<store>`` is the artifact store of the command
  (``--cache``; :meth:`ue_bench.store.artifacts.ArtifactStore.imports`); a dataset loaded without one
  (a plugin used as a library) uses :func:`default_imports`: ``$UE_BENCH_CACHE/imports``, else
  ``~/.cache/ue-bench/imports``, the same default as the artifact store, so everything a run caches
  lives under one folder.
* **Staging.** A stage made with ``staged=True`` decodes a new import into a temporary folder under
  the root and renames it into place only at :meth:`ImportStage.commit`; leaving its ``with`` block
  without committing (a ``--dry-run``, a run refused with exit 2 after loading its data) deletes it
  again, together with any folder it had to create. So checking a command's input never leaves a
  decoded dataset behind. An unstaged stage (the harness's workers, a library use) publishes at once.
* **Decoding processes.** :meth:`ImportStage.workers` is how many processes decode an import: the
  stage's ``workers`` (``--threads N``), else the CPUs this process may use, at most :data:`MAX_WORKERS`.

Every import is verified before use by the plugin that reads it (its manifest's fingerprints).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

from ue_bench.store.atomic import locked, sweep
from ue_bench.store.paths import default_cache

log = logging.getLogger(__name__)

#: Most processes an import decodes with by default (past that, reading the files is the limit).
MAX_WORKERS = 8


def default_workers() -> int:
    """The CPUs this process may use, at most :data:`MAX_WORKERS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cpus))


class ImportStage:
    """The import cache of one artifact store: ``root`` (``<store>/imports``), ``workers`` decoding
    processes (None: :func:`default_workers`; 1: decode in this process) and, with ``staged``, new
    imports held back until :meth:`commit` (a ``with`` block discards what was not committed)."""

    def __init__(self, root: Path, workers: int | None = None, staged: bool = False) -> None:
        self.root = Path(root)
        self._workers = workers
        self.staged = staged
        self.pending: list[tuple[Path, Path, Callable[[Path], None], Callable[[Path], bool]]] = []
        self.created: list[Path] = []

    def workers(self) -> int:
        """Processes that decode an import."""
        return self._workers if self._workers is not None else default_workers()

    def __enter__(self) -> ImportStage:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def commit(self) -> None:
        """Rename every staged import into place (callbacks update what pointed at the temporary folder)."""
        pending, self.pending, self.created = self.pending, [], []
        for tmp, folder, moved, valid in pending:
            moved(publish(tmp, folder, valid))

    def discard(self) -> None:
        """Delete every staged import not committed, and the folders created for them (if still empty)."""
        for tmp, *_ in self.pending:
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(self.created):  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                pass
        self.pending, self.created = [], []

    def make_root(self) -> Path:
        """:attr:`root`, created if needed (and, while staging, removed again on discard if it was created)."""
        missing = [p for p in [self.root, *self.root.parents] if not p.exists()]
        self.root.mkdir(parents=True, exist_ok=True)
        if self.staged:
            self.created.extend(reversed(missing))  # shallowest first
        return self.root

    def new_temp(self, key: str) -> Path:
        """A fresh temporary folder under the root for building the import ``key``."""
        folder = self.make_root()
        sweep(folder, f".tmp-{key}-")  # left by a killed import
        tmp = folder / f".tmp-{key}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def finish(self, tmp: Path, folder: Path, moved: Callable[[Path], None],
               valid: Callable[[Path], bool] = lambda folder: False) -> Path:
        """Publish ``tmp`` as ``folder`` (:func:`publish`, ``valid`` telling a verified import) now, or
        when a staged stage is committed. Returns where the import is to be read from now (``folder``,
        or ``tmp`` until the commit calls ``moved(folder)``)."""
        if not self.staged:
            return publish(tmp, folder, valid)
        self.pending.append((tmp, folder, moved, valid))
        return tmp


def default_imports() -> ImportStage:
    """The import stage of the default store (``$UE_BENCH_CACHE``, else ``~/.cache/ue-bench``),
    unstaged: for a dataset loaded without one."""
    return ImportStage(default_cache() / "imports")


def publish(tmp: Path, folder: Path, valid: Callable[[Path], bool] = lambda folder: False) -> Path:
    """Rename the complete import ``tmp`` to ``folder``, holding ``folder``'s lock (processes sharing
    the cache take turns): an existing ``folder`` that is ``valid`` — another process published the
    same import meanwhile, and may be reading it — is kept and ``tmp`` removed; one that is not (it
    failed verification) is moved out of the way first. Returns ``folder``."""
    locks = folder.parent / ".locks"
    locks.mkdir(exist_ok=True)
    with locked(locks / f"{folder.name}.lock", f"import {folder.name}", wait=True):
        if folder.exists() and valid(folder):
            shutil.rmtree(tmp, ignore_errors=True)
            return folder
        _replace(tmp, folder)
    return folder


def _replace(tmp: Path, folder: Path) -> None:
    if folder.exists():
        trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(folder, trash)
        except OSError:
            trash = None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # published concurrently by a process that does not lock: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
