"""The pipeline's stages, each a function from artifact to artifact in the :class:`ArtifactStore`.

dataset → protection → defended data → trained victim → metrics. Each artifact's key hashes exactly
what it depends on (dataset fingerprint; plugin names, versions and parameters; surrogate; seed;
poison ratio; recipe), so changing a victim reuses the protection and changing an attack parameter
rebuilds only what depends on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cache import ArtifactStore, artifact_key
from .data import PairDataset, PairSplit
from .errors import ProtectionRejected
from .evaluate import evaluate_retrieval
from .protection import Protection, publish, verify
from .reports.imperceptibility import imperceptibility
from .training import steps_per_epoch, train_clip


def poisoned_indices(n: int, ratio: float, seed: int) -> np.ndarray:
    """The sorted subset of train images that gets protected: fixed per (seed, ratio)."""
    k = int(round(n * ratio))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504F4953]))
    return np.sort(rng.permutation(n)[:k])


def protection_deps(cell, data: PairDataset) -> dict[str, Any]:
    return {"dataset": data.train.fingerprint(), "attack": cell.attack.spec(),
            "surrogate": cell.surrogate.spec() if cell.surrogate else None,
            "seed": cell.seed, "poison_ratio": cell.poison_ratio}


def defended_deps(cell, protection_key: str) -> dict[str, Any]:
    return {"protection": protection_key, "defense": cell.defense.spec(), "seed": cell.seed}


#: Bumped whenever the training loop changes what a (recipe, data, seed) produces, so that cached
#: victims trained by an older loop are not reused (2: initial weights seeded per cell).
TRAINING_VERSION = 2


def victim_deps(cell, defended_key: str, resolution: int) -> dict[str, Any]:
    return {"defended": defended_key, "victim": cell.victim.spec(), "seed": cell.seed, "resolution": resolution,
            "training": TRAINING_VERSION}


def stage_keys(cell, data: PairDataset) -> dict[str, str]:
    """The artifact key of every stage of a cell, computed without building anything (for --dry-run)."""
    prot = artifact_key(protection_deps(cell, data))
    defended = artifact_key(defended_deps(cell, prot))
    return {"protection": prot, "defended": defended,
            "victim": artifact_key(victim_deps(cell, defended, data.train.resolution))}


def protect(store: ArtifactStore, cell, data: PairDataset, device: torch.device) -> tuple[str, dict]:
    """Run the attack on the poisoned subset, verify it and store delta, triggers and subset."""

    def build(tmp: Path) -> dict:
        idx = poisoned_indices(len(data.train), cell.poison_ratio, cell.seed)
        subset = data.train.subset(idx)
        start = time.perf_counter()
        prot: Protection = cell.attack.protect(subset, cell.surrogate, cell.seed, device)
        seconds = time.perf_counter() - start
        tokenizer = cell.surrogate.tokenizer() if cell.surrogate else None
        if prot.triggers is not None and tokenizer is None:
            raise ProtectionRejected(f"attack {cell.attack.name!r} returned triggers without a surrogate tokenizer to check")
        verify(cell.attack.name, prot, subset, cell.attack.budget(), tokenizer)
        np.save(tmp / "indices.npy", idx.astype(np.int64))
        if prot.delta is not None:
            np.save(tmp / "delta.npy", prot.delta.astype(np.int16))
        if prot.triggers is not None:
            (tmp / "triggers.json").write_text(json.dumps(prot.triggers))
        info = {"protect_s": seconds, "device": str(device), "n_poisoned": int(len(idx)),
                "protection_sha256": prot.fingerprint(), "attack_meta": prot.meta}
        if prot.delta is not None and len(idx):
            d = prot.delta.reshape(len(idx), -1).astype(np.float64)
            info.update(linf_mean=float(np.abs(d).max(1).mean()), l2_mean=float(np.sqrt((d ** 2).sum(1)).mean()))
            info.update(imperceptibility(subset.images, publish(subset, prot).images))
        (tmp / "info.json").write_text(json.dumps(info, default=str))
        return {}

    folder, _ = store.get_or_build("protection", protection_deps(cell, data), build)
    return folder.name, json.loads((folder / "info.json").read_text())


def load_published(store: ArtifactStore, key: str, train: PairSplit) -> PairSplit:
    """The train split as published: protected subset merged into the clean remainder."""
    folder = store.path("protection", key)
    idx = np.load(folder / "indices.npy")
    delta = np.load(folder / "delta.npy") if (folder / "delta.npy").exists() else None
    triggers = json.loads((folder / "triggers.json").read_text()) if (folder / "triggers.json").exists() else None
    subset = train.subset(idx)
    protected = publish(subset, Protection(delta=delta, triggers=triggers))
    if subset is train:
        images, captions = protected.images, protected.captions
    else:
        images = np.array(train.images, copy=True)
        images[idx] = protected.images
        captions = list(train.captions)
        for j, i in enumerate(idx):
            captions[i] = protected.captions[j]
    return PairSplit(images, captions, meta={**train.meta, "protection": key})


def defend(store: ArtifactStore, cell, protection_key: str, published: PairSplit) -> tuple[str, PairSplit]:
    """Apply the defense's data transform; the identity defense stores nothing."""
    deps = defended_deps(cell, protection_key)

    def build(tmp: Path) -> dict:
        out = cell.defense.transform(published, cell.seed)
        np.save(tmp / "images.npy", out.images)
        (tmp / "captions.json").write_text(json.dumps(out.captions))
        return {}

    if not cell.defense.transforms_data:
        return artifact_key(deps), published
    folder, _ = store.get_or_build("defended", deps, build)
    return folder.name, PairSplit(np.load(folder / "images.npy"), json.loads((folder / "captions.json").read_text()))


def train_victim(store: ArtifactStore, cell, defended_key: str, defended: PairSplit,
                 device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Train the victim from scratch (or its ``init``) on the defended data; store its weights."""
    deps = victim_deps(cell, defended_key, defended.resolution)
    recipe = cell.victim.params

    def build(tmp: Path) -> dict:
        with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed alone,
            torch.manual_seed(cell.seed)          # not on what ran earlier in this process
            model = cell.victim.create_model(defended.resolution, device)
        start = time.perf_counter()
        losses = train_clip(
            model, cell.victim.tokenizer(), defended, epochs=recipe.epochs, batch_size=recipe.batch_size,
            lr=recipe.lr, weight_decay=recipe.weight_decay, warmup=recipe.warmup, seed=cell.seed, device=device,
            desc=f"{cell.victim.name}|{cell.attack.name}|{cell.defense.name}",
            batch_loss=cell.defense.batch_loss(
                cell.seed, recipe.epochs * steps_per_epoch(len(defended), recipe.batch_size)))
        torch.save(model.state_dict(), tmp / "model.pt")
        (tmp / "train.json").write_text(json.dumps({
            "loss_per_epoch": losses, "train_s": time.perf_counter() - start, "device": str(device),
            "trained_on_sha256": defended.fingerprint()}))
        return {}

    folder, _ = store.get_or_build("victim", deps, build)
    model = cell.victim.create_model(defended.resolution, device)
    model.load_state_dict(torch.load(folder / "model.pt", map_location=device, weights_only=True))
    model.eval()
    return model, {"key": folder.name, **json.loads((folder / "train.json").read_text())}


def evaluate(cell, model: torch.nn.Module, test: PairSplit, device: torch.device) -> tuple[dict, float]:
    start = time.perf_counter()
    metrics = evaluate_retrieval(model, cell.victim.tokenizer(), test, device)
    return metrics, time.perf_counter() - start
