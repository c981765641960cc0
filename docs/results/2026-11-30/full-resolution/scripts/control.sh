#!/bin/bash
# #17 controls: (A) ue-bench's own victims on the trainer's view of the full-size copies (publish=original), seed 0;
# (B) open_clip's trainer, centre view, trainer seed 1, on the 32 px import-resolution copies (no lift)
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES= PATH=/work/main/.venv/bin:$PATH
cd /work/fr
( ue-bench run --dataset folder:/work/photos/train,test_path=/work/photos/test,resolution=32,publish=original \
    --attacks none,mem --victims tiny-rn:augment=none,tiny-rn --seeds 0 --threads 1 --cache /work/fr/cache \
    --out /work/fr/run-publish-original > run-publish-original.log 2>&1 ) &
( for a in mem none; do
    rm -rf /work/fr/small-$a
    ue-bench protect --attack $a --dataset folder:/work/photos/train,test_path=/work/photos/test,resolution=32 \
      --import-resolution --seed 0 --device cpu --cache /work/fr/cache --out /work/fr/small-$a > protect-small-$a.log 2>&1
  done
  for a in mem none; do
    cd /work/fr/small-$a
    cmd=$(python -c "import json;print(json.load(open('manifest.json'))['open_clip_command'])")
    cmd="${cmd/--seed 0/--seed 1} --name centre-s1 --aug-cfg use_timm=True scale='(1.0,1.0)' ratio='(1.0,1.0)'"
    echo "$cmd" > /work/fr/cmd-small-$a-centre-s1.sh
    /usr/bin/time -v bash -c "$cmd" > /work/fr/trainer-small-$a-centre-s1.log 2>&1
  done ) &
wait
echo done > /work/fr/control.done
