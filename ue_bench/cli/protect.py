"""``ue-bench protect``: the data owner's command — protect a dataset's train split and write a copy
that CLIP trainers (open_clip's ``--dataset-type csv`` or ``webdataset``) read as they are.

The attack runs through the same protect stage as a benchmark cell (:func:`ue_bench.bench.stages.protect`:
``attack.protect`` on the split, the harness's :func:`~ue_bench.protection.verify`, the artifact stored
under ``--cache``), so what is published is what ``ue-bench run`` measures, and a killed ``protect``
rerun with the same arguments finds its finished protection instead of computing it again. Publishing
goes chunk by chunk over the memory-mapped images and delta, so its memory does not grow with the
dataset. The input is only read; the copy and its manifest go to a new ``--out`` folder (see
:mod:`ue_bench.publish.export`).
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import asdict
from dataclasses import fields as fields_of
import shlex
import sys
from pathlib import Path

import open_clip
import torch

from ue_bench import registry
from ue_bench.bench import stages
from ue_bench.cli import validate
from ue_bench.store.atomic import lock_path, locked
from ue_bench.store.artifacts import ArtifactStore
from ue_bench.errors import ProtectionRejected, UsageError
from ue_bench.publish.export import Layout, check_image_format, export_protected, prepare_out
from ue_bench.publish.export_full import check_sizes, export_full_resolution
from ue_bench.publish.manifest import protection_manifest
from ue_bench.dataset import PublishParams
from ue_bench.params import build_params, parse_specs
from ue_bench.bench.runconfig import preset_path
from ue_bench.store.paths import default_cache, prepare_writable
from ue_bench.seeds import trainer_seed
from ue_bench.engine.training import steps_per_epoch

#: ``protect``'s flags for the lift settings, aliases of the dataset parameters they are named after.
LIFT_FLAGS = {"lift_steps": "--lift-steps", "lift_lr": "--lift-lr", "lift_eot_views": "--lift-eot-views",
              "lift_eot_scale": "--lift-eot-scale"}


def add_protect_parser(subparsers) -> None:
    p = subparsers.add_parser("protect", help="write a protected copy of a dataset that CLIP trainers read")
    p.add_argument("--attack", required=True, help="attack plugin[:k=v,...], e.g. mem:trigger_len=3,eps=8")
    p.add_argument("--dataset", default="synthetic",
                   help="dataset plugin[:k=v,...], e.g. folder:photos/,resolution=224: every image is protected "
                        "(test_fraction=F or test_path=... also writes a clean, unprotected validation split)")
    p.add_argument("--surrogate", default="tiny-rn",
                   help="victim the attack optimises against; its tokenizer checks text triggers (default: tiny-rn)")
    p.add_argument("--victim", default="tiny-rn",
                   help="victim[:k=v,...] whose architecture and recipe the printed open_clip command trains "
                        "(default: tiny-rn)")
    p.add_argument("--preset", help="each plugin's values for this preset (tiny, smoke, paper) under the flags' own, "
                                    "as run --preset gives them, e.g. paper: the paper's attack parameters "
                                    "(default: none, each plugin's own defaults)")
    p.add_argument("--seed", default="0", help="seed of the protection (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present; default), cpu, cuda, cuda:N")
    p.add_argument("--threads", help="CPU threads, and processes that decode the import (default: all; "
                   "decoding at most 8; 1 decodes in this process)")
    p.add_argument("--out", required=True, help="new folder for the protected copy (must not exist or be empty)")
    p.add_argument("--cache", help="artifact store for the protection and the decoded dataset, under imports/ "
                                   "(default: $UE_BENCH_CACHE or ~/.cache/ue-bench)")
    p.add_argument("--format", choices=("csv", "webdataset"),
                   help="output layout (default: the input's: webdataset for webdataset shards, else csv)")
    p.add_argument("--image-format", default="png", help="png (lossless, default) or jpg (lossy: needs --force-lossy)")
    p.add_argument("--force-lossy", action="store_true", help="write a lossy image format although it erases the noise")
    p.add_argument("--shard-size", default="10000", help="samples per tar shard with --format webdataset")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full-resolution", dest="full_resolution", action="store_true", default=None,
                      help="publish every image at its original size, the noise carried onto its own pixels "
                           "(default for datasets with image files: csv, folder, karpathy, webdataset)")
    size.add_argument("--import-resolution", dest="full_resolution", action="store_false",
                      help="publish the imported images (resized and center-cropped to the dataset's resolution)")
    for name, flag in LIFT_FLAGS.items():
        p.add_argument(flag, dest=name, help=f"the dataset parameter {name} (an alias; give one of the two): "
                                             f"{_param_help(name)}")
    p.add_argument("--preview", default="0", help="write preview.png: N originals, protected files and amplified "
                                                  "noise side by side (default: 0, none)")
    p.set_defaults(func=cmd_protect)


def _everything_protected(dataset, text: str):
    """The dataset as ``protect`` reads it: a data owner's images are all protected, so a held-out test
    share (the file datasets' ``test_fraction``, 0.1 in a benchmark run) is 0 unless ``--dataset``
    sets it or names a ``test_path``."""
    fields = {f.name for f in fields_of(dataset.params)}
    given = parse_specs(text, "--dataset")[0][1]
    if "test_fraction" not in fields or "test_fraction" in given or getattr(dataset.params, "test_path", None):
        return dataset
    return registry.create("datasets", dataset.name, {**asdict(dataset.params), "test_fraction": 0.0})


def _one(family: str, text: str, flag: str, preset: str | None = None):
    """The one plugin ``text`` names, with the ``preset``'s values for it (``Plugin.presets``) under its own."""
    plugins = registry.create_many(family, text, flag, preset)
    if len(plugins) != 1:
        raise UsageError(f"{flag}: expected exactly one {family[:-1]}, got {len(plugins)} in {text!r}")
    return plugins[0]


def _param_help(name: str) -> str:
    """The help and default of a :class:`~ue_bench.dataset.PublishParams` parameter."""
    (f,) = [f for f in fields_of(PublishParams) if f.name == name]
    return f"{f.metadata['help']} (default: {f.default})"


def _with_lift_flags(dataset, args: argparse.Namespace, text: str):
    """``dataset`` with the ``--lift-*`` flags given set as its parameters: each flag is an alias of a
    :class:`~ue_bench.dataset.PublishParams` parameter, checked against that parameter's type and
    bounds (the error names the flag), and refused when ``--dataset`` gives the parameter too or the
    dataset has no lift settings (no original files)."""
    values = {name: getattr(args, name) for name in LIFT_FLAGS if getattr(args, name) is not None}
    if not values:
        return dataset
    given = parse_specs(text, "--dataset")[0][1]
    for name, raw in values.items():
        flag = LIFT_FLAGS[name]
        if not isinstance(dataset.params, PublishParams):
            raise UsageError(f"{flag}: dataset {dataset.name!r} has no original image files to carry the noise onto "
                             f"(it is published at its resolution)")
        if name in given:
            raise UsageError(f"{flag}: --dataset {text} sets {name} too; give it once (the flag is an alias of "
                             f"the dataset parameter)")
        build_params(flag, PublishParams, {name: raw})
    return registry.create("datasets", dataset.name, {**asdict(dataset.params), **values})


def _full_resolution(args: argparse.Namespace, dataset, originals) -> bool:
    """Whether to publish at the original size: ``--full-resolution``/``--import-resolution``, else
    whenever the dataset has original files."""
    if args.full_resolution and originals is None:
        raise UsageError(f"--full-resolution: dataset {dataset.label()} has no original image files "
                         f"(it is generated at its resolution); use --import-resolution")
    full = originals is not None if args.full_resolution is None else args.full_resolution
    if full and args.format == "webdataset":
        raise UsageError("--format webdataset: full-resolution copies are written as image files with a CSV "
                         "index; pass --import-resolution for shards of the imported images")
    if full and args.image_format != "png":
        raise UsageError(f"--image-format {args.image_format}: full-resolution copies are PNG (lossless); "
                         f"pass --import-resolution to write {args.image_format}")
    return full


def _layout(dataset, fmt: str | None, shard_size: int, full: bool) -> Layout:
    """The input's own layout (``Dataset.export_layout()``), unless ``--format`` asks for another,
    which then gets open_clip's defaults; a folder input's import-resolution copy is written as csv."""
    own = dataset.export_layout()
    if (fmt is not None and fmt != own["format"]) or (own["format"] == "folder" and not full):
        own = {"format": fmt or "csv"}
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
    ue-bench's training (open_clip's epoch is one pass over caption rows; ue-bench's, with the default
    ``epoch_unit=images``, one over images), warm-up in steps (open_clip's default is 10,000), the
    recipe's AdamW betas and epsilon, and its training view (``augment=none``: a RandomResizedCrop of
    scale 1, which on square images returns them unchanged). The trainer's ``--seed`` is
    :func:`~ue_bench.seeds.trainer_seed` of the protection ``seed``: it shares nothing with the
    surrogate the protection was made with (a plain ``--seed`` equal to it would not either, but a
    trainer seeded apart by role is what the threat model asks for). The victim's ``init`` is not passed
    on: the command trains from scratch."""
    r = victim.params
    per_epoch = manifest["n_captions"] // r.batch_size
    if r.epoch_unit == "captions":
        epochs = r.epochs
    else:
        steps = r.epochs * steps_per_epoch(manifest["n_images"], r.batch_size)
        epochs = max(1, round(steps / per_epoch))
    if r.warmup_steps is not None:
        warmup = r.warmup_steps
    else:
        warmup = max(1, round(epochs * per_epoch * r.warmup)) if r.warmup > 0 else 0
    args = [*manifest["open_clip_args"], "--model", "local-dir:model", "--epochs", str(epochs),
            "--batch-size", str(r.batch_size), "--lr", str(r.lr), "--wd", str(r.weight_decay),
            "--warmup", str(warmup), "--beta1", str(r.beta1), "--beta2", str(r.beta2), "--eps", str(r.adam_eps),
            "--seed", str(trainer_seed(seed))]
    if r.augment == "none":
        args += ["--aug-cfg", "scale=(1.0,1.0)"]
    if device.type == "cuda":
        return args + ["--precision", "amp_bf16"]
    return args + ["--device", device.type, "--precision", "fp32", "--workers", "0"]


def _size(n: int) -> str:
    """``n`` bytes in the largest binary unit that leaves at least 1 (``512 B``, ``27.0 KiB``, ``1.5 GiB``)."""
    units, value = ("B", "KiB", "MiB", "GiB"), float(n)
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{n} B" if i == 0 else f"{value:.1f} {units[i]}"


def _print_summary(s: dict, eps: int) -> None:
    """One line of what the full-resolution copy holds."""
    line = (f"ue-bench: {s['n_images']} images of {s['width_range'][0]}-{s['width_range'][1]} x "
            f"{s['height_range'][0]}-{s['height_range'][1]} px, {_size(s['bytes'])}; "
            f"max L∞ {s['linf_max']}/255 (eps {eps}) measured on the written files")
    if s["psnr_min"] is not None:
        line += f"; PSNR {s['psnr_min']:.1f}-{s['psnr_max']:.1f} dB, SSIM {s['ssim_min']:.3f}-{s['ssim_max']:.3f}"
    if "view_error_mean" in s:
        line += (f"; the trainer's view differs from the protected view by {s['view_error_mean']:.2f}/255 "
                 f"on average (max {s['view_error_max']:.1f}/255)")
    if s.get("converted"):
        kinds = ", ".join(f"{n} {what}" for what, n in s["converted"].items())
        line += f"; converted as a viewer shows them: {kinds} (summary.converted_examples in manifest.json)"
    print(line, file=sys.stderr)


def cmd_protect(args: argparse.Namespace) -> int:
    """Exit code 0 (1: the protection was rejected); bad input raises UsageError (exit code 2)."""
    with contextlib.ExitStack() as stack:
        return _protect(args, stack)


def _protect(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    check_image_format(args.image_format, args.force_lossy)
    seed = validate.seed(args.seed, "--seed")
    shard_size = validate.integer(args.shard_size, "--shard-size", 1)
    preview = validate.integer(args.preview, "--preview", 0)
    threads = validate.threads(args.threads)
    preset = args.preset and preset_path(args.preset).stem  # an unknown name is refused here
    attack = _one("attacks", args.attack, "--attack", preset)
    dataset = _with_lift_flags(_one("datasets", args.dataset, "--dataset", preset), args, args.dataset)
    dataset = _everything_protected(dataset, args.dataset)
    surrogate = _one("victims", args.surrogate, "--surrogate", preset)
    victim = _one("victims", args.victim, "--victim", preset)
    out = prepare_out(Path(args.out))
    # one writer per copy: a second protect of the same --out is refused until the first is done
    stack.enter_context(locked(lock_path(out), f"--out {out}"))
    prepare_out(out)  # again, holding the lock: another writer may have finished it meanwhile
    cache = prepare_writable(Path(args.cache) if args.cache else default_cache(), "--cache")
    device = validate.device(args.device)
    if threads:
        torch.set_num_threads(threads)
    originals = dataset.originals()
    full = _full_resolution(args, dataset, originals)
    validate.lift_used(dataset, full, "--import-resolution writes the imported images; leave it out for the "
                                      "full-resolution copy")
    if full:
        check_sizes([*originals[0], *originals[1]])
    if full and getattr(dataset.params, "publish", "original") != "original":
        # the attack sees the exact resize + crop of each original (no JPEG draft decoding), the view
        # the lift reproduces on the full-size file; the same import as a run's publish=original
        dataset = registry.create("datasets", dataset.name, {**asdict(dataset.params), "publish": "original"})
    settings = dataset.lift(seed)  # the dataset's lift settings, as a run's publish=original uses them
    if preview and not full:
        raise UsageError("--preview: needs a full-resolution copy (a dataset with image files)")
    layout = _layout(dataset, args.format, shard_size, full)
    # a real dataset's import goes under --cache, and is kept only once the command is accepted
    store = ArtifactStore(cache)
    with store.imports(workers=threads, staged=True) as imports:
        data = dataset.load(imports)
        train = data.train
        validate.check_protect(attack, surrogate, dataset, train)
        imports.commit()
    cfg = model_config(victim, train.resolution)
    print(f"ue-bench: protecting {len(train)} train images of {dataset.label()} with {attack.label()} on {device}"
          + (f"; the {len(data.test)} clean test images are the validation data" if len(data.test) else ""),
          file=sys.stderr)
    if len(data.test) and originals is not None:
        print(f"ue-bench: warning: the {len(data.test)} test images are copied UNPROTECTED into {args.out}/val "
              f"(validation data for a trainer); do not publish val/, or protect everything with test_fraction=0",
              file=sys.stderr)
    try:
        artifact = stages.protect(store, attack, surrogate if attack.uses_surrogate else None,
                                  train, seed, 1.0, device)
    except ProtectionRejected as exc:
        print(f"ue-bench: protection rejected, nothing written: {exc}", file=sys.stderr)
        return 1
    protection, eps = artifact.protection(), attack.budget()
    manifest = protection_manifest(attack, surrogate, dataset, victim, seed, artifact, train, device)

    def trainer_command(m: dict) -> dict:
        """The manifest with the open_clip command that trains ``victim`` on the copy, when its batch fits."""
        if victim.params.batch_size > m["n_captions"]:
            return m
        return {**m, "open_clip_command": f"python -m open_clip_train.main {_shell(trainer_args(m, victim, device, seed))}"}

    if full:
        # what the image files depend on (the preview and the model folder are written at the end)
        job = {"protection_key": artifact.key, "import_key": train.meta.get("import_key"), "lift": asdict(settings),
               "names": [r.name for r in originals[0]], "layout": asdict(layout)}
        try:
            manifest = export_full_resolution(out, originals[0], originals[1] if len(data.test) else [], protection,
                                              eps, layout, layout.format == "folder", settings, job, manifest, cfg,
                                              preview, trainer_command)
        except ProtectionRejected as exc:  # the harness's check on a written file (a bug if it ever fires)
            print(f"ue-bench: protection rejected, --out not written: {exc}", file=sys.stderr)
            return 1
        _print_summary(manifest["summary"], eps)
    else:
        manifest = export_protected(out, train, protection, layout, args.image_format, manifest, data.test, cfg,
                                    trainer_command)
    wrote = f"ue-bench: wrote {manifest['n_images']} protected images ({manifest['n_captions']} captions) to {out}"
    if "open_clip_command" not in manifest:
        print(f"{wrote}; no open_clip command: the batch size {victim.params.batch_size} of --victim "
              f"{victim.label()} exceeds its {manifest['n_captions']} caption rows", file=sys.stderr)
        return 0
    print(f"{wrote}; train {victim.label()} on it (pip install 'ue-bench[train]') with:\n"
          f"cd {shlex.quote(str(out))} && {manifest['open_clip_command']}", file=sys.stderr)
    return 0
