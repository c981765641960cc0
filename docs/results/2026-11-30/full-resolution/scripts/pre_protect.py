# compute the MEM protection artifact of the photo set's import (same fingerprint as the folder plugin's) ahead of `ue-bench protect`
import sys, time, torch
torch.set_num_threads(1)
from pathlib import Path
from ue_bench import registry, stages, import_cache
from ue_bench.cache import ArtifactStore
cache = Path("/work/fr/cache")
with import_cache.using_root(cache), import_cache.staged() as st:
    data = registry.create("datasets", "csv", {"path": "/work/fr/train.tsv", "test_fraction": 0, "resolution": 32, "quotes": "none"}).load()
    st.commit()
print(len(data.train), data.train.fingerprint(), flush=True)
t = time.time()
a = stages.protect(ArtifactStore(cache), registry.create("attacks", sys.argv[1]), registry.create("victims", "tiny-rn"), data.train, 0, 1.0, torch.device("cpu"))
print(a.key, time.time() - t, flush=True)
