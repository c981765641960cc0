"""ue-bench: a pluggable benchmark for unlearnable-example attacks on CLIP-style contrastive learning."""

__version__ = "0.1.0"
