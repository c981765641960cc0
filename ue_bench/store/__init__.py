"""The artifact store: content-keyed stage outputs (:mod:`~ue_bench.store.artifacts`), its import
stage of decoded datasets (:mod:`~ue_bench.store.imports`), the atomic writers and locks both use
(:mod:`~ue_bench.store.atomic`) and where the store lives by default (:mod:`~ue_bench.store.paths`).
"""
