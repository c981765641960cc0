"""The input checks of ``ue-bench run`` and ``ue-bench protect``, one module for both commands.

Flag values (:func:`integer`, :func:`integers`, :func:`seed`, :func:`seeds`, :func:`ratios`,
:func:`threads`, :func:`device`), lift settings that nothing would use (:func:`lift_used`), and what
the loaded data must allow (:func:`check_datasets`,
:func:`check_cells` for a run's matrix, :func:`check_protect` for one protection: batches that fit the
images they work on, image towers that fit the resolution). Every refusal is a
:class:`~ue_bench.errors.UsageError` naming the flag: one ``ue-bench: error:`` line, exit code 2,
raised before any work starts or any file is written.
"""

from __future__ import annotations

import torch

from ue_bench.bench import stages
from ue_bench.bench.matrix import dataset_key
from ue_bench.dataset import PublishParams
from ue_bench.engine.device import auto_device
from ue_bench.errors import UsageError

#: Seeds must fit every RNG they seed (numpy, torch, Python): 32 bits.
MAX_SEED = 2**32 - 1


def integer(text: str, flag: str, lo: int) -> int:
    """``text`` as an integer of at least ``lo``."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an integer, got {text!r}") from None
    if value < lo:
        raise UsageError(f"{flag}: expected an integer >= {lo}, got {value}")
    return value


def _comma_list(text: str, flag: str, convert, what: str) -> list:
    """The comma-separated items of ``text``, each through ``convert`` (``what`` names them in the error)."""
    try:
        return [convert(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated {what}, got {text!r}") from None


def integers(text: str, flag: str) -> list[int]:
    """``text`` as comma-separated non-negative integers (at least one)."""
    values = _comma_list(text, flag, int, "integers")
    if not values or any(v < 0 for v in values):
        raise UsageError(f"{flag}: expected non-negative integers, got {text!r}")
    return values


def seeds(text: str, flag: str) -> list[int]:
    """``text`` as comma-separated seeds, each in ``[0, MAX_SEED]``."""
    values = integers(text, flag)
    if max(values) > MAX_SEED:
        raise UsageError(f"{flag}: each seed must be at most {MAX_SEED} (2^32 - 1), got {max(values)}")
    return values


def seed(text: str, flag: str) -> int:
    """``text`` as one seed in ``[0, MAX_SEED]``."""
    return seeds(str(integer(text, flag, 0)), flag)[0]


def ratios(text: str, flag: str) -> list[float]:
    """``text`` as comma-separated poison ratios, each in ``(0, 1]``."""
    values = _comma_list(text, flag, float, "fractions")
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise UsageError(f"{flag}: each poison ratio must be in (0, 1], got {text!r}")
    return values


def threads(text: str | None, flag: str = "--threads") -> int | None:
    """``text`` as a positive number of threads; None (or empty) when not given."""
    return integer(str(text), flag, 1) if text not in (None, "") else None


def device(text: str, flag: str = "--device") -> torch.device:
    """The device ``text`` names, present on this machine (:func:`~ue_bench.engine.device.auto_device`)."""
    return auto_device(text, flag)


def batch_fits(flag: str, label: str, batch: int | None, n: int, where: str) -> None:
    """Refuse a ``batch`` (None: the plugin has none) larger than the ``n`` images it works on."""
    if batch is not None and batch > n:
        raise UsageError(f"{flag} {label}: batch_size {batch} is larger than {where}")


def resolution_fits(flag: str, model, resolution: int, dataset: str) -> None:
    """Refuse a victim or surrogate whose image tower does not fit ``resolution`` px images."""
    problem = model.resolution_problem(resolution) if model is not None else None
    if problem:
        raise UsageError(f"{flag} {model.label()}: {problem} (the images of --dataset {dataset})")


def lift_used(dataset, used: bool, why: str) -> None:
    """Refuse lift settings (a :class:`~ue_bench.dataset.PublishParams` ``lift_*`` parameter off its
    default) that nothing would use: ``used`` is whether a full-size copy is made, ``why`` says what
    to change when it is not (e.g. "add publish=original")."""
    changed = dataset.params.lift_changed() if isinstance(dataset.params, PublishParams) else {}
    if changed and not used:
        shown = ",".join(f"{k}={v}" for k, v in changed.items())
        raise UsageError(f"--dataset {dataset.label()}: {shown} sets how the noise is carried onto the full-size "
                         f"files, and no full-size copy is made here; {why}")


def check_datasets(datasets, loaded, victims) -> None:
    """Refuse a dataset with fewer than 2 test images, and a victim whose batch is larger than a dataset's
    training split; ``loaded``: the loaded data by dataset key. A surrogate's batch is checked per cell,
    where an attack trains it (:func:`check_cells`): a run whose attacks train none never uses it."""
    for ds in datasets:
        label, data = ds.label(), loaded[dataset_key(ds)]
        if len(data.test) < 2:
            raise UsageError(f"--dataset {label}: the test split holds {len(data.test)} image(s); retrieval needs at "
                             f"least 2 (among 1, every metric reads 1.0, as random guessing does): give test_path "
                             f"or a larger test_fraction")
        for victim in victims:
            batch_fits("--victims", victim.label(), victim.params.batch_size, len(data.train),
                       f"the training split of --dataset {label} ({len(data.train)} images)")


def check_cells(cells, loaded) -> None:
    """Refuse, before anything runs, values a plugin cannot honour on this data: a poison ratio that
    protects no image, an attack's or surrogate's batch larger than the protected subset it works on,
    a victim whose batch is larger than the training share a defense's selection leaves it
    (``early-stop``), a victim or surrogate whose image tower does not fit the data's resolution, and
    the upper bound ``surrogate_init=true`` on a victim of another architecture than a surrogate it is
    paired with."""
    inits = set()
    shares: dict[tuple, int] = {}
    for cell in cells:
        data = loaded[dataset_key(cell.dataset)]
        n, label = len(data.train), cell.dataset.label()
        share = (cell.defense.label(), dataset_key(cell.dataset), cell.seed)
        if share not in shares:  # a defense keeps the split's rows, so its selection's sizes are the import's
            shares[share] = cell.defense.train_share(data.train, cell.seed)
        if shares[share] < n:
            batch_fits("--victims", cell.victim.label(), cell.victim.params.batch_size, shares[share],
                       f"the {shares[share]} of {n} training images of --dataset {label} that --defenses "
                       f"{cell.defense.label()} trains on (the rest held out)")
        trained = cell.surrogate if cell.attack.trains_surrogate() else None  # else its tokenizer at most
        for flag, model in (("--victims", cell.victim), ("--surrogates", trained)):
            resolution_fits(flag, model, data.train.resolution, label)
        init = (cell.victim.label(), data.train.resolution)
        if cell.victim.params.init and init not in inits:  # an unreadable or unfitting checkpoint
            inits.add(init)                                # is refused now, not by every cell
            cell.victim.create_model(data.train.resolution, "cpu")
        sur = cell.surrogate
        if cell.victim.params.surrogate_init and sur is not None and sur.arch != cell.victim.arch:
            raise UsageError(f"--victims {cell.victim.label()}: surrogate_init=true shares the surrogate's initial "
                             f"weights, which needs the surrogate's architecture, but --surrogates "
                             f"{sur.label()} is {sur.arch} and the victim {cell.victim.arch}")
        if cell.attack.is_clean:
            continue
        k = len(stages.poisoned_indices(n, cell.poison_ratio, cell.seed))
        if k == 0:
            raise UsageError(f"--poison-ratio {cell.poison_ratio:g} protects 0 of the {n} train images of "
                             f"--dataset {label}; give a larger ratio")
        where = f"the {k} protected images (--poison-ratio {cell.poison_ratio:g} of {n} in --dataset {label})"
        batch_fits("--attacks", cell.attack.label(), getattr(cell.attack.params, "batch_size", None), k, where)
        if trained is not None:
            batch_fits("--surrogates", trained.label(), trained.params.batch_size, k,
                       f"{where}, which the attack {cell.attack.name} trains it on")


def check_protect(attack, surrogate, dataset, train) -> None:
    """Refuse a surrogate (when the attack trains one) or an attack whose batch is larger than the
    ``train`` split of ``dataset`` (both named in one line when both are), or a surrogate whose image
    tower does not fit its resolution."""
    n = len(train)
    trains = attack.trains_surrogate()
    batches = [("--surrogate", surrogate.label(), surrogate.params.batch_size)] if trains else []
    batches.append(("--attack", attack.label(), getattr(attack.params, "batch_size", None)))
    over = [(flag, label, batch) for flag, label, batch in batches if batch is not None and batch > n]
    if over:
        example = " ".join(f"{flag} {label}{',' if ':' in label else ':'}batch_size={n}" for flag, label, _ in over)
        raise UsageError(f"{', '.join(f'{f} {lab} batch_size {b}' for f, lab, b in over)}: larger than the train "
                         f"split of --dataset {dataset.label()} ({n} images); give batch_size={n} or less "
                         f"(e.g. {example})")
    if trains:
        resolution_fits("--surrogate", surrogate, train.resolution, dataset.label())