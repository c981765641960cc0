"""Provenance recorded with every result, so each number can be traced and rebuilt."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from ue_bench import __version__
from ue_bench.engine.device import describe

PACKAGES = ("ue-bench", "torch", "open_clip_torch", "numpy", "pandas", "pillow")


def code_version() -> str:
    """The package version plus the git commit (and ``+dirty``) when run from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def environment(device: torch.device) -> dict:
    """The provenance of a result made on ``device``: code version, package versions, Python, platform,
    device, and the CPU instruction set torch's kernels were dispatched for (``AVX2``, ``AVX512``, …):
    float sums round differently across them, so a rebuild on another CPU may differ in the last digits
    of a metric even at one thread."""
    return {
        "code_version": code_version(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": describe(device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
