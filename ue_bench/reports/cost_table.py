"""Imperceptibility and cost of each protection: mean L∞ and L2 of the delta (pixel units, 0..255),
PSNR and SSIM of protected vs clean images (``imperceptibility.py``; ``—`` where the run did not record
them), generation time and device. Mean ± 95 % interval over seeds, one value per protection artifact."""

from __future__ import annotations

import pandas as pd

from . import formats
from ue_bench import Report, RunResults

from .tables import costs

COLUMNS = {"linf_mean": ("L∞ (/255)", 1), "l2_mean": ("L2 (pixel units)", 1), "psnr_mean": ("PSNR (dB)", 2),
           "ssim_mean": ("SSIM", 3), "protect_s": ("generation (s)", 1)}
NOTE = ("Per protected image, averaged over the poisoned subset, then mean ± 95 % interval over seeds. "
        "L∞ and L2 of the delta in pixel units (0..255; L∞ 8 = 8/255). PSNR/SSIM of protected vs clean image "
        "(SSIM: Gaussian window σ = 1.5, Wang et al. 2004); — where the run did not record them.")


def display(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(_r=-df["poison_ratio"]).sort_values(["dataset", "attack", "surrogate", "_r"])
    out = pd.DataFrame({"attack": df["attack"], "surrogate": df["surrogate"],
                        "poison ratio": df["poison_ratio"].map(lambda r: f"{r:g}")})
    if df["dataset"].nunique() > 1:
        out.insert(0, "dataset", df["dataset"])
    for col, (name, digits) in COLUMNS.items():
        out[name] = formats.values(df, col, digits)
    out["device"] = df["device"]
    return out.reset_index(drop=True)


class CostTable(Report):
    """Imperceptibility and cost: L∞, L2, PSNR, SSIM of the delta, generation time and device."""

    formats = ("md", "csv", "latex", "html")
    title = "Imperceptibility and cost"
    order = 50

    def render(self, run: RunResults, fmt: str) -> str:
        df = costs(run)
        return formats.table_section(fmt, df, None if df.empty else display(df), title=self.title, note=NOTE,
                                     anchor="cost", empty="no protections in this run")
