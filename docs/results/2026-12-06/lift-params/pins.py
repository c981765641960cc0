from ue_bench import registry
from ue_bench.bench.matrix import Cell, dataset_key
import ue_bench
def ds(name, **kw):
    return registry.create("datasets", name, {"path": "photos/", **kw})
for name in ("folder", "csv", "karpathy", "webdataset"):
    for publish in ("import", "original"):
        print(name, publish, dataset_key(ds(name, publish=publish)))
cell = Cell(ds("folder", publish="original"), registry.create("attacks", "random"), None,
            registry.create("defenses", "none"), registry.create("victims", "tiny-rn"), 0, 1.0)
print("cell", cell.cell_id, ue_bench.__file__)
