#!/usr/bin/env bash
# One side of the before/after comparison: a tiny matrix on a 40-photo folder (publish=original) and
# on the synthetic set, and a protect copy of the folder; run with CODE=<worktree> OUT=<folder>.
# The photo folder is made by make_photos.py (40 noisy colour photos of 40-89 px, two captions each).
set -euo pipefail
: "${CODE:?worktree whose ue_bench to run}" "${OUT:?output folder}" "${PHOTOS:=/tmp/liftcmp/photos}"
PY=/work/venvs/lift/bin/python
export PYTHONPATH="$CODE" OMP_NUM_THREADS=1
cd "$OUT"
ATT="none,random,em:pgd_steps=2,outer_iters=1,surrogate_steps=2,batch_size=16"
VIC="tiny-rn:epochs=2,batch_size=16"
$PY -m ue_bench.cli run --preset tiny --dataset "folder:path=$PHOTOS,resolution=32,publish=original" \
    --attacks "$ATT" --victims "$VIC" --threads 1 --out "$OUT/run-folder" --cache "$OUT/cache"
$PY -m ue_bench.cli run --preset tiny --dataset synthetic \
    --attacks "$ATT" --victims "$VIC" --threads 1 --out "$OUT/run-synthetic" --cache "$OUT/cache"
$PY -m ue_bench.cli protect --attack random --dataset "folder:path=$PHOTOS,resolution=32" \
    --threads 1 --out "$OUT/protect-folder" --cache "$OUT/cache"
