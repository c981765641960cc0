#!/bin/bash
# #19 seeds 1 and 2, sequential, one thread; same commands as seed0/eot-seed0 with today's labels
set -x
UE=/work/main/.venv/bin/ue-bench
cd /work/runs-tv
for s in 1 2; do
  $UE run --attacks none,mem --surrogates tiny-rn:augment=none --victims tiny-rn:augment=none,tiny-rn --seeds $s --threads 1 --out /work/runs-tv/seed$s --cache /work/cache-augment > seed$s.log 2>&1
done
for s in 1 2; do
  $UE run --attacks mem-eot --surrogates tiny-rn:augment=none --victims tiny-rn --seeds $s --threads 1 --out /work/runs-tv/eot-seed$s --cache /work/cache-augment > eot-seed$s.log 2>&1
done
echo done
