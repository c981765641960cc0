#!/bin/bash
# #19: mem-eot at seeds 1 and 2 under open_clip's view (the eot-seed0 command with today's labels), in parallel
UE=/work/main/.venv/bin/ue-bench
cd /work/runs-tv
for s in 1 2; do
  $UE run --attacks mem-eot --surrogates tiny-rn:augment=none --victims tiny-rn --seeds $s --threads 1 \
    --out /work/runs-tv/eot-seed$s --cache /work/cache-augment > eot-seed$s.log 2>&1 &
done
wait
