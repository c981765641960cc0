#!/bin/sh
# ue-bench protect on the photo folder, full resolution: $1 = out dir, $2 = cache dir
UE="${UE:-.venv/bin/ue-bench}"
exec nice $UE protect --attack mem:pgd_steps=2,outer_iters=1,surrogate_steps=2,batch_size=16,hotflip_iters=1,candidates=4 \
  --surrogate tiny-rn:epochs=2,batch_size=16 --victim tiny-rn:batch_size=16 \
  --dataset folder:/tmp/layout-photos,resolution=32 --threads 1 --lift-steps 5 --out "$1" --cache "$2"
