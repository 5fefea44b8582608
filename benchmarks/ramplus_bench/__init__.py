# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The parts of `benchmarks/bench_inference.py`: `timing` (wall time, peak memory, environment), `baseline` (the
original computation, the naive int8 route, the authors' own code from a checkout), `scenes` (sizes, images, the
scene model) and `report` (decision agreement, the table)."""
