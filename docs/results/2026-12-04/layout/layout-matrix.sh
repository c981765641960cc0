#!/bin/sh
# the before/after matrix of issue 26: $1 = out dir, $2 = cache dir
UE="${UE:-.venv/bin/ue-bench}"
exec nice $UE run --preset tiny --threads 1 --attacks none,mem,em,random,tap,ar,synthetic,mem-eot,mem-patterns \
  --defenses none,jpeg,ueraser --seeds 0 --out "$1" --cache "$2"
