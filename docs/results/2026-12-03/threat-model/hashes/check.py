"""The threat-model issue's acceptance check on this run's cells: `python check.py > check.txt`."""
import glob
import json

cells = [json.load(open(f)) for f in sorted(glob.glob("cells/*.json"))]
print("attack victim seed victim_init_sha256 surrogate_init_sha256 differ")
ok = True
for c in sorted(cells, key=lambda c: (c["labels"]["attack"], c["labels"]["victim"], c["labels"]["seed"])):
    h, lab = c["hashes"], c["labels"]
    differ = h["victim_init_sha256"] != h["surrogate_init_sha256"]
    ok &= differ
    print(lab["attack"].split(":")[0], lab["victim"].split(":")[0], lab["seed"], h["victim_init_sha256"][:16],
          h["surrogate_init_sha256"][:16], differ)
by = {}
for c in cells:
    by.setdefault((c["labels"]["attack"], c["labels"]["victim"]), {})[c["labels"]["seed"]] = c["hashes"]["victim_init_sha256"]
seeds_differ = all(len(set(v.values())) == len(v) for v in by.values())
print(f"{len(cells)} cells; every victim init differs from its surrogate's: {ok}; "
      f"victim inits differ between seeds: {seeds_differ}")
