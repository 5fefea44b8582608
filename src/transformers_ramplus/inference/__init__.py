"""Inference beyond the reference forward: fast paths (fp32/bf16/int8), ONNX export, tagging at scale."""
