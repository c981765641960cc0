"""How many times `ue-bench list -v` loads each plugin's entry point, and entry-point scans."""
import collections, contextlib, io, sys
import importlib.metadata as md
loads, scans = collections.Counter(), [0]
orig_load, orig_eps = md.EntryPoint.load, md.entry_points
def load(self):
    loads[self.value] += 1
    return orig_load(self)
def eps(**kw):
    if str(kw.get("group", "")).startswith("ue_bench."):
        scans[0] += 1
    return orig_eps(**kw)
md.EntryPoint.load = load
md.entry_points = eps
import ue_bench.registry as r  # noqa: E402  (binds entry_points by name)
r.entry_points = eps
try:
    from ue_bench.cli import main
except ImportError:
    from ue_bench.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["list", "-v"])
print("entry-point scans:", scans[0])
print("loads per plugin: ", dict(collections.Counter(loads.values())), f"over {len(loads)} plugins")
