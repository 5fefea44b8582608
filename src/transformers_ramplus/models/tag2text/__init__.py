# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
