"""Pipelines registered with transformers: `zero-shot-image-tagging`."""
