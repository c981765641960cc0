#!/bin/sh
# usage: memcmp.sh VENV ; one MEM protect from scratch on 512 synthetic pairs, one thread
d=$(mktemp -d)
OMP_NUM_THREADS=1 "$1/bin/ue-bench" protect --dataset synthetic:size=512,test_size=16 --attack mem:outer_iters=2,surrogate_steps=8,pgd_steps=4,hotflip_iters=2,candidates=16,trigger_len=3,batch_size=64 --surrogate tiny-rn --out "$d/out" --cache "$d/c" --device cpu >"$d/log" 2>&1
rc=$?
grep -h "mem iter" "$d/log" >> /tmp/memcmp-$(basename $(dirname $1)).log
rm -rf "$d"
exit $rc
