"""Local `evaluate` modules (load with `evaluate.load(path)`)."""
