"""``ue-bench protect``: the data owner's command — protect a dataset's train split and write a copy
that CLIP trainers (open_clip's ``--dataset-type csv`` or ``webdataset``) read as they are.

The attack runs through the same protect stage as a benchmark cell (:func:`ue_bench.stages.protect`:
``attack.protect`` on the split, the harness's :func:`~ue_bench.protection.verify`, the artifact stored
under ``--cache``), so what is published is what ``ue-bench run`` measures, and a killed ``protect``
rerun with the same arguments finds its finished protection instead of computing it again. Publishing
goes chunk by chunk over the memory-mapped images and delta, so its memory does not grow with the
dataset. The input is only read; the copy and its manifest go to a new ``--out`` folder (see
:mod:`ue_bench.export`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import open_clip
import torch

from . import __version__, import_cache, registry, stages
from .atomic import write_json
from .cache import ArtifactStore
from .device import auto_device
from .errors import ProtectionRejected, UsageError
from .export import Layout, check_image_format, export_protected, prepare_out
from .paths import default_cache, prepare_writable
from .provenance import environment
from .training import steps_per_epoch


def add_protect_parser(subparsers) -> None:
    p = subparsers.add_parser("protect", help="write a protected copy of a dataset that CLIP trainers read")
    p.add_argument("--attack", required=True, help="attack plugin[:k=v,...], e.g. mem:trigger_len=3,eps=8")
    p.add_argument("--dataset", default="synthetic",
                   help="dataset plugin[:k=v,...], e.g. csv:pairs.csv,test_fraction=0 (its train split is protected)")
    p.add_argument("--surrogate", default="tiny-rn",
                   help="victim the attack optimises against; its tokenizer checks text triggers (default: tiny-rn)")
    p.add_argument("--victim", default="tiny-rn",
                   help="victim[:k=v,...] whose architecture and recipe the printed open_clip command trains "
                        "(default: tiny-rn)")
    p.add_argument("--seed", default="0", help="seed of the protection (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present; default), cpu, cuda, cuda:N")
    p.add_argument("--out", required=True, help="new folder for the protected copy (must not exist or be empty)")
    p.add_argument("--cache", help="artifact store for the protection and the decoded dataset, under imports/ "
                                   "(default: $UE_BENCH_CACHE or ~/.cache/ue-bench)")
    p.add_argument("--format", choices=("csv", "webdataset"),
                   help="output layout (default: the input's: webdataset for webdataset shards, else csv)")
    p.add_argument("--image-format", default="png", help="png (lossless, default) or jpg (lossy: needs --force-lossy)")
    p.add_argument("--force-lossy", action="store_true", help="write a lossy image format although it erases the noise")
    p.add_argument("--shard-size", default="10000", help="samples per tar shard with --format webdataset")
    p.set_defaults(func=cmd_protect)


def _one(family: str, text: str, flag: str):
    plugins = registry.create_many(family, text, flag)
    if len(plugins) != 1:
        raise UsageError(f"{flag}: expected exactly one {family[:-1]}, got {len(plugins)} in {text!r}")
    return plugins[0]


def _positive_int(text: str, flag: str, lo: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an integer, got {text!r}") from None
    if value < lo:
        raise UsageError(f"{flag}: expected an integer >= {lo}, got {value}")
    return value


def _layout(dataset, fmt: str | None, shard_size: int) -> Layout:
    """The input's own layout (``Dataset.export_layout()``), unless ``--format`` asks for another,
    which then gets open_clip's defaults."""
    own = dataset.export_layout()
    if fmt is not None and fmt != own["format"]:
        own = {"format": fmt}
    return Layout(**own, shard_size=shard_size)


def _shell(args: list[str]) -> str:
    """Arguments as a pasteable shell line (a tab separator as ``$'\\t'``, which quoting would hide)."""
    return " ".join("$'\\t'" if a == "\t" else shlex.quote(a) for a in args)


def model_config(victim, resolution: int) -> dict:
    """The victim's open_clip model config with the image size of the data, as ue-bench builds it
    (``force_image_size``): what ``--model local-dir:model`` reads from ``model/open_clip_config.json``."""
    cfg = open_clip.get_model_config(victim.arch)
    if cfg is None:
        raise UsageError(f"--victim {victim.label()}: open_clip has no config for {victim.arch!r}")
    cfg["vision_cfg"]["image_size"] = resolution
    return cfg


def trainer_args(manifest: dict, victim, device: torch.device, seed: int) -> list[str]:
    """``open_clip_train.main`` arguments that train ``victim`` with its recipe on the copy described by
    ``manifest`` (whose ``n_captions`` is at least the victim's batch size): as many optimiser steps as
    ue-bench's training (open_clip's epoch is one pass over caption rows, ue-bench's one over images),
    warm-up in steps (open_clip's default is 10,000), AdamW betas and epsilon as ue-bench's, and its
    training view (``augment=none``: a RandomResizedCrop of scale 1, which on square images returns
    them unchanged). The victim's ``init`` is not passed on: the command trains from scratch."""
    r = victim.params
    steps = r.epochs * steps_per_epoch(manifest["n_images"], r.batch_size)
    per_epoch = manifest["n_captions"] // r.batch_size
    epochs = max(1, round(steps / per_epoch))
    warmup = max(1, round(epochs * per_epoch * r.warmup)) if r.warmup > 0 else 0
    args = [*manifest["open_clip_args"], "--model", "local-dir:model", "--epochs", str(epochs),
            "--batch-size", str(r.batch_size), "--lr", str(r.lr), "--wd", str(r.weight_decay),
            "--warmup", str(warmup), "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-06", "--seed", str(seed)]
    if r.augment == "none":
        args += ["--aug-cfg", "scale=(1.0,1.0)"]
    if device.type == "cuda":
        return args + ["--precision", "amp_bf16"]
    return args + ["--device", device.type, "--precision", "fp32", "--workers", "0"]


def cmd_protect(args: argparse.Namespace) -> int:
    check_image_format(args.image_format, args.force_lossy)
    seed = _positive_int(args.seed, "--seed", 0)
    if seed > 2**32 - 1:
        raise UsageError(f"--seed: must be at most {2**32 - 1} (2**32 - 1), got {seed}")
    shard_size = _positive_int(args.shard_size, "--shard-size", 1)
    attack = _one("attacks", args.attack, "--attack")
    dataset = _one("datasets", args.dataset, "--dataset")
    surrogate = _one("victims", args.surrogate, "--surrogate")
    victim = _one("victims", args.victim, "--victim")
    out = Path(args.out)
    prepare_out(out)
    cache = prepare_writable(Path(args.cache) if args.cache else default_cache(), "--cache")
    device = auto_device(args.device)
    layout = _layout(dataset, args.format, shard_size)
    # a real dataset's import goes under --cache, and is kept only once the command is accepted
    with import_cache.using_root(cache), import_cache.staged() as staging:
        data = dataset.load()
        train = data.train
        if attack.uses_surrogate and surrogate.params.batch_size > len(train):
            raise UsageError(f"--surrogate {surrogate.label()}: batch_size {surrogate.params.batch_size} is larger "
                             f"than the train split of --dataset {dataset.label()} ({len(train)} images)")
        if attack.uses_surrogate and surrogate.resolution_problem(train.resolution):
            raise UsageError(f"--surrogate {surrogate.label()}: {surrogate.resolution_problem(train.resolution)} "
                             f"(the images of --dataset {dataset.label()})")
        batch = getattr(attack.params, "batch_size", None)
        if batch is not None and batch > len(train):
            raise UsageError(f"--attack {attack.label()}: batch_size {batch} is larger than the train split of "
                             f"--dataset {dataset.label()} ({len(train)} images)")
        staging.commit()
    cfg = model_config(victim, train.resolution)
    print(f"ue-bench: protecting {len(train)} train images of {dataset.label()} with {attack.label()} on {device}"
          + (f"; the {len(data.test)} clean test images are the validation data" if len(data.test) else ""),
          file=sys.stderr)
    try:
        artifact = stages.protect(ArtifactStore(cache), attack, surrogate if attack.uses_surrogate else None,
                                  train, seed, 1.0, device)
    except ProtectionRejected as exc:
        print(f"ue-bench: protection rejected, nothing written: {exc}", file=sys.stderr)
        return 1
    protection, info = artifact.protection(), artifact.info
    eps = attack.budget()
    manifest = {
        "ue_bench_version": __version__, "attack": attack.spec(),
        "surrogate": surrogate.spec() if attack.uses_surrogate else None,
        "dataset": dataset.spec(), "seed": seed, "eps": eps, "eps_fraction": eps / 255,
        "linf_mean": info.get("linf_mean", 0.0), "linf_max": info.get("linf_max", 0),
        "protect_s": info["protect_s"], "protection_key": artifact.key,
        "attack_meta": info["attack_meta"], "environment": environment(device),
        "source_sha256": train.fingerprint(), "protection_sha256": info["protection_sha256"],
    }
    manifest["victim"] = victim.spec()
    manifest = export_protected(out, train, protection, layout, args.image_format, manifest, data.test, cfg)
    wrote = f"ue-bench: wrote {manifest['n_images']} protected images ({manifest['n_captions']} captions) to {out}"
    if victim.params.batch_size > manifest["n_captions"]:
        print(f"{wrote}; no open_clip command: the batch size {victim.params.batch_size} of --victim "
              f"{victim.label()} exceeds its {manifest['n_captions']} caption rows", file=sys.stderr)
        return 0
    command = f"python -m open_clip_train.main {_shell(trainer_args(manifest, victim, device, seed))}"
    write_json(out / "manifest.json", {**manifest, "open_clip_command": command})
    print(f"{wrote}; train {victim.label()} on it (pip install 'ue-bench[train]') with:\n"
          f"cd {shlex.quote(str(out))} && {command}", file=sys.stderr)
    return 0
