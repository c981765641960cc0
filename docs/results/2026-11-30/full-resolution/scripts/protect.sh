#!/bin/bash
# #17: full-resolution copies of the photo set (clean and MEM), seed 0
export OMP_NUM_THREADS=1
UE=/work/main/.venv/bin/ue-bench
cd /work/fr
for a in mem none; do
  rm -rf /work/fr/copy-$a
  /usr/bin/time -v $UE protect --attack $a --dataset folder:/work/photos/train,test_path=/work/photos/test,resolution=32 \
     --seed 0 --device cpu --cache /work/fr/cache --out /work/fr/copy-$a --preview 8 > protect-$a.log 2>&1
done
