"""Plugin authoring: the package scaffold of ``ue-bench plugin new`` (:mod:`~ue_bench.authoring.scaffold`)
and the tiny end-to-end run the conformance checks share with authors (:mod:`~ue_bench.authoring.fixture_run`).
"""
