"""The models of the Recognize Anything family, one folder per model, each folder the remote-code bundle of its
model (configuration, modeling, image processing, processing): it imports only its own files, transformers and torch."""
