"""The result schema, written once: a cell's labels, its metrics (display name, digits, direction) and
the columns of ``results.csv``. The harness writes cells with these names and the reports read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A reported quantity: its key in a cell's ``metrics``, a display name, the digits shown and
    whether a higher value means better *retrieval* (protections want it low)."""

    key: str
    name: str
    digits: int = 3
    higher_is_better: bool = True


#: Recall cut-offs k of R@k.
KS = (1, 5, 10)
#: What ``ue_bench.engine.metrics.retrieval_metrics`` returns, in this order.
METRICS = (
    *(Metric(f"{d}_r{k}", f"{d} R@{k}") for d in ("i2t", "t2i") for k in KS),
    Metric("i2t_medr", "i2t medR", 1, False),
    Metric("t2i_medr", "t2i medR", 1, False),
    Metric("mean_recall", "mean recall"),
)
#: Derived by the reports from the cells: fraction of the clean baseline (seed-paired) and multiple of
#: random guessing.
DERIVED = (Metric("frac_clean", "× clean", 2), Metric("x_random", "× random", 2))
BY_KEY = {m.key: m for m in (*METRICS, *DERIVED)}
METRIC_KEYS = tuple(m.key for m in METRICS)

#: The axes of the matrix, as a cell's ``labels`` holds them.
LABELS = ("dataset", "attack", "surrogate", "defense", "victim", "seed", "poison_ratio")
#: A protection's identity in the reports: its artifact key minus the seed the reports average over.
PROTECTION = ("dataset", "attack", "surrogate", "poison_ratio")
#: The ``surrogate`` label of a cell whose attack uses no model.
NO_SURROGATE = "none"
#: Imperceptibility and cost fields of a cell's ``protection`` record (psnr/ssim may be None).
PROTECTION_FIELDS = ("linf_mean", "l2_mean", "psnr_mean", "ssim_mean", "protect_s")
#: Flags of a cell's ``baseline`` record: its attack is the clean baseline, its defense the no-defense one.
BASELINE_FLAGS = ("clean_attack", "baseline_defense")

#: Beside each metric ``k`` of ``results.csv``: ``k_peak``, its best value over the cell's learning curve on the
#: clean test split (highest recall, lowest median rank; the final epoch is one of the curve's points), and
#: ``k_peak_epoch``, the earliest epoch that reached it; blank for a cell without a curve. The peak is
#: chosen on the test split itself, so it bounds from above what a trainer who stops early can get.
PEAK_COLUMNS = tuple(c for k in METRIC_KEYS for c in (f"{k}_peak", f"{k}_peak_epoch"))

#: The columns of ``results.csv``, one row per cell of a command.
RESULT_COLUMNS = (*LABELS, *(c for k in METRIC_KEYS for c in (k, f"{k}_peak", f"{k}_peak_epoch")),
                  *(f"random_{k}" for k in METRIC_KEYS), "status", "wall_s", "cell_id", "error")
