"""The benchmark: a run's configuration (:mod:`~ue_bench.bench.runconfig`), its cells
(:mod:`~ue_bench.bench.matrix`), the typed stages a cell runs (:mod:`~ue_bench.bench.stages`), the
local/Ray runner (:mod:`~ue_bench.bench.runner`), cost estimates and the dry-run plan
(:mod:`~ue_bench.bench.cost`, :mod:`~ue_bench.bench.dry_run`), the environment every result records
(:mod:`~ue_bench.bench.environment`) and the rendering of report plugins over a run
(:mod:`~ue_bench.bench.render`).
"""
