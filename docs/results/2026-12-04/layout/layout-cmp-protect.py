"""Every file of two protect copies byte-identical, manifest.json equal but for timings and environment."""
import hashlib, json, sys
from pathlib import Path
ok = True
for a, b in [("/tmp/layout-protect-before", "/tmp/layout-protect-after"), ("/tmp/layout-protect2-before", "/tmp/layout-protect2-after")]:
    fa = sorted(p.relative_to(a) for p in Path(a).rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in Path(b).rglob("*") if p.is_file())
    assert fa == fb, (set(fa) ^ set(fb))
    diff = [str(f) for f in fa if f.name != "manifest.json" and Path(a, f).read_bytes() != Path(b, f).read_bytes()]
    ma, mb = (json.loads(Path(x, "manifest.json").read_text()) for x in (a, b))
    def untimed(x):  # seconds (``*_s``) and the environment differ run to run
        if isinstance(x, dict):
            return {k: untimed(v) for k, v in x.items() if not k.endswith("_s") and k != "environment"}
        return [untimed(v) for v in x] if isinstance(x, list) else x
    ma, mb = untimed(ma), untimed(mb)
    same = ma == mb and list(ma) == list(mb)
    ok &= same and not diff
    print(f"{a} vs {b}: {len(fa)} files, {len(diff)} differ {diff[:3]}; manifest (less timings *_s, environment) "
          f"{'identical, same key order' if same else 'DIFFERENT'}; protection_sha256 {ma['protection_sha256'][:16]}")
sys.exit(0 if ok else 1)
