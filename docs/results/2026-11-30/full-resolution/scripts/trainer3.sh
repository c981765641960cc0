#!/bin/bash
# #17: the centre view at trainer seeds 1 and 2, after trainer2.sh
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES= PATH=/work/main/.venv/bin:$PATH
run() {  # attack view seed
  local a=$1 v=$2 s=$3 extra=""
  [ "$v" = centre ] && extra="--aug-cfg use_timm=True scale='(1.0,1.0)' ratio='(1.0,1.0)'"
  cd /work/fr/copy-$a || return
  rm -rf logs/$v-s$s
  cmd=$(python -c "import json;print(json.load(open('manifest.json'))['open_clip_command'])")
  cmd="${cmd/--seed 0/--seed $s} --name $v-s$s $extra"
  echo "$cmd" > /work/fr/cmd-$a-$v-s$s.sh
  /usr/bin/time -v bash -c "$cmd" > /work/fr/trainer-$a-$v-s$s.log 2>&1
}
while [ ! -f /work/fr/trainer.done ]; do sleep 15; done
( run mem centre 1; run mem centre 2 ) & ( run none centre 1; run none centre 2 ) & wait
echo done > /work/fr/trainer3.done
