"""Writing so that a reader (or a rerun after SIGKILL) never sees half a file or half a folder.

Every file ue-bench writes for others to read goes through :func:`write_file` or :func:`writing` (a
temporary sibling, fsync, rename); every folder that must appear whole (an artifact, an exported copy) is built in
:func:`building` and renamed into place at the end.

Two processes that write the same folder take turns through :func:`locked`: an ``flock`` on a lock
file beside it (``.<name>.lock``, see :func:`lock_path`), held for the whole command, so that the
second writer of a ``--out`` is refused in one line (or, for an artifact, waits and then reuses the
first's). The kernel releases the lock of a process that dies, so a killed writer leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from ue_bench.errors import UsageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of what ue-bench writes: those of any new file or folder under the process's umask
#: (``mkstemp``/``mkdtemp`` alone would leave published copies readable by their owner only).
_MASK = _umask()
FILE_MODE, DIR_MODE = 0o666 & ~_MASK, 0o777 & ~_MASK


def _owner() -> str:
    """``<host>-<pid>-``: temporary names carry their writer, so a later writer can tell a killed one's."""
    return f"{socket.gethostname()}-{os.getpid()}-"


def sweep(folder: Path, prefix: str) -> None:
    """Delete ``folder/<prefix><host>-<pid>-*`` left by writers on this host that are gone (SIGKILL)."""
    host = socket.gethostname()
    for tmp in Path(folder).glob(f"{prefix}{host}-*"):
        pid = tmp.name[len(f"{prefix}{host}-"):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writing(path: Path):
    """A binary file handle whose content becomes ``path`` when the block completes: written to a
    temporary file in the same folder, fsynced and renamed (a temporary file of ``path`` left by a
    killed writer is removed first); nothing is left when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent, f".{path.name}.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner()}", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(path: Path, content: str | bytes) -> None:
    """Write ``content`` to ``path`` atomically (:func:`writing`)."""
    with writing(path) as fh:
        fh.write(content if isinstance(content, bytes) else content.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """:func:`write_file` of ``obj`` as indented JSON with sorted keys."""
    write_file(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


@contextlib.contextmanager
def building(final: Path, prefix: str | None = None):
    """A fresh temporary folder beside ``final``, renamed to ``final`` when the block completes and
    removed when it raises. ``final`` must not exist, or be an empty folder (it is replaced)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = prefix or f".{final.name}.tmp-"
    sweep(final.parent, prefix)  # a killed writer's folder is removed: temporary names carry their writer
    tmp = Path(tempfile.mkdtemp(prefix=prefix + _owner(), dir=final.parent))
    tmp.chmod(DIR_MODE)
    try:
        yield tmp
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lock_path(folder: Path) -> Path:
    """The lock file of ``folder``: ``.<name>.lock`` beside it, symlinks resolved, so that every name of
    one folder has one lock (its parent must exist)."""
    folder = Path(os.path.realpath(folder))
    return folder.parent / f".{folder.name}.lock"


def _holder(fd: int) -> str:
    """What the exclusive holder of a lock file wrote into it (host, pid, command), for a message."""
    try:
        return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def _open_lock(path: Path, shared: bool) -> int | None:
    """A descriptor of the lock file ``path``: created if needed for an exclusive lock; for a shared
    one (a reader, which writes nothing), the existing file read-only, or None when there is none —
    no writer holds it then."""
    if not shared:
        return os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def locked(path: Path, what: str, *, shared: bool = False, wait: bool = False):
    """Hold an ``flock`` on the lock file ``path`` for the block: exclusive (a writer: the file is
    created, its host, pid and command written into it, and removed on release) or ``shared`` (a reader:
    it takes the writer's file if there is one, and writes nothing). Without ``wait``, a lock held by
    another process raises UsageError naming ``what`` and the holder; with it, the block waits for its
    turn. A lock file removed by its holder between this process's open and its flock is opened again,
    so that two writers never hold "the same" lock on two files."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        fd = _open_lock(path, shared)
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(f"{what} is in use by another ue-bench process ({holder}); wait for it to "
                             f"finish, or use another folder") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
        if shared:  # its writer is done
            yield
            return
    try:
        if not shared:
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} pid {os.getpid()}: {' '.join(sys.argv[:3])}\n".encode())
        yield
    finally:
        if not shared:
            path.unlink(missing_ok=True)
        os.close(fd)
