"""`ramplus evaluate MODEL --images DIR --annotations FILE --tag-list FILE`: benchmark mAP / CP / CR / F1 as JSON.

This module only parses the options and prints the report; `transformers_ramplus.training.benchmark` does the work.

Each line of the tag list is a model class: a tag of the model's vocabulary (closed set), or a new tag embedded
from `--descriptions` (open set, e.g. `openimages_rare_200_llm_tag_descriptions.json`) or from its name
(`--name-prompts`) through the model's text tower (threshold 0.5, as the original). Scores are cached in an `.npz`
file (`--cache`, default under `~/.cache/ramplus/eval/`) keyed by the model's files, the tag list, every image file
(name, size, modification time), the descriptions and the image processor; a second run on unchanged inputs reuses
them. Unreadable images are skipped and counted; exit 1 when none could be read. `--calibrate-output DIR` also fits per-tag thresholds maximizing F1 on this set and saves the model
with them in its config.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields

from ..io.atomic import atomic_write_text
from ..io.outputs import refuse_file_over_inputs, refuse_folder_over_inputs
from ..training.benchmark import BenchmarkOptions, evaluate_benchmark


def add_arguments(parser):
    parser.add_argument("model", help="model directory (or Hub id) of a RamPlusModel")
    parser.add_argument("--images", required=True, help="folder holding the benchmark images")
    parser.add_argument("--annotations", required=True, help="annotation file (`image,tag1,tag2` or `image,i j k`)")
    parser.add_argument("--tag-list", required=True, help="benchmark tag list (one tag per line, duplicates allowed)")
    parser.add_argument("--format", default="auto", choices=["auto", "names", "indices"], help="annotation format")
    parser.add_argument("--descriptions", help="JSON descriptions of tags the model does not know (open set)")
    parser.add_argument("--name-prompts", action="store_true", help='embed unknown tags from their names (prompt-template ensemble)')
    parser.add_argument("--threshold", type=float, help="one threshold for CP/CR (default: the per-tag thresholds)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--cache", help="scores cache file (.npz); default under ~/.cache/ramplus/eval")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write a scores cache")
    parser.add_argument("--output", help="also write the metrics JSON to this file")
    parser.add_argument("--per-class", action="store_true", help="include per-class AP, precision and recall")
    parser.add_argument("--calibrate-output", help="save the model with F1-calibrated per-tag thresholds here")


def _report(message: str) -> None:
    sys.stderr.write(message + "\n")


def run(args) -> int:
    inputs = [args.model, args.images, args.annotations, args.tag_list, args.descriptions]
    for option, output in (("--output", args.output), ("--cache", getattr(args, "cache", None))):
        if output:
            refuse_file_over_inputs(output, inputs, option=option)
    if getattr(args, "calibrate_output", None):
        refuse_folder_over_inputs(args.calibrate_output, inputs, option="--calibrate-output")
    options = BenchmarkOptions(**{field.name: getattr(args, field.name) for field in fields(BenchmarkOptions)})
    report = evaluate_benchmark(options, report=_report)
    if not report["num_images"]:
        _report(f"ramplus evaluate: none of the {report['num_skipped_images']} benchmark images could be read under {args.images}")
        return 1
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    sys.stdout.write(text + "\n")
    return 0
