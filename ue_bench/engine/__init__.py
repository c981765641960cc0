"""The engine: what turns images and captions into a trained CLIP model and its scores.

Image decoding (:mod:`~ue_bench.engine.images`), the training views (:mod:`~ue_bench.engine.views`),
the training loop (:mod:`~ue_bench.engine.training`), retrieval evaluation and its metrics
(:mod:`~ue_bench.engine.evaluate`, :mod:`~ue_bench.engine.metrics`), PSNR/SSIM
(:mod:`~ue_bench.engine.imperceptibility`), devices and autocast (:mod:`~ue_bench.engine.device`) and
the lift of a protection onto full-size pixels (:mod:`~ue_bench.engine.lift`). It knows nothing of
cells, stores or commands. Plugins may use ``device``, ``images``, ``training`` and ``views``
(docs/plugins.md).
"""
