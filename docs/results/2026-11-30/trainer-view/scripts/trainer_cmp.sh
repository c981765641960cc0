#!/bin/bash
# open_clip's trainer with its default view vs ue-bench's tiny-rn:augment=openclip, on the same exports (seed 0)
set -euo pipefail
R=/work/wt-augment/docs/results/2026-11-30/trainer-view/open-clip-trainer
export PATH=/work/wt-augment/.venv/bin:$PATH OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=
for attack in ${ATTACKS:-mem none}; do
  E=/tmp/aug/export-$attack; rm -rf $E; mkdir -p $R/$attack
  ue-bench protect --attack $attack --dataset synthetic --surrogate tiny-rn --victim tiny-rn:augment=openclip \
    --seed 0 --device cpu --cache /work/cache-augment --out $E 2> $R/$attack/protect.log
  cmd=$(tail -1 $R/$attack/protect.log)
  echo "$cmd" > $R/$attack/command.sh
  cp $E/manifest.json $R/$attack/manifest.json
  ( bash -c "$cmd" ) > $R/$attack/trainer.log 2>&1
  ck=$(ls $E/logs/*/checkpoints/epoch_*.pt | sort -V | tail -1)
  cp $E/logs/*/out.log $R/$attack/open_clip_out.log; cp $E/logs/*/params.txt $R/$attack/ 2>/dev/null || true
  cp $E/logs/*/checkpoints/results.jsonl $R/$attack/ 2>/dev/null || cp $E/logs/*/results.jsonl $R/$attack/ 2>/dev/null || true
  python "$(dirname "$0")"/eval_ckpt.py $ck $R/$attack/ue_bench_eval.json
done
