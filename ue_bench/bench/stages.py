"""The pipeline's stages, typed: each takes plugins and artifacts and returns an artifact of the
:class:`~ue_bench.store.artifacts.ArtifactStore`.

train split → :func:`protect` → :class:`ProtectionArtifact` → :func:`publish_split` → :func:`defend` →
:class:`DefendedData` → :func:`train` → :class:`TrainedVictim` → :func:`evaluate` → metrics.

Each artifact's key hashes exactly what it depends on (the split's fingerprint; plugin names, versions
and parameters; surrogate; seed; poison ratio; recipe), so changing a victim reuses the protection and
changing an attack parameter rebuilds only what depends on it. ``ue-bench run`` runs them per cell
(:mod:`ue_bench.bench.runner`); ``ue-bench protect`` runs :func:`protect` alone, so what a data owner
publishes is what a benchmark cell measures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ue_bench.attack import Attack
from ue_bench.store.artifacts import ArtifactStore, artifact_key
from ue_bench.data import PairSplit, release, save_chunked
from ue_bench.defense import Defense, Selection, selection_problem
from ue_bench.errors import ProtectionRejected, UsageError
from ue_bench.engine.evaluate import RetrievalProbe, evaluate_retrieval
from ue_bench.engine.images import decode_image, fit
from ue_bench.engine.imperceptibility import imperceptibility_of_chunks
from ue_bench.engine.lift import LiftSettings
from ue_bench.protection import (CHUNK, Protection, delta_dtype, published_chunks, published_pixels, verify,
                                 with_trigger_text)
from ue_bench.schema import BY_KEY
from ue_bench.seeds import role_seed
from ue_bench.engine.training import train_clip
from ue_bench.victim import Victim

#: Bumped whenever the training loop changes what a (recipe, data, seed) produces, so that cached
#: victims trained by an older loop are not reused (2: initial weights seeded per cell; 3: the victim's
#: weights, batch order and views drawn from its own role seeds, apart from the surrogate's; 4: ``train.json``
#: holds the learning curve on the clean test split and a defense's epoch selection, issue 29 — the weights
#: of a cell without a selection are those version 3 trained, but its artifact had no curve).
TRAINING_VERSION = 4

#: Enters the key of every protection made with a surrogate: bumped when the surrogate's seeding changes
#: (1: its initial weights and clean training drawn from their own role seeds, :mod:`ue_bench.seeds`).
SURROGATE_SEEDING = 1

#: Images per step of the imperceptibility measures (per-image values, so the chunk changes no result).
SSIM_CHUNK = 128


def poisoned_indices(n: int, ratio: float, seed: int) -> np.ndarray:
    """The sorted subset of train images that gets protected: fixed per (seed, ratio)."""
    k = int(round(n * ratio))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504F4953]))
    return np.sort(rng.permutation(n)[:k])


def protection_key(train: PairSplit, attack: Attack, surrogate: Victim | None, seed: int, ratio: float) -> str:
    return artifact_key(_protection_deps(train, attack, surrogate, seed, ratio))


def _protection_deps(train, attack, surrogate, seed, ratio) -> dict[str, Any]:
    deps = {"dataset": train.fingerprint(), "attack": attack.spec(),
            "surrogate": surrogate.spec() if surrogate else None, "seed": seed, "poison_ratio": ratio}
    if surrogate is not None:
        deps["surrogate_seeding"] = SURROGATE_SEEDING
    return deps


def _defended_deps(protection: str, defense: Defense, seed: int) -> dict[str, Any]:
    return {"protection": protection, "defense": defense.spec(), "seed": seed}


def _victim_deps(defended: str, victim: Victim, seed: int, resolution: int,
                 test: PairSplit | None = None) -> dict[str, Any]:
    """The trained victim's dependencies; with a learning curve (the recipe's ``eval_every`` > 0) also the
    clean test split it is measured on, which ``train.json`` then holds."""
    deps = {"defended": defended, "victim": victim.spec(), "seed": seed, "resolution": resolution,
            "training": TRAINING_VERSION}
    if test is not None and victim.params.eval_every:
        deps["curve_test"] = test.fingerprint()
    return deps


def stage_keys(train: PairSplit, attack: Attack, surrogate: Victim | None, defense: Defense, victim: Victim,
               seed: int, ratio: float, test: PairSplit | None = None) -> dict[str, str]:
    """The artifact key of every stage, computed without building anything (for ``--dry-run``); ``test``
    is the clean test split the victim's learning curve is measured on, as :func:`train` takes it."""
    prot = protection_key(train, attack, surrogate, seed, ratio)
    defended = artifact_key(_defended_deps(prot, defense, seed))
    return {"protection": prot, "defended": defended,
            "victim": artifact_key(_victim_deps(defended, victim, seed, train.resolution, test))}


@dataclass(frozen=True)
class ProtectionArtifact:
    """A verified protection in the store: ``indices.npy`` (int64, the protected subset of the train
    split), ``delta.npy`` (int8 ``[n, H, W, 3]`` pixel units when the budget is at most 127, else
    int16; older artifacts hold int16; absent when images are untouched),
    ``triggers.json`` (absent without triggers) and ``info.json`` (:attr:`info`)."""

    key: str
    folder: Path
    info: dict

    def indices(self) -> np.ndarray:
        return np.load(self.folder / "indices.npy")

    def protection(self) -> Protection:
        """The stored protection, its delta memory-mapped (read-only) rather than loaded."""
        delta = self.folder / "delta.npy"
        triggers = self.folder / "triggers.json"
        return Protection(delta=np.load(delta, mmap_mode="r") if delta.exists() else None,
                          triggers=json.loads(triggers.read_text()) if triggers.exists() else None)


def protect(store: ArtifactStore, attack: Attack, surrogate: Victim | None, train: PairSplit, seed: int,
            ratio: float, device: torch.device) -> ProtectionArtifact:
    """Run the attack on the poisoned subset of ``train``, verify it (:func:`~ue_bench.protection.verify`:
    raises :class:`ProtectionRejected` naming the attack and the first bad sample) and store it."""

    def build(tmp: Path) -> dict:
        idx = poisoned_indices(len(train), ratio, seed)
        subset = train.subset(idx)
        start = time.perf_counter()
        prot: Protection = attack.protect(subset, surrogate, seed, device)
        seconds = time.perf_counter() - start
        triggers = getattr(prot, "triggers", None)  # verify() below names a return of the wrong type
        tokenizer = surrogate.tokenizer() if surrogate and triggers is not None else None
        if triggers is not None and tokenizer is None:
            raise ProtectionRejected(f"attack {attack.name!r} returned triggers without a surrogate tokenizer to check")
        verify(attack.name, prot, subset, attack.budget(), tokenizer)
        np.save(tmp / "indices.npy", idx.astype(np.int64))
        if prot.delta is not None:  # verified within ±budget: int8 holds it exactly up to 127
            d = prot.delta
            save_chunked(tmp / "delta.npy", d.shape, delta_dtype(attack.budget()),
                         (d[a:a + CHUNK] for a in range(0, len(d), CHUNK)))
        if prot.triggers is not None:
            (tmp / "triggers.json").write_text(json.dumps(prot.triggers))
        info = {"protect_s": seconds, "device": str(device), "n_poisoned": int(len(idx)),
                "protection_sha256": prot.fingerprint(), "attack_meta": prot.meta}
        if prot.delta is not None and len(idx):
            info.update(_delta_norms(prot.delta))
            info.update(imperceptibility_of_chunks(  # SSIM's float64 temporaries: ~1 MB per 64 px image
                (subset.images[a:a + SSIM_CHUNK], part.images)
                for a, part in published_chunks(subset, prot, SSIM_CHUNK)))
        (tmp / "info.json").write_text(json.dumps(info, default=str))
        return {}

    folder, _ = store.get_or_build("protection", _protection_deps(train, attack, surrogate, seed, ratio), build)
    return ProtectionArtifact(folder.name, folder, json.loads((folder / "info.json").read_text()))


def _delta_norms(delta: np.ndarray) -> dict[str, float]:
    """Mean over images of the L∞ and L2 norms of ``delta`` (pixel units) and the largest L∞, in chunks."""
    linf, l2 = [], []
    for a in range(0, len(delta), CHUNK):
        d = delta[a:a + CHUNK].reshape(len(delta[a:a + CHUNK]), -1).astype(np.float64)
        linf.append(np.abs(d).max(1))
        l2.append(np.sqrt((d ** 2).sum(1)))
        release(delta)
    linf = np.concatenate(linf)
    return {"linf_mean": float(linf.mean()), "l2_mean": float(np.concatenate(l2).mean()), "linf_max": int(linf.max())}


def publish_split(train: PairSplit, artifact: ProtectionArtifact, originals: Callable[[], Sequence] | None = None,
                  eps: int = 0, lift: LiftSettings | None = None) -> PairSplit:
    """The train split as published: the protected subset merged into the clean remainder (the input
    split is never modified).

    With ``originals`` (a function returning the train split's original files, :meth:`Dataset.originals`,
    called only when the published split is built rather than found in the store; the dataset's
    ``publish=original``) a protected image is what a trainer reads from the full-size copy
    ``ue-bench protect`` writes: the original pixels plus the noise carried onto them by
    :func:`~ue_bench.protection.published_pixels` with the lift (within ±``eps``, views seeded by
    ``lift.seed``), resized and cropped by :func:`ue_bench.engine.images.fit`; the import must then be
    exact (no JPEG draft decoding), so that an unprotected image is the same resize + crop of its original.

    A protection without a delta publishes the train images themselves (no copy). With a delta, the
    published images are written once, chunk by chunk, to ``published/<key>/images.npy`` in the store
    that holds the protection (keyed by the protection and the train split) and read back memory-mapped,
    so publishing never holds the split in memory, whatever its size or poison ratio."""
    idx = artifact.indices()
    prot = artifact.protection()
    captions = list(train.captions)
    if prot.triggers is not None:
        for j, i in enumerate(idx):
            captions[i] = with_trigger_text(prot.triggers[j], train.captions[i])
    meta = {**train.meta, "protection": artifact.key}
    if prot.delta is None or not len(idx):
        return PairSplit(train.images, captions, meta=meta)
    from ue_bench.store.artifacts import ArtifactStore
    store = ArtifactStore(artifact.folder.parent.parent)

    def full_size(r, i: int, j: int) -> np.ndarray:
        pixels = np.asarray(decode_image(r.read(), name=r.where), dtype=np.uint8)
        published = published_pixels(pixels, prot.delta[j], eps, lift, i)
        return fit(Image.fromarray(published), train.resolution)

    def blocks():
        files = None if originals is None else originals()
        j = 0  # idx is sorted: the protected rows of block [a, b) are idx[j:k]
        for a in range(0, len(train), CHUNK):
            b = min(len(train), a + CHUNK)
            block = np.array(train.images[a:b])
            k = int(np.searchsorted(idx, b))
            if k > j:
                rows = idx[j:k] - a
                if files is None:
                    block[rows] = published_pixels(block[rows], prot.delta[j:k])
                else:
                    for jj, row in enumerate(rows, start=j):
                        block[row] = full_size(files[a + row], int(a + row), jj)
                release(prot.delta)
            release(train.images)
            j = k
            yield block

    def build(tmp: Path) -> dict:
        save_chunked(tmp / "images.npy", train.images.shape, np.uint8, blocks())
        return {}

    deps = {"protection": artifact.key, "train": train.fingerprint()}
    if originals is not None:
        deps["original"] = {"eps": eps, "lift": asdict(lift)}
    folder, _ = store.get_or_build("published", deps, build)
    return PairSplit(np.load(folder / "images.npy", mmap_mode="r"), captions, meta=meta)


@dataclass(frozen=True)
class DefendedData:
    """What the victim trains on: the published split after the defense's data transform, and the
    seconds that transform took when it was built (``defend_s``; 0 for a defense that transforms nothing,
    the build's time for a cached one, so a cell's cost does not depend on what the cache held)."""

    key: str
    split: PairSplit
    defend_s: float = 0.0


def defend(store: ArtifactStore, defense: Defense, seed: int, protection: str, published: PairSplit) -> DefendedData:
    """Apply the defense's data transform; a defense that transforms nothing stores nothing."""
    deps = _defended_deps(protection, defense, seed)
    if not defense.transforms_data:
        return DefendedData(artifact_key(deps), published)

    def build(tmp: Path) -> dict:
        out = defense.transform(published, seed)
        save_chunked(tmp / "images.npy", out.images.shape, np.uint8,
                     (out.images[a:a + CHUNK] for a in range(0, len(out), CHUNK)))
        (tmp / "captions.json").write_text(json.dumps(out.captions))
        return {}

    folder, _ = store.get_or_build("defended", deps, build)
    return DefendedData(folder.name, PairSplit(np.load(folder / "images.npy", mmap_mode="r"),
                                               json.loads((folder / "captions.json").read_text())),
                        defend_s=float(store.manifest("defended", folder.name)["build_s"]))


@dataclass(frozen=True)
class TrainedVictim:
    """A trained victim in eval mode, its artifact key and ``train.json`` (:attr:`info`: losses, times,
    device, hashes, and, when recorded, ``curve`` and ``selection``; see :func:`train`)."""

    key: str
    model: torch.nn.Module
    info: dict


def curve_epochs(epochs: int, every: int) -> list[int]:
    """The epochs (1-based) after which the learning curve evaluates the test split: every ``every``-th
    and always the last; none when ``every`` is 0."""
    if every <= 0:
        return []
    return sorted({*range(every, epochs + 1, every), epochs})


def better(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``metric`` strictly improves on ``best`` (higher recall, lower median rank)."""
    if best is None:
        return True
    return value < best if not BY_KEY[metric].higher_is_better else value > best


class _EpochMonitor:
    """What :func:`train` does between epochs (:func:`~ue_bench.engine.training.train_clip`'s ``after_epoch``):
    the clean test split's retrieval at the curve's epochs, and, with a defense's :class:`Selection`, the
    validation share's retrieval after every epoch, a copy of the best epoch's weights and the stop."""

    def __init__(self, probe: RetrievalProbe | None, epochs: list[int], validation: RetrievalProbe | None,
                 selection: Selection | None) -> None:
        self.probe, self.epochs, self.validation, self.selection = probe, set(epochs), validation, selection
        self.points: list[dict] = []
        self.scores: list[dict] = []
        self.eval_s = 0.0
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, epoch: int, model: torch.nn.Module) -> bool:
        start = time.perf_counter()
        if self.probe is not None and epoch in self.epochs:
            self.points.append({"epoch": epoch, **self.probe(model)})
        stop = False
        if self.selection is not None:
            scores = self.validation(model)
            self.scores.append({"epoch": epoch, **scores})
            metric = self.selection.metric
            if better(metric, scores[metric], self.best_score):
                self.best_epoch, self.best_score = epoch, scores[metric]
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            patience = self.selection.patience
            stop = patience is not None and epoch - self.best_epoch >= patience
        self.eval_s += time.perf_counter() - start
        return stop


def train(store: ArtifactStore, victim: Victim, defense: Defense, seed: int, data: DefendedData,
          device: torch.device, desc: str = "train", test: PairSplit | None = None) -> TrainedVictim:
    """Train the victim from scratch (or its ``init``) on the defended data with its recipe and the
    defense's training-time loss; store its weights.

    With ``test`` (the clean test split) and the recipe's ``eval_every`` > 0, the retrieval metrics of the
    model on ``test`` after every ``eval_every``-th epoch and the last (:func:`curve_epochs`) are stored as
    ``info["curve"]`` = ``{"every": k, "points": [{"epoch": e, <METRIC_KEYS>: float}, ...], "eval_s": s}``;
    evaluating changes no trained weight (:func:`~ue_bench.engine.training.between_epochs`). With a
    defense's :meth:`~ue_bench.defense.Defense.selection`, the victim trains on its ``train`` share, its
    ``validation`` share is scored after every epoch, the weights stored are those of the best epoch and
    ``info["selection"]`` records it: ``{"metric", "patience", "epoch" (the kept one), "epochs_trained",
    "n_train", "n_validation", "validation_index", "scores": [{"epoch": e, <METRIC_KEYS>}, ...]}``. A
    selection that fails :func:`~ue_bench.defense.selection_problem` raises :class:`UsageError`."""
    split = data.split
    every = victim.params.eval_every if test is not None else 0

    def build(tmp: Path) -> dict:
        model, init_sha256 = initial_victim(victim, seed, split.resolution, device)
        selection = defense.selection(split, seed)
        if selection is not None:
            problem = selection_problem(selection, split)
            if problem:
                raise UsageError(f"defense {defense.name!r}: {problem}")
        fit_on = split if selection is None else selection.train
        settings = victim.train_settings()
        total = victim.training_steps(fit_on)
        tokenizer = victim.tokenizer()
        monitor = _EpochMonitor(RetrievalProbe(tokenizer, test, device) if every else None,
                                curve_epochs(settings["epochs"], every),
                                None if selection is None else RetrievalProbe(tokenizer, selection.validation, device),
                                selection)
        start = time.perf_counter()
        losses = train_clip(model, tokenizer, fit_on, **settings, seed=role_seed(seed, "victim-train"),
                            device=device, desc=desc, batch_loss=defense.batch_loss(seed, total),
                            after_epoch=monitor if (every or selection is not None) else None)
        info = {"loss_per_epoch": losses, "train_s": time.perf_counter() - start, "device": str(device),
                "trained_on_sha256": fit_on.fingerprint(), "victim_init_sha256": init_sha256}
        if every:
            info["curve"] = {"every": every, "points": monitor.points, "eval_s": monitor.eval_s}
        if selection is not None:
            model.load_state_dict(monitor.best_state)
            info["selection"] = {
                "metric": selection.metric, "patience": selection.patience, "epoch": monitor.best_epoch,
                "epochs_trained": len(losses), "n_train": len(selection.train),
                "n_validation": len(selection.validation),
                "validation_index": np.asarray(selection.validation_index).tolist(), "scores": monitor.scores}
        torch.save(model.state_dict(), tmp / "model.pt")
        (tmp / "train.json").write_text(json.dumps(info))
        return {}

    deps = _victim_deps(data.key, victim, seed, split.resolution, test if every else None)
    folder, _ = store.get_or_build("victim", deps, build)
    model = victim.create_model(split.resolution, device)
    model.load_state_dict(torch.load(folder / "model.pt", map_location=device, weights_only=True))
    model.eval()
    return TrainedVictim(folder.name, model, json.loads((folder / "train.json").read_text()))


def initial_victim(victim: Victim, seed: int, resolution: int, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The victim's initial model for cell ``seed`` and the sha256 of its state dict
    (:func:`~ue_bench.seeds.state_sha256`), without touching the caller's global RNG state.

    Its weights are drawn from the ``victim-init`` role seed, apart from the surrogate's
    (``surrogate-init``, :meth:`Victim.initial_model`'s default): a victim of the surrogate's
    architecture is a fresh model, as a trainer would have it. ``surrogate_init=true`` (an explicit
    upper bound) draws them from the surrogate's role seed instead; ``init`` loads a checkpoint over them."""
    return victim.initial_model(resolution, seed, device,
                                "surrogate-init" if victim.params.surrogate_init else "victim-init")


def evaluate(victim: Victim, model: torch.nn.Module, test: PairSplit, device: torch.device) -> tuple[dict, float]:
    """Retrieval metrics on the clean ``test`` split (with ``random_<metric>`` beside each) and seconds."""
    start = time.perf_counter()
    metrics = evaluate_retrieval(model, victim.tokenizer(), test, device)
    return metrics, time.perf_counter() - start
