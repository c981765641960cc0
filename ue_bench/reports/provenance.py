"""Per-cell provenance, shown on demand: every cell of the run with its configuration, seed, package
versions, device, hashes and wall time, as collapsed ``<details>`` blocks (no script needed), so any
number in the report can be traced back to the JSON it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import formats
from ue_bench import Report, RunResults, cell_title



def _pre(obj: Any) -> str:
    return f"<pre>{formats.esc(json.dumps(obj, indent=1, sort_keys=True, default=str))}</pre>"


def cell_details(cell: dict[str, Any], source: Path) -> str:
    """A collapsed block naming the cell; open, it lists the file it was read from and the provenance
    fields, then the whole record."""
    prov = cell.get("provenance") or {}
    summary = f"{formats.esc(cell_title(cell['labels']))} · {cell['status']} · <code>{formats.esc(cell['cell_id'])}</code>"
    rows = [("file", str(source)), ("device", prov.get("device", formats.DASH)),
            ("code version", prov.get("code_version", formats.DASH)),
            ("python", prov.get("python", formats.DASH)), ("platform", prov.get("platform", formats.DASH)),
            ("CPU kernels", prov.get("cpu_capability", formats.DASH)),
            ("wall time", f"{cell['wall_s']:.1f} s" if "wall_s" in cell else formats.DASH)]
    body = "".join(f"<tr><th>{formats.esc(k)}</th><td>{formats.esc(v)}</td></tr>" for k, v in rows)
    body += "".join(f"<tr><th>{k}</th><td>{_pre(cell[k])}</td></tr>" for k in
                    ("config", "hashes") if k in cell)
    body += f"<tr><th>packages</th><td>{_pre(prov.get('packages', {}))}</td></tr>"
    if "error" in cell:
        body += f"<tr><th>error</th><td>{_pre(cell['error'])}{_pre(cell.get('traceback', ''))}</td></tr>"
    return (f"<details class='cell' id='cell-{formats.esc(cell['cell_id'])}'><summary>{summary.replace('←', '&larr;')}"
            f"</summary><table class='prov'>{body}</table><details><summary>full record</summary>{_pre(cell)}"
            f"</details></details>")


class Cells(Report):
    """Every cell with its provenance (config, seeds, package versions, device, hashes, wall time)."""

    formats = ("md", "csv", "html")
    title = "Cells and provenance"
    order = 60

    def render(self, run: RunResults, fmt: str) -> str:
        frame = run.frame.sort_values(["status", "defense", "attack", "surrogate", "victim", "poison_ratio", "seed"])
        if fmt == "csv":
            return frame.to_csv(index=False)
        failed = run.failed
        if fmt == "md":
            text = f"## {self.title}\n\n{len(run.frame)} cells, {len(failed)} failed (left out of every table)."
            if len(failed):
                cols = ["attack", "surrogate", "defense", "victim", "seed", "poison_ratio", "cell_id", "error"]
                text += "\n\n" + formats.markdown(failed[cols].astype(str).reset_index(drop=True))
            return (text + "\n\nProvenance of every cell: `cells/<cell_id>.json` of its run directory (the `source`"
                    " column of `cells.csv`) or `report.html`.\n")
        blocks = "".join(cell_details(run.cells[c], run.sources[c]) for c in frame["cell_id"])
        return (f"<section id='cells'><h2>{self.title}</h2><p class='note'>{len(run.frame)} cells, "
                f"{len(failed)} failed (left out of every table). Open a cell for its provenance.</p>{blocks}</section>")
