"""Compare the before and after outputs of compare.sh: cell ids, metrics, protection hashes and stage
keys of every cell, and the bytes of every file of the protect copy (its manifest without times and
paths). Writes cells.csv and protect.json beside this script; exit 1 on any difference."""
import hashlib, json, sys
from pathlib import Path

before, after, here = Path(sys.argv[1]), Path(sys.argv[2]), Path(__file__).parent
VOLATILE = {"wall_s", "provenance", "train", "protection", "publication"}  # times, paths; compared field by field below


def cells(root):
    out = {}
    for run in ("run-folder", "run-synthetic"):
        for p in sorted((root / run / "cells").glob("*.json")):
            c = json.loads(p.read_text())
            out[(run, c["cell_id"])] = c
    return out


b, a = cells(before), cells(after)
rows, same = [], set(b) == set(a)
for key in sorted(b):
    cb, ca = b[key], a.get(key, {})
    eq = {
        "cell_id": key in a,
        "config": cb["config"] == ca.get("config"),
        "metrics": cb["metrics"] == ca.get("metrics"),
        "hashes": cb["hashes"] == ca.get("hashes"),
        "protection_key_and_hash": {k: cb["protection"].get(k) for k in ("key", "protection_sha256")} ==
                                   {k: ca.get("protection", {}).get(k) for k in ("key", "protection_sha256")},
        "train_key_and_losses": (cb["train"]["key"], cb["train"].get("loss_per_epoch")) ==
                                (ca.get("train", {}).get("key"), ca.get("train", {}).get("loss_per_epoch")),
    }
    same &= all(eq.values())
    rows.append({"run": key[0], "cell_id": key[1], "attack": cb["labels"]["attack"],
                 "mean_recall": cb["metrics"]["mean_recall"], "i2t_r1": cb["metrics"]["i2t_r1"],
                 "protection_sha256": cb["protection"].get("protection_sha256"), "published_train": cb["hashes"]["published_train"][:16],
                 "publication_after": json.dumps(ca.get("publication")), **{f"equal_{k}": v for k, v in eq.items()}})
with open(here / "cells.csv", "w") as fh:
    fh.write(",".join(rows[0]) + "\n")
    for r in rows:
        fh.write(",".join(str(v).replace(",", ";") for v in r.values()) + "\n")


def files(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


fb, fa = files(before / "protect-folder"), files(after / "protect-folder")
mb, ma = (json.loads((r / "protect-folder" / "manifest.json").read_text()) for r in (before, after))
drop = lambda m: {k: v for k, v in m.items() if k not in ("created", "generation_s", "timing", "out", "cache")}
protect = {"files": len(fb), "files_equal": fb == fa, "differing_files": sorted(k for k in fb if fb[k] != fa.get(k)),
           "manifest_keys_differing": sorted(k for k in set(mb) | set(ma) if drop(mb).get(k) != drop(ma).get(k)),
           "lift_before": mb.get("lift"), "lift_after": ma.get("lift")}
(here / "protect.json").write_text(json.dumps(protect, indent=1) + "\n")
print(json.dumps({"cells": len(b), "cells_equal": same, **protect}, indent=1))
sys.exit(0 if same and protect["files_equal"] else 1)
