"""RAM++ (Recognize Anything Plus, arXiv 2310.15200): configuration, model, image processor, processor, and the
converter of the authors' checkpoints."""
