import time, torch, numpy as np, open_clip
from ue_bench import registry
from ue_bench.augment import OpenClipView
from ue_bench.training import to_unit, normalize, clip_loss, make_optimizer
torch.set_num_threads(1)
data = registry.create("datasets", "synthetic", {}).load()
print(data.train.images.shape, len(data.test))
victim = registry.create("victims", "tiny-rn", {})
torch.manual_seed(0)
model = victim.create_model(data.train.resolution, "cpu").train()
tok = victim.tokenizer()([c[0] for c in data.train.captions[:64]])
images = torch.from_numpy(np.ascontiguousarray(data.train.images[:64]))
view = OpenClipView(data.train.resolution)
opt = make_optimizer(model, 1e-3, 0.1); loss_fn = open_clip.ClipLoss()
def step(unit):
    loss = clip_loss(model, loss_fn, normalize(unit), tok); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(2): step(to_unit(images, "cpu"))
t = []; a = []
for i in range(10):
    s = time.perf_counter(); u = view(images, 0, i); a.append(time.perf_counter() - s)
    s = time.perf_counter(); step(u); t.append(time.perf_counter() - s)
print(f"view {np.median(a)*1e3:.1f} ms/batch64, step {np.median(t)*1e3:.1f} ms, ratio {(np.median(a)+np.median(t))/np.median(t):.3f}")
u0 = view(images, 0, 3); u1 = view(images, 0, 3); print("repro", torch.equal(u0, u1), u0.shape, u0.dtype, float(u0.min()), float(u0.max()))
