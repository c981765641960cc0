#!/bin/bash
# #17: open_clip's own trainer on the full-resolution copies (clean and MEM): its default view, and the
# centre-square view (timm RandomResizedCrop scale 1, ratio 1 = resize + centre crop), trainer seeds 0-2
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES= PATH=/work/main/.venv/bin:$PATH
while [ ! -f /work/fr/copy-none/manifest.json ]; do sleep 20; done
run() {  # attack view seed
  local a=$1 v=$2 s=$3 extra=""
  [ "$v" = centre ] && extra="--aug-cfg use_timm=True scale='(1.0,1.0)' ratio='(1.0,1.0)'"
  cd /work/fr/copy-$a || return
  [ -f logs/$v-s$s/out.log ] && grep -q "Eval Epoch: 8" logs/$v-s$s/out.log && return
  rm -rf logs/$v-s$s
  cmd=$(python -c "import json;print(json.load(open('manifest.json'))['open_clip_command'])")
  cmd="${cmd/--seed 0/--seed $s} --name $v-s$s $extra"
  echo "$cmd" > /work/fr/cmd-$a-$v-s$s.sh
  /usr/bin/time -v bash -c "$cmd" > /work/fr/trainer-$a-$v-s$s.log 2>&1
}
for s in 0; do for v in default centre; do for a in mem none; do run $a $v $s; done; done; done
for s in 1 2; do for a in mem none; do run $a default $s; done; done
for s in 1 2; do for a in mem none; do run $a centre $s; done; done
echo done > /work/fr/trainer.done
