"""Conformance checks for plugins: what each family's contract implies, on the ``tiny`` preset.

The project runs these over every registered plugin (``tests/test_conformance.py``); third-party authors
run the same ones from their own tests or with ``ue-bench plugin check NAME``::

    from ue_bench.testing import check_attack, assert_conforms
    assert_conforms(check_attack("my-attack"))

Each ``check_<family>(name)`` takes the name of a registered plugin (entry point, or
:func:`ue_bench.registry.register` in-process), builds it with its ``presets["tiny"]`` values (plus
``params``), and returns one :class:`Check` per property: its name, whether it passed and, when it did
not, what was expected and the first bad sample. Nothing raises except :func:`assert_conforms`. The tiny
context is the synthetic dataset and the ``tiny-rn`` surrogate/victim at their ``tiny`` preset values
on the CPU, one thread: a few seconds per plugin on 2 CPU cores (full-size victims: tens of seconds).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ue_bench import registry

from ue_bench.authoring import fixture_run

from ue_bench.store.imports import ImportStage
from ue_bench.data import PairSplit
from ue_bench.defense import selection_problem
from ue_bench.protection import CHECKS, Protection, publish
from ue_bench.report import RETURNS
from ue_bench.results import load_run
from ue_bench.schema import METRIC_KEYS
from ue_bench.engine.training import train_clip

#: The preset whose plugin values the checks use.
PRESET = "tiny"
SEED = 0


@dataclass(frozen=True)
class Check:
    """The outcome of one property of one plugin; ``detail`` says what was expected when it failed."""

    plugin: str
    name: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return f"{mark} {self.plugin} {self.name}" + (f": {self.detail}" if self.detail else "")


def assert_conforms(checks: list[Check]) -> None:
    """Raise ``AssertionError`` listing every failed check (for pytest)."""
    failed = [c.line() for c in checks if not c.passed]
    assert not failed, "\n".join(failed)


def tiny(family: str, name: str, params: dict[str, Any] | None = None):
    """Plugin ``name`` of ``family`` with its ``tiny`` preset values, then ``params``."""
    return registry.create(family, name, params, PRESET)


def tiny_data():
    """The synthetic dataset at its ``tiny`` preset (64 train and 16 test images at 32 px)."""
    return tiny("datasets", "synthetic").load()


class _Recorder:
    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.checks: list[Check] = []

    def run(self, name: str, fn: Callable[[], str | None]) -> bool:
        """Run one property; ``fn`` returns None when it holds, else what was expected. An exception
        fails the check with its type, message and the plugin's frame it came from."""
        start = time.perf_counter()
        try:
            problem = fn()
        except Exception as exc:  # the plugin's own error is the check's failure, not the checker's
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            problem = f"raised {type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
        self.checks.append(Check(self.plugin, name, problem is None, problem or "", time.perf_counter() - start))
        return problem is None


@contextlib.contextmanager
def _one_thread():
    """Torch on one CPU thread within the block (the checks' timings assume it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_attack(name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """Attack contract (``ue_bench.attack``): on the tiny train split with the tiny-rn surrogate, the
    protection is a :class:`Protection` passing every harness check (delta shape, finite, integer,
    L∞ ≤ eps after rounding, triggers that round-trip through the tokenizer), publishes to uint8 images
    of the input's shape, is the same bit for bit for the same seed, the input split is untouched, and
    its ``--dry-run`` estimates are well formed (``cost_steps`` None or finite and not negative,
    ``clean_surrogate_epochs`` an int, not negative)."""
    rec = _Recorder(f"attacks:{name}")
    with _one_thread():
        state: dict[str, Any] = {}

        def build() -> None:
            state["attack"] = attack = tiny("attacks", name, params)
            # as the harness plans it: an attack that uses no surrogate is given none
            state["surrogate"] = tiny("victims", "tiny-rn") if attack.uses_surrogate else None
            state["train"] = tiny_data().train
            state["before"] = state["train"].fingerprint()

        if not rec.run("builds", build):
            return rec.checks
        attack, surrogate, train = state["attack"], state["surrogate"], state["train"]

        def protect() -> None:
            state["p"] = attack.protect(train, surrogate, SEED, torch.device("cpu"))

        if not rec.run("protects", protect):
            return rec.checks
        prot = state["p"]
        tokenizer = surrogate.tokenizer() if surrogate is not None else None
        for check, fn in CHECKS:
            if not rec.run(check, lambda fn=fn: fn(prot, train, attack.budget(), tokenizer)):
                return rec.checks
        if not rec.run("triggers-checkable", lambda: None if prot.triggers is None or surrogate is not None else
                       "the attack returns triggers but uses_surrogate is False; the harness checks triggers with "
                       "the surrogate's tokenizer, so run and protect refuse it (set uses_surrogate = True)"):
            return rec.checks

        def publishes() -> str | None:
            out = publish(train, prot)
            if out.images.dtype != np.uint8 or out.images.shape != train.images.shape:
                return f"published images {out.images.dtype} {out.images.shape}, expected uint8 {train.images.shape}"
            return None

        rec.run("publishes", publishes)
        rec.run("input-untouched", lambda: None if PairSplit(np.array(train.images), train.captions).fingerprint()
                == state["before"] else "the attack modified the clean split it was given")

        def deterministic() -> str | None:
            again = tiny("attacks", name, params).protect(train, surrogate, SEED, torch.device("cpu"))
            if not isinstance(again, Protection) or again.fingerprint() != prot.fingerprint():
                return f"a second run with seed {SEED} gave a different protection (expected the same bits)"
            return None

        rec.run("deterministic", deterministic)

        def costs() -> str | None:
            steps, epochs = attack.cost_steps(len(train)), attack.clean_surrogate_epochs()
            if steps is not None and not (isinstance(steps, (int, float)) and math.isfinite(steps) and steps >= 0):
                return f"cost_steps gave {steps!r}, expected None or finite steps >= 0"
            if not (isinstance(epochs, int) and epochs >= 0):
                return f"clean_surrogate_epochs gave {epochs!r}, expected an int >= 0"
            return None

        rec.run("cost-estimates", costs)
    return rec.checks


def _tiny_model(resolution: int) -> torch.nn.Module:
    """A tiny-rn model at ``resolution`` px, initialised from :data:`SEED`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return tiny("victims", "tiny-rn").create_model(resolution)


def check_defense(name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """Defense contract (``ue_bench.defense``): ``transform`` keeps uint8 ``[N, H, W, 3]`` and one caption
    list per image, leaves its input untouched and is deterministic per seed; a ``batch_loss`` gives a
    finite scalar with a gradient on a tiny-rn batch; a ``selection`` passes
    :func:`~ue_bench.defense.selection_problem`, holds the split's rows its indices name, leaves its input
    untouched and is deterministic per seed, ``train_share`` counts the pairs it trains on, and the
    ``--dry-run`` estimates (``train_cost``, ``transform_seconds``) are finite and not negative."""
    rec = _Recorder(f"defenses:{name}")
    with _one_thread():
        state: dict[str, Any] = {}

        def build() -> None:
            state["defense"] = tiny("defenses", name, params)
            state["train"] = tiny_data().train

        if not rec.run("builds", build):
            return rec.checks
        defense, train = state["defense"], state["train"]
        before = train.fingerprint()

        def transform() -> str | None:
            out = defense.transform(train, SEED)
            state["out"] = out
            if not isinstance(out, PairSplit):
                return f"transform returned {type(out).__name__}, expected a PairSplit"
            if out.images.shape != train.images.shape or out.images.dtype != np.uint8:
                return f"images {out.images.dtype} {out.images.shape}, expected uint8 {train.images.shape}"
            return None

        if rec.run("transform-shape", transform):
            rec.run("input-untouched", lambda: None if PairSplit(np.array(train.images), train.captions)
                    .fingerprint() == before else "transform modified the split it was given")
            rec.run("deterministic", lambda: None if defense.transform(train, SEED).fingerprint()
                    == state["out"].fingerprint() else f"a second transform with seed {SEED} differs")

        def batch_loss() -> str | None:
            fn = defense.batch_loss(SEED, total_steps=10)
            if fn is None:
                return None
            model = _tiny_model(train.resolution)
            tokens = tiny("victims", "tiny-rn").tokenizer()([c[0] for c in train.captions[:8]])
            unit = torch.from_numpy(np.array(train.images[:8])).permute(0, 3, 1, 2).float() / 255.0
            loss = fn(model, unit, tokens, 0)
            if not (isinstance(loss, torch.Tensor) and loss.ndim == 0 and torch.isfinite(loss)):
                return f"batch_loss gave {loss!r}, expected a finite scalar tensor"
            loss.backward()
            if not any(p.grad is not None for p in model.parameters()):
                return "batch_loss has no gradient w.r.t. the model's parameters"
            return None

        rec.run("batch-loss", batch_loss)

        def selection() -> str | None:
            first = defense.selection(train, SEED)
            share, left = defense.train_share(train, SEED), len(train) if first is None else len(first.train)
            if share != left:
                return f"train_share says {share} training pairs, selection leaves {left}"
            if first is None:
                return None
            problem = selection_problem(first, train)
            if problem:
                return problem
            if PairSplit(np.array(train.images), train.captions).fingerprint() != before:
                return "selection modified the split it was given"
            again = defense.selection(train, SEED)
            if (again.validation.fingerprint(), again.train.fingerprint()) != (
                    first.validation.fingerprint(), first.train.fingerprint()):
                return f"a second selection with seed {SEED} holds out other pairs"
            for name, part, idx in (("train", first.train, first.train_index),
                                    ("validation", first.validation, first.validation_index)):
                if part.fingerprint() != train.subset(np.asarray(idx)).fingerprint():
                    return f"selection {name} is not the split's rows {name}_index"
            return None

        rec.run("selection", selection)

        def costs() -> str | None:
            train_cost, seconds = defense.train_cost(), defense.transform_seconds(train)
            if not (isinstance(train_cost, (int, float)) and math.isfinite(train_cost) and train_cost > 0):
                return f"train_cost gave {train_cost!r}, expected a positive finite factor"
            if seconds is not None and not (isinstance(seconds, (int, float)) and math.isfinite(seconds)
                                            and seconds >= 0):
                return f"transform_seconds gave {seconds!r}, expected None or finite seconds >= 0"
            return None

        rec.run("cost-estimates", costs)
    return rec.checks


def check_victim(name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """Victim contract (``ue_bench.victim``): the model builds at the data's resolution, the tokenizer's
    trigger round trip works, two training steps give a finite loss, and retrieval evaluation gives
    every metric."""
    rec = _Recorder(f"victims:{name}")
    with _one_thread():
        state: dict[str, Any] = {}
        data = tiny_data()
        train = data.train.subset(np.arange(8))

        def build() -> None:
            state["victim"] = victim = tiny("victims", name, params)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                state["model"] = victim.create_model(train.resolution)
            state["tokenizer"] = victim.tokenizer()

        if not rec.run("builds", build):
            return rec.checks
        victim, model, tok = state["victim"], state["model"], state["tokenizer"]

        def tokenizer() -> str | None:
            ids = tok(["a red circle"])
            if not (isinstance(ids, torch.Tensor) and ids.dtype == torch.long and ids.ndim == 2):
                return f"tokenizer gave {type(ids).__name__}, expected an int64 [B, L] tensor"
            text = tok.decode(tok.encode("a red circle")).strip()
            return None if text == "a red circle" else f"decode(encode('a red circle')) gave {text!r}"

        rec.run("tokenizer", tokenizer)

        def trains() -> str | None:
            losses = train_clip(model, tok, train, epochs=1, batch_size=4, lr=1e-4, weight_decay=0.0, warmup=0.0,
                                seed=SEED, device=torch.device("cpu"), desc=f"check {name}",
                                augment=victim.params.augment)
            return None if all(math.isfinite(x) for x in losses) else f"training losses {losses}, expected finite"

        rec.run("trains", trains)

        def evaluates() -> str | None:
            from ue_bench.engine.evaluate import evaluate_retrieval
            metrics = evaluate_retrieval(model, tok, data.test, torch.device("cpu"))
            missing = [k for k in METRIC_KEYS if not math.isfinite(metrics.get(k, math.nan))]
            return f"metrics {missing} missing or not finite" if missing else None

        rec.run("evaluates", evaluates)
    return rec.checks


def check_dataset(name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """Dataset contract (``ue_bench.dataset``): the plugin's ``example`` loads into uint8
    ``[N, H, W, 3]`` splits with H = W, a non-empty test split, non-empty caption strings per image, and
    loads the same bytes twice."""
    rec = _Recorder(f"datasets:{name}")
    with tempfile.TemporaryDirectory(prefix="ue-bench-check-") as folder:
        imports = ImportStage(Path(folder) / "imports")
        state: dict[str, Any] = {}

        def build() -> None:
            cls = registry.get("datasets", name)
            state["params"] = {**cls.example(Path(folder)), **(params or {})}
            state["data"] = registry.create("datasets", name, state["params"]).load(imports)

        if not rec.run("loads", build):
            return rec.checks
        data = state["data"]

        def splits() -> str | None:
            for split_name, split in (("train", data.train), ("test", data.test)):
                img = split.images
                if img.dtype != np.uint8 or img.ndim != 4 or img.shape[-1] != 3 or img.shape[1] != img.shape[2]:
                    return f"{split_name} images {img.dtype} {img.shape}, expected uint8 [N, R, R, 3]"
                bad = next((i for i, c in enumerate(split.captions)
                            if not c or not all(isinstance(t, str) and t.strip() for t in c)), None)
                if bad is not None:
                    return f"{split_name} image {bad} has captions {split.captions[bad]!r}, expected non-empty strings"
            if data.train.resolution != data.test.resolution:
                return f"train at {data.train.resolution} px, test at {data.test.resolution} px, expected one resolution"
            return None if len(data.test) and len(data.train) else "empty train or test split"

        rec.run("splits", splits)
        rec.run("deterministic", lambda: None if registry.create("datasets", name, state["params"]).load(imports)
                .fingerprint() == data.fingerprint() else "a second load gave different bytes")
    return rec.checks


def check_report(name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """Report contract (``ue_bench.report``): every format the plugin lists renders from the fixture run
    (:mod:`ue_bench.authoring.fixture_run`) to the type that format returns (str, or bytes for ``png``)."""
    rec = _Recorder(f"reports:{name}")
    with tempfile.TemporaryDirectory(prefix="ue-bench-check-") as folder:
        fixture_run.write(Path(folder))
        run = load_run(Path(folder))
        state: dict[str, Any] = {}
        if not rec.run("builds", lambda: state.setdefault("r", tiny("reports", name, params)) and None):
            return rec.checks
        report = state["r"]
        for fmt in report.formats:

            def render(fmt=fmt) -> str | None:
                out = report.render(run, fmt)
                want = RETURNS[fmt]
                return None if isinstance(out, want) else f"returned {type(out).__name__}, expected {want.__name__}"

            rec.run(f"renders-{fmt}", render)
    return rec.checks


CHECKERS: dict[str, Callable[..., list[Check]]] = {
    "attacks": check_attack, "defenses": check_defense, "victims": check_victim, "datasets": check_dataset,
    "reports": check_report}


def check_plugin(family: str, name: str, params: dict[str, Any] | None = None) -> list[Check]:
    """The checks of ``family`` on plugin ``name`` (a plugin that does not load fails ``loads``)."""
    try:
        registry.get(family, name)
    except Exception as exc:
        return [Check(f"{family}:{name}", "loads", False, str(exc))]
    return CHECKERS[family](name, params)

