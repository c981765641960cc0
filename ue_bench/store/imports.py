"""Where decoded datasets are cached, and when they are written there.

The real-data plugins (``csv``, ``karpathy``, ``webdataset``) decode their images once into an import
cache (see ``ue_bench.datasets._imports``). This module holds the three settings the command line gives
them, as process-wide state, so that ``Plugin.load()`` keeps its signature:

* **The root.** :func:`root` is ``<cache>/imports`` where ``<cache>`` is the run's ``--cache`` (set with
  :func:`using_root` for the duration of a command), else ``$UE_BENCH_CACHE``, else
  ``~/.cache/ue-bench`` — the same default as the artifact store, so everything a run caches lives
  under one folder.
* **Staging.** Inside :func:`staged`, a new import is decoded into a temporary folder under the root
  and only renamed into place by :meth:`Stage.commit`; leaving the block without committing (a
  ``--dry-run``, a run refused with exit 2 after loading its data) deletes it again, together with
  any folder it had to create. So checking a command's input never leaves a decoded dataset behind.
  Outside :func:`staged` (the harness, a plugin used as a library) an import is published at once.
* **Decoding processes.** :func:`workers` is how many processes decode an import: the number set with
  :func:`decoding_with` (``ue-bench run --threads N``), else the CPUs this process may use, at most 8.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ue_bench.store.atomic import locked, sweep
from ue_bench.store.paths import default_cache

log = logging.getLogger(__name__)

_root: Path | None = None
_stage: Stage | None = None
_workers: int | None = None

#: Most processes an import decodes with by default (past that, reading the files is the limit).
MAX_WORKERS = 8


def base() -> Path:
    """The cache folder: the one set by :func:`using_root`, else ``$UE_BENCH_CACHE``, else ``~/.cache/ue-bench``."""
    return _root if _root is not None else default_cache()


def root() -> Path:
    """The import cache: ``<cache>/imports``."""
    return base() / "imports"


def workers() -> int:
    """Processes that decode an import: the number set by :func:`decoding_with`, else the CPUs this
    process may use, at most :data:`MAX_WORKERS`. 1: decode in this process."""
    if _workers is not None:
        return _workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cpus))


@contextmanager
def decoding_with(n: int | None) -> Iterator[None]:
    """Within the block, imports decode with ``n`` processes (``None``: keep the current setting)."""
    global _workers
    previous = _workers
    if n is not None:
        _workers = n
    try:
        yield
    finally:
        _workers = previous


@contextmanager
def using_root(cache: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, imports go under ``cache`` (``None``: keep the current setting)."""
    global _root
    previous = _root
    if cache is not None:
        _root = Path(cache)
    try:
        yield
    finally:
        _root = previous


class Stage:
    """Imports decoded while staging, waiting to be published by :meth:`commit`."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path, Callable[[Path], None], Callable[[Path], bool]]] = []
        self.created: list[Path] = []

    def commit(self) -> None:
        """Rename every staged import into place (callbacks update what pointed at the temporary folder)."""
        pending, self.pending, self.created = self.pending, [], []
        for tmp, folder, moved, valid in pending:
            moved(publish(tmp, folder, valid))

    def discard(self) -> None:
        for tmp, *_ in self.pending:
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(self.created):  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                pass
        self.pending, self.created = [], []


@contextmanager
def staged() -> Iterator[Stage]:
    """Stage imports made in the block; what is not committed by its end is deleted."""
    global _stage
    previous, stage = _stage, Stage()
    _stage = stage
    try:
        yield stage
    finally:
        _stage = previous
        stage.discard()


def make_root() -> Path:
    """:func:`root`, created if needed (and, while staging, removed again on discard if it was created)."""
    folder = root()
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    if _stage is not None:
        _stage.created.extend(reversed(missing))  # shallowest first
    return folder


def new_temp(key: str) -> Path:
    """A fresh temporary folder under the root for building the import ``key``."""
    folder = make_root()
    sweep(folder, f".tmp-{key}-")  # left by a killed import
    tmp = folder / f".tmp-{key}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


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


def finish(tmp: Path, folder: Path, moved: Callable[[Path], None],
           valid: Callable[[Path], bool] = lambda folder: False) -> Path:
    """Publish ``tmp`` as ``folder`` (:func:`publish`, ``valid`` telling a verified import) now, or
    while staging when the stage is committed. Returns where the import is to be read from now
    (``folder``, or ``tmp`` until the commit calls ``moved(folder)``)."""
    if _stage is None:
        return publish(tmp, folder, valid)
    _stage.pending.append((tmp, folder, moved, valid))
    return tmp
