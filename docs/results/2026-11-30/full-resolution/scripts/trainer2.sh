#!/bin/bash
# #17 trainer runs, two workers: A after the running mem/default/s0, B once #19's seed-2 run and the RSS benchmark end
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
workerA() {
  while pgrep -f "name default-s0" > /dev/null; do sleep 15; done
  run none default 0; run mem centre 0; run mem default 1; run mem default 2
}
workerB() {
  while pgrep -f "ue-bench run --attacks none,mem" > /dev/null || pgrep -f "benchmarks/rss.py" > /dev/null; do sleep 15; done
  run none centre 0; run none default 1; run none default 2
}
workerA & workerB & wait
echo done > /work/fr/trainer.done
