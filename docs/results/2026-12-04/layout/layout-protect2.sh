#!/bin/sh
# ue-bench protect of the synthetic set at the import resolution, webdataset shards: $1 = out, $2 = cache
UE="${UE:-.venv/bin/ue-bench}"
exec nice $UE protect --attack em:pgd_steps=2,outer_iters=1,surrogate_steps=2,batch_size=16 \
  --surrogate tiny-rn:epochs=2,batch_size=16 --victim tiny-rn:batch_size=16 --format webdataset --shard-size 20 \
  --dataset synthetic:size=64,test_size=16 --threads 1 --out "$1" --cache "$2"
