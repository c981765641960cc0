"""Writing so that a reader (or a rerun after SIGKILL) never sees half a file or half a folder.

Every file ue-bench writes for others to read goes through :func:`write_file` or :func:`writing` (a
temporary sibling, fsync, rename); every folder that must appear whole (an artifact, an exported copy) is built in
:func:`building` and renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any


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
