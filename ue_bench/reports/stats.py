"""Mean and 95 % confidence interval over seeds, the one summary every report uses.

Method: for the n per-seed values x_1..x_n of one quantity, the report shows the sample mean and the
Student-t interval mean ± t_{0.975, n−1} · s/√n, with s the sample standard deviation (ddof = 1). Seeds
are few (typically 3), where the normal quantile 1.96 would understate the interval by more than half;
the t interval is exact for normally distributed per-seed values and what most ML papers report. With
n < 2 there is no estimate of spread, so no interval is shown, only n.

The t quantile is computed here rather than taken from scipy (not otherwise a dependency): for integer
degrees of freedom ν, P(|T| < t) has the closed form of Abramowitz & Stegun 26.7.3/26.7.4 in
θ = atan(t/√ν), which bisection inverts to full double precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable


def _two_sided_cdf(t: float, nu: int) -> float:
    """P(|T| < t) for Student's t with ``nu`` degrees of freedom (A&S 26.7.3 odd ν, 26.7.4 even ν)."""
    theta = math.atan(t / math.sqrt(nu))
    s, c = math.sin(theta), math.cos(theta)
    if nu % 2:
        term, total = c, c if nu > 1 else 0.0
        for k in range(3, nu - 1, 2):
            term *= (k - 1) / k * c * c
            total += term
        return 2 / math.pi * (theta + s * total)
    term = total = 1.0
    for k in range(2, nu - 1, 2):
        term *= (k - 1) / k * c * c
        total += term
    return s * total


@lru_cache(maxsize=None)
def t_quantile_975(nu: int) -> float:
    """t_{0.975, ν}: the half-width multiplier of a two-sided 95 % interval (12.706 for ν = 1)."""
    if nu < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {nu}")
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if _two_sided_cdf(mid, nu) < 0.95:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Summary:
    """Mean over seeds, half-width of its 95 % interval (NaN when n < 2) and the number of seeds."""

    mean: float
    half: float
    n: int

    @property
    def lo(self) -> float:
        """Lower end of the interval; the mean itself when there is no interval (n < 2)."""
        return self.mean if math.isnan(self.half) else self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean if math.isnan(self.half) else self.mean + self.half


def summarise(values: Iterable[float]) -> Summary:
    """Student-t summary of per-seed values; NaN values (missing metrics) are left out."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Summary(math.nan, math.nan, 0)
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(mean, math.nan, n)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return Summary(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def format_summary(s: Summary, digits: int = 3) -> str:
    """``mean ± half`` with ``digits`` decimals; ``mean (n=1)`` without an interval; ``—`` when empty."""
    if s.n == 0 or math.isnan(s.mean):
        return "—"
    if math.isinf(s.mean):
        return "∞"
    if s.n < 2:
        return f"{s.mean:.{digits}f} (n={s.n})"
    return f"{s.mean:.{digits}f} ± {s.half:.{digits}f}"
