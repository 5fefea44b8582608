#!/usr/bin/env bash
set -euo pipefail
DEVICE=${DEVICE:-cuda}; W=$(mktemp -d); export HF_HUB_OFFLINE=1
RAMPLUS="python3 -m transformers_ramplus.cli"
$RAMPLUS convert modeling_tests/fixtures/tiny/ram_plus_original.pth "$W/model" \
  --tag-list modeling_tests/fixtures/tiny/ram_tag_list.txt --tag-list-chinese modeling_tests/fixtures/tiny/ram_tag_list_chinese.txt \
  --thresholds modeling_tests/fixtures/tiny/ram_tag_list_threshold.txt
IMGS=modeling_tests/fixtures/images
$RAMPLUS tag $IMGS --model "$W/model" --device cpu --threshold 0 --no-progress -o "$W/cpu.jsonl"
$RAMPLUS tag $IMGS --model "$W/model" --device "$DEVICE" --threshold 0 --no-progress -o "$W/dev.jsonl"
python3 -m accelerate.commands.launch --multi_gpu --num_processes 2 --main_process_port 0 --num_machines 1 --mixed_precision no --dynamo_backend no \
  -m transformers_ramplus.cli tag $IMGS --model "$W/model" --threshold 0 --no-progress -o "$W/sharded.jsonl" \
  2> "$W/sharded.err" || { tail -40 "$W/sharded.err"; exit 1; }
grep "processes, on" "$W/sharded.err"
python3 - "$W" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path
import datasets, torch
from transformers_ramplus import tag_dataset
from transformers_ramplus.inference.tag_dataset import default_device
w, device = Path(sys.argv[1]), sys.argv[2]
load = lambda n: [json.loads(l) for l in (w / n).read_text().splitlines()]
cpu = load("cpu.jsonl")
def same(a, b):
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        sx, sy = ({t["label"]: t["score"] for t in r["tags"]} for r in (x, y))
        assert sx.keys() == sy.keys() and max(abs(sx[k] - sy[k]) for k in sx) < 2e-3, (x["path"], sx, sy)
same(cpu, load("dev.jsonl")); same(cpu, load("sharded.jsonl"))
ds = datasets.Dataset.from_dict({"image": [r["path"] for r in cpu]}).cast_column("image", datasets.Image())
t = tag_dataset(ds, model=str(w / "model"), device=device, threshold=0.0)
same(cpu, [{"path": r["path"], "tags": [{"label": l, "score": s} for l, s in zip(a, b)]} for r, a, b in zip(cpu, t["tags"], t["scores"])])
d = tag_dataset(ds, model=str(w / "model"), threshold=0.0)
assert d["tags"] == t["tags"] or device == "cpu"
print("default device:", default_device(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("GPU path OK" if device != "cpu" else "CPU run OK")
EOF
