"""Publishing a protection as a data owner's copy that CLIP trainers read: at the import resolution
(:mod:`~ue_bench.publish.export`), at full resolution with the noise lifted onto the original pixels
(:mod:`~ue_bench.publish.export_full`), with a contact sheet (:mod:`~ue_bench.publish.preview`).
"""
