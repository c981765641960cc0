"""Evaluate an open_clip_train checkpoint with ue-bench's retrieval evaluation on the default synthetic test split."""
import json, sys, torch
from ue_bench import registry
from ue_bench.evaluate import evaluate_retrieval
torch.set_num_threads(1)
ckpt, out = sys.argv[1], sys.argv[2]
data = registry.create("datasets", "synthetic", {}).load()
victim = registry.create("victims", "tiny-rn", {"init": ckpt})
model = victim.create_model(data.test.resolution, "cpu").eval()
m = evaluate_retrieval(model, victim.tokenizer(), data.test, torch.device("cpu"))
json.dump({"checkpoint": ckpt, "metrics": m}, open(out, "w"), indent=2)
print(json.dumps({k: round(v, 4) for k, v in m.items() if not k.startswith("random")}))
