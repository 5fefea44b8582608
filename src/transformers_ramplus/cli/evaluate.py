"""`ramplus evaluate MODEL --images DIR --annotations FILE --tag-list FILE`: benchmark mAP / CP / CR / F1 as JSON.

Each line of the tag list is a model class: a tag of the model's vocabulary (closed set), or a new tag embedded
from `--descriptions` (open set, e.g. `openimages_rare_200_llm_tag_descriptions.json`) or from its name
(`--name-prompts`) through the model's text tower (threshold 0.5, as the original). Scores are cached in an `.npz`
file (`--cache`, default under `~/.cache/ramplus/eval/`) keyed by the model's files, the tag list, every image file
(name, size, modification time), the descriptions and the image processor; a second run on unchanged inputs reuses
them. Unreadable images are skipped and counted; exit 1 when none could be read. `--calibrate-output DIR` also fits per-tag thresholds maximizing F1 on this set and saves the model
with them in its config.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from ..inference.tagging import check_options
from ..io.atomic import atomic_directory, atomic_file, atomic_write_text
from ..io.fingerprints import model_fingerprint
from ..pipelines.zero_shot_image_tagging import resolve_device


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


def load_image_processor(model_path: str, config):
    """The model's saved image processor, or the RAM++ inference transform at the model's image size."""
    from ..models.ram_plus.image_processing_ram_plus import RamPlusImageProcessor

    try:
        return RamPlusImageProcessor.from_pretrained(model_path)
    except (OSError, ValueError):
        size = int(config.vision_config.image_size)
        return RamPlusImageProcessor(size={"height": size, "width": size})


def _file_fingerprint(path) -> list:
    """Size and modification time of a file (None when missing): a changed, added or replaced file changes it."""
    if path is None or not os.path.isfile(path):
        return [path, None]
    stat = os.stat(path)
    return [os.path.realpath(path), stat.st_size, stat.st_mtime_ns]


def scores_cache_key(args, classes, image_names, paths, image_processor) -> str:
    """What determines the cached scores: the model's files, the classes, every image file (name, size, mtime), the
    descriptions file, name prompts, the image processor settings and the package version."""
    from .. import __version__

    processor = image_processor.to_dict() if hasattr(image_processor, "to_dict") else repr(image_processor)
    parts = [
        __version__,
        model_fingerprint(args.model, exclude=[args.output, args.cache]),
        classes,
        image_names,
        [_file_fingerprint(path) for path in paths],
        _file_fingerprint(args.descriptions) if args.descriptions else None,
        bool(args.name_prompts),
        json.dumps(processor, sort_keys=True, default=str),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def run(args) -> int:
    import numpy as np
    from transformers import AutoProcessor

    from ..training.metrics import (
        calibrate_thresholds,
        compute_metrics,
        find_image,
        mean_average_precision,
        precision_recall,
        read_annotations,
        score_images,
        threshold_scores,
        write_thresholds,
    )
    from ..models.ram_plus.modeling_ram_plus import RamPlusModel
    from ..inference.fast_paths import optimize_for_inference
    from ..tags.descriptions import load_descriptions
    from ..training.trainer import add_tags

    check_options(threshold=args.threshold, batch_size=args.batch_size)
    annotations = read_annotations(args.annotations, args.tag_list, format=args.format)
    classes = annotations.class_names
    from . import reading

    with reading(f"cannot load the model {args.model!r}"):
        model = optimize_for_inference(RamPlusModel.from_pretrained(args.model).to(resolve_device(args.device)))
    unknown = [name for name in dict.fromkeys(classes) if name not in model.config.label2id]
    if unknown:
        descriptions = load_descriptions(args.descriptions) if args.descriptions else {}
        missing = [name for name in unknown if name not in descriptions and not args.name_prompts]
        if missing:
            raise ValueError(
                f"{len(missing)} benchmark tags are not in the model's vocabulary and have no description: "
                f"{missing[:10]}; pass --descriptions JSON or --name-prompts"
            )
        try:
            processor = AutoProcessor.from_pretrained(args.model)
            tokenizer = getattr(processor, "tokenizer", None)
        except (OSError, ValueError, TypeError):
            tokenizer = None
        # names without descriptions (--name-prompts) are embedded with the prompt-template ensemble
        add_tags(model, {n: descriptions.get(n) for n in unknown}, tokenizer=tokenizer)
    tag_indices = [model.config.label2id[name] for name in classes]
    image_processor = load_image_processor(args.model, model.config)

    paths = [find_image(args.images, name) for name in annotations.image_names]
    key = scores_cache_key(args, classes, annotations.image_names, paths, image_processor)
    cache = None
    if not args.no_cache:
        cache = args.cache or os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ramplus", "eval", f"{key}.npz"
        )
    scores = ok = None
    if cache and os.path.isfile(cache):
        try:
            with np.load(cache, allow_pickle=False) as stored:
                if str(stored["key"]) == key and stored["scores"].shape == (len(paths), len(classes)):
                    scores, ok = stored["scores"], stored["ok"]
                    sys.stderr.write(f"using cached scores {cache}\n")
                else:
                    sys.stderr.write(f"the cached scores {cache} were made from other inputs; scoring again\n")
        except Exception as error:  # a corrupt or foreign cache file is ignored and rewritten
            sys.stderr.write(f"ignoring the unreadable scores cache {cache} ({error}); scoring again\n")
    if scores is None:
        readable = [i for i, p in enumerate(paths) if p is not None]
        scores = np.full((len(paths), len(classes)), np.nan, dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        part, part_ok = score_images(
            model, image_processor, [paths[i] for i in readable], tag_indices, batch_size=args.batch_size
        )
        scores[readable], ok[readable] = part, part_ok
        if cache:
            with atomic_file(cache, "wb") as stream:
                np.savez(stream, scores=scores, ok=ok, key=np.array(key))
    if not ok.any():
        sys.stderr.write(f"ramplus evaluate: none of the {len(paths)} benchmark images could be read under {args.images}\n")
        return 1
    skipped = [annotations.image_names[i] for i in np.flatnonzero(~ok)]
    for name in skipped[:20]:
        sys.stderr.write(f"skipped (missing or unreadable): {name}\n")
    scores, targets = scores[ok], annotations.targets[ok]
    thresholds = (
        args.threshold if args.threshold is not None else np.asarray(model.config.thresholds())[tag_indices]
    )
    metrics = compute_metrics(scores, targets, thresholds)
    report = {
        **{name: round(float(value), 6) for name, value in metrics.items()},
        "num_images": int(ok.sum()),
        "num_skipped_images": len(skipped),
        "num_classes": len(classes),
        "threshold": args.threshold if args.threshold is not None else "per-tag",
        "open_set_tags": len(unknown),
    }
    if args.per_class:
        _, per_ap = mean_average_precision(scores, targets)
        _, _, per_p, per_r = precision_recall(threshold_scores(scores, thresholds), targets)
        report["per_class"] = [
            {"tag": name, "ap": float(a), "precision": float(p), "recall": float(r)}
            for name, a, p, r in zip(classes, per_ap, per_p, per_r)
        ]
    if args.calibrate_output:
        if os.path.exists(args.calibrate_output):
            raise ValueError(f"{args.calibrate_output} exists; choose a new directory for the calibrated model")
        current = np.asarray(model.config.thresholds())[tag_indices]
        calibrated, _ = calibrate_thresholds(scores, targets, default=current)
        write_thresholds(model.config, calibrated, tag_indices=tag_indices)
        from ..models.remote_code import save_model_folder

        try:  # keep the source's CLIP tokenizer with its text tower
            source_tokenizer = getattr(AutoProcessor.from_pretrained(args.model), "tokenizer", None)
        except (OSError, ValueError, TypeError):
            source_tokenizer = None
        with atomic_directory(args.calibrate_output) as temporary:
            save_model_folder(temporary, model, image_processor=image_processor, tokenizer=source_tokenizer)
        calibrated_metrics = compute_metrics(scores, targets, calibrated)
        report["calibrated"] = {name: round(float(v), 6) for name, v in calibrated_metrics.items() if name != "mAP"}
        report["calibrated_model"] = args.calibrate_output
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    sys.stdout.write(text + "\n")
    return 0
