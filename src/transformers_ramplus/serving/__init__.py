# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Serving: the tagging service (`ramplus serve`, LitServe) and the request formats it shares with the Inference
Endpoints handler. The HTTP parts import LitServe only when a server is built (the `serve` extra)."""
