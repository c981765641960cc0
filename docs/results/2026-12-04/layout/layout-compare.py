"""Side by side: every cell's metrics and protection sha256 of two run directories (issue 26)."""
import json, sys
from pathlib import Path

def cells(run):
    out = {}
    for p in sorted(Path(run, "cells").glob("*.json")):
        c = json.loads(p.read_text())
        lab = c["labels"]
        key = f"{lab['attack'].split(':')[0]:<13} {lab['defense']:<8}"
        out[c["cell_id"]] = (key, c.get("metrics", {}), (c.get("protection") or {}).get("protection_sha256"),
                             c["status"], (c.get("hashes") or {}))
    return out

a, b = cells(sys.argv[1]), cells(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
same = True
print(f"{'cell':<17} {'attack':<13} {'defense':<8} {'i2t_r1 b/a':<12} {'t2i_r1 b/a':<12} {'mean_r b/a':<14} protection_sha256 (before = after)")
for cid, (key, m, sha, st, h) in sorted(a.items(), key=lambda kv: kv[1][0]):
    key2, m2, sha2, st2, h2 = b[cid]
    eq = m == m2 and sha == sha2 and st == st2 == "ok" and h == h2
    same &= eq
    f = lambda k: f"{m.get(k, float('nan')):.4f}/{m2.get(k, float('nan')):.4f}"
    print(f"{cid:<17} {key} {f('i2t_r1'):<12} {f('t2i_r1'):<12} {f('mean_recall') if 'mean_recall' in m else '':<14} "
          f"{(sha or '-')[:16]}{'' if sha == sha2 else ' != ' + str(sha2)[:16]} {'identical' if eq else 'DIFFERENT'}")
print(f"{len(a)} cells; every metric, protection sha256 and stage key {'identical' if same else 'NOT identical'}")
sys.exit(0 if same else 1)
