"""Where ue-bench writes: the default artifact store and the check that a folder can be written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ue_bench.errors import UsageError


def default_cache() -> Path:
    """``$UE_BENCH_CACHE``, else ``~/.cache/ue-bench``."""
    return Path(os.environ.get("UE_BENCH_CACHE") or Path.home() / ".cache" / "ue-bench")


def prepare_writable(path: Path, flag: str = "--out") -> Path:
    """Check that ``path`` can be created and written, by creating and removing a probe folder in
    its nearest existing ancestor, so that nothing is left behind when the run is refused."""
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UsageError(f"{flag}: {path} cannot be created ({existing} is not a directory)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ue-bench-probe-", dir=existing))
    except OSError as exc:
        raise UsageError(f"{flag}: {path} is not writable ({exc.strerror} in {existing})") from None
    return path


