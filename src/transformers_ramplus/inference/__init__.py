"""Inference beyond the reference forward: the one tagging loop (`tagging`), fast paths (fp32/bf16/int8), ONNX export,
tagging files (`tag_files`, over processes: `sharding`, with `heatmaps`) and datasets (`tag_dataset`) at scale."""
