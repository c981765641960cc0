#!/bin/sh
# the full-resolution path (import cache, lift): $1 = out dir, $2 = cache dir
UE="${UE:-.venv/bin/ue-bench}"
exec nice $UE run --preset tiny --threads 1 --dataset folder:/tmp/layout-photos,resolution=32,publish=original,test_fraction=0.25 \
  --attacks none,mem,random --defenses none,jpeg --seeds 0 --out "$1" --cache "$2"
