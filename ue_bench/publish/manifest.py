"""The manifest of a data owner's copy (``manifest.json``): what was protected, how, and how to train on it.

:func:`protection_manifest` assembles what every copy records (attack, surrogate, dataset, seed,
budget, norms, keys and hashes, environment); each exporter adds its layout's fields (format, counts,
written files' hashes, the open_clip data arguments); :func:`write_manifest` is the one writer, called
last by the exporter inside the folder that is then renamed into place, after ``complete`` (the
command's own fields, e.g. the trainer command) has had its say.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ue_bench import __version__
from ue_bench.bench.environment import environment
from ue_bench.store.atomic import write_json

MANIFEST = "manifest.json"


def protection_manifest(attack, surrogate, dataset, victim, seed: int, artifact, train, device) -> dict:
    """What every copy records of its protection: ``artifact`` (a stored
    :class:`~ue_bench.bench.stages.ProtectionArtifact`) of ``attack`` (with ``surrogate`` when it uses
    one) on the ``train`` split of ``dataset`` at ``seed``; ``victim``: what the printed command trains."""
    info, eps = artifact.info, attack.budget()
    return {
        "ue_bench_version": __version__, "attack": attack.spec(),
        "surrogate": surrogate.spec() if attack.uses_surrogate else None,
        "dataset": dataset.spec(), "seed": seed, "eps": eps, "eps_fraction": eps / 255,
        "linf_mean": info.get("linf_mean", 0.0), "linf_max": info.get("linf_max", 0),
        "protect_s": info["protect_s"], "protection_key": artifact.key,
        "attack_meta": info["attack_meta"], "environment": environment(device),
        "source_sha256": train.fingerprint(), "protection_sha256": info["protection_sha256"],
        "victim": victim.spec(), "input": what_was_read(train.meta),
    }


def what_was_read(meta: dict) -> dict:
    """The dataset's account of its input for the manifest: what it left out, skipped or found (counts
    and first examples, e.g. ``ignored_files``, ``skipped_rows``, ``unpaired_captions``), without the
    import cache's own keys."""
    return {k: v for k, v in meta.items() if k not in ("split", "import_key", "import_dir")}


def write_manifest(folder: Path, manifest: dict, complete: Callable[[dict], dict] | None = None) -> dict:
    """Write ``folder/manifest.json``: ``manifest`` as ``complete`` returns it (None: as it is).
    Returns what was written."""
    if complete is not None:
        manifest = complete(manifest)
    write_json(folder / MANIFEST, manifest)
    return manifest
