"""`ramplus finetune MODEL OUTPUT_DIR --dataset NAME_OR_PATH [TrainingArguments flags]`: LoRA (default) or full
fine-tuning with `RamPlusTrainer`.

Data (`--dataset`, read with `datasets.load_dataset`): a Hub dataset id, a local dataset folder (an `imagefolder` of
class subfolders, a `save_to_disk` folder), an image folder with `metadata.jsonl` (`file_name`, `tags` by name,
optional `caption`/`captions`), or the authors' JSON file (`image_path`, `caption`, `union_label_id`). The image,
tags and caption columns are found by name (`image`/`image_path`, `tags`/`label_ids`/`labels`/`label`,
`caption`/`captions`/`text`) or given with `--image-column`, `--tags-column`, `--caption-column`; tags are names or
ids. Tags the model does not know are added to its vocabulary from `--descriptions`, `--name-prompts` or `--tag-set`
(`--replace-tags` drops the old vocabulary); new tags get threshold 0.5.

`--eval-dataset`/`--eval-split` evaluate with the deterministic inference preprocessing and report mAP, CP, CR, CF1,
OP, OR, OF1 (`compute_metrics`); the best checkpoint by mAP is kept with `--load_best_model_at_end`.

Every `TrainingArguments` flag is accepted (parsed by `HfArgumentParser` into `RamPlusTrainingArguments`):
`--gradient_accumulation_steps`, `--warmup_ratio`, `--report_to`, `--push_to_hub`, `--bf16` (also on CPU), ...
Defaults: learning rate 1e-4 with LoRA and 5e-6 for full fine-tuning, cosine schedule, logging every 10 steps.

Writes into OUTPUT_DIR: `checkpoints/` (Trainer checkpoints, each loadable like the final adapter; `--resume`
continues from the last one) and, at the end, `adapter/` (LoRA adapter carrying its tags, plus the processor) and/or
`model/` (a full model: the fine-tuned one, or the LoRA-merged one with `--merge`), each written to a temporary
directory and moved into place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys

import torch
from transformers import AutoProcessor, CLIPVisionModelWithProjection, HfArgumentParser
from transformers.trainer_utils import get_last_checkpoint

from ..hub import reading
from ..io.atomic import atomic_directory
from ..io.outputs import refuse_folder_over_inputs
from ..models.ram_plus.image_processing_ram_plus import load_image
from ..models.ram_plus.modeling_ram_plus import RamPlusModel
from ..models.ram_plus.processing_ram_plus import RamPlusProcessor
from ..models.remote_code import save_model_folder
from ..tags.descriptions import load_descriptions
from ..tags.tag_set import TagSet
from ..training.adapters import apply_lora, default_lora_config, merge_adapter, save_adapter
from ..training.benchmark import load_image_processor
from ..training.data import (
    RamPlusDataCollator,
    TrainTransform,
    dataset_tag_names,
    load_training_dataset,
    prepare_dataset,
)
from ..training.trainer import (
    RamPlusTrainer,
    RamPlusTrainingArguments,
    add_tags,
    check_resume_vocabulary,
    compute_tagging_metrics,
)


PARSER_CLASS = HfArgumentParser  # `ramplus finetune` is parsed by transformers' own argument parser


def add_arguments(parser):

    parser.add_argument("model", help="pretrained RamPlusModel directory (or Hub id)")
    parser.add_argument("output_dir", help="where checkpoints and the result go")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="training data: Hub dataset id, dataset folder, metadata.jsonl folder or JSON")
    source.add_argument("--train-json", help="the authors' JSON records (same as --dataset FILE)")
    source.add_argument("--train-folder", help="image folder with metadata.jsonl (same as --dataset DIR)")
    parser.add_argument("--split", default="train", help="split of --dataset")
    parser.add_argument("--image-column", help="image column (default: image, image_path, img, file_name, path)")
    parser.add_argument("--tags-column", help="tags column, names or ids (default: label_ids, tags, labels, label)")
    parser.add_argument("--caption-column", help="caption column (default: captions, caption, text)")
    parser.add_argument("--image-root", help="base folder of relative image paths (default: the dataset's folder)")
    parser.add_argument("--eval-dataset", help="evaluation data (same forms as --dataset; default: --dataset)")
    parser.add_argument("--eval-split", help="split of the evaluation data (e.g. validation)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="lora", action="store_true", default=True, help="LoRA fine-tuning (default)")
    mode.add_argument("--full", dest="lora", action="store_false", help="fine-tune all trainable weights")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-no-vision", action="store_true", help="do not adapt the image encoder")
    parser.add_argument("--merge", action="store_true", help="also save the LoRA-merged full model in model/")
    parser.add_argument("--descriptions", help="JSON descriptions of new tags")
    parser.add_argument("--name-prompts", action="store_true", help="embed new tags from their names (prompt ensemble)")
    parser.add_argument("--tag-set", help="saved tag set (directory or Hub id, TagSet.save_pretrained) with tags to add")
    parser.add_argument("--replace-tags", action="store_true", help="drop the model's old tags")
    parser.add_argument("--image-size", type=int, help="training resolution (default: the model's)")
    parser.add_argument(
        "--window", help="DICOM display window CENTER,WIDTH for every scan (default: each file's own VOI window)"
    )
    parser.add_argument("--crop-min-area", type=float, default=0.5,
                        help="smallest area fraction of the random resized crop (1 = no cropping; raise it when a "
                             "crop could cut a small finding out of the image)")
    parser.add_argument("--jitter", type=float, default=0.2, help="largest relative brightness/contrast/saturation change")
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips (e.g. for laterality tags)")
    parser.add_argument("--teacher", help="CLIP ViT-B/16 (CLIPVisionModelWithProjection) for the distillation loss")
    parser.add_argument("--no-captions", action="store_true", help="train without the alignment loss")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT_DIR")
    parser.add_argument("--overwrite", action="store_true", help="start afresh: replace existing adapter/ and model/ and remove earlier checkpoints")
    # short names kept from earlier versions
    parser.add_argument("--epochs", dest="num_train_epochs", type=float, default=argparse.SUPPRESS, help="= --num_train_epochs")
    parser.add_argument("--batch-size", dest="per_device_train_batch_size", type=int, default=argparse.SUPPRESS,
                        help="= --per_device_train_batch_size")
    parser.add_argument("--workers", dest="dataloader_num_workers", type=int, default=argparse.SUPPRESS,
                        help="= --dataloader_num_workers")
    # transformers 5 folded `warmup_ratio` into `warmup_steps` (a float in [0, 1) is a ratio); keep the familiar flag
    parser.add_argument("--warmup_ratio", "--warmup-ratio", dest="warmup_steps", type=_ratio, default=argparse.SUPPRESS,
                        help="fraction of the training steps used for linear warmup (= --warmup_steps RATIO)")

    group = parser.add_argument_group("TrainingArguments (transformers)")
    HfArgumentParser._add_dataclass_arguments(group_parser(parser, group), RamPlusTrainingArguments)
    # OUTPUT_DIR is positional; the Trainer writes into OUTPUT_DIR/checkpoints
    for action in list(parser._actions):
        if action.dest == "output_dir" and action.option_strings:
            parser._remove_action(action)
            for option in action.option_strings:
                parser._option_string_actions.pop(option, None)
            for container in parser._action_groups:
                if action in container._group_actions:
                    container._group_actions.remove(action)
    parser.set_defaults(learning_rate=None, lr_scheduler_type="cosine", logging_steps=10)


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a ratio in [0, 1) is expected, got {text}")
    return value


def group_parser(parser, group):
    """`HfArgumentParser._add_dataclass_arguments` calls `self.add_argument`: route it into an argument group."""

    class _Router:
        def add_argument(self, *args, **kwargs):
            return group.add_argument(*args, **kwargs)

        def add_argument_group(self, *args, **kwargs):
            return parser.add_argument_group(*args, **kwargs)

        _parse_dataclass_field = staticmethod(HfArgumentParser._parse_dataclass_field)

    return _Router()


def _save_atomically(target: str, write) -> None:
    """Write a result folder through `atomic_directory` (the previous one is replaced only once the new one is
    complete)."""

    with atomic_directory(target, overwrite=True) as temporary:
        write(os.fspath(temporary))


def earlier_checkpoints(output_dir) -> list[str]:
    """The `checkpoint-N` folders an earlier run left in OUTPUT_DIR/checkpoints."""
    folder = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if re.fullmatch(r"checkpoint-\d+", name)]


def first_readable_image(rows, collator, image_processor=None):
    """The position of the first row whose image reads (through the collator's image source and the processor's
    reader, as training will), or None when none does."""

    read = getattr(image_processor, "load_image", None) or load_image
    for index, row in enumerate(rows):
        try:
            read(collator._image_source(row), index)
            return index
        except (ValueError, OSError, TypeError, KeyError):
            continue
    return None


def prepare_vocabulary(model, tokenizer, names_needed, descriptions_path=None, name_prompts=False, tag_set=None, replace=False):
    """Add the tags of `names_needed` that the model lacks (from descriptions, name prompts or a saved tag set)."""

    if tag_set:
        add_tags(model, TagSet.from_pretrained(tag_set), keep_existing=not replace)
        replace = False
    missing = [name for name in names_needed if name not in model.config.label2id]
    if replace and not missing:
        raise ValueError("--replace-tags needs new tags (from --descriptions, --name-prompts or --tag-set)")
    if missing or replace:
        descriptions = load_descriptions(descriptions_path) if descriptions_path else {}
        new = list(names_needed if replace else missing)
        lacking = [name for name in new if name not in descriptions and not name_prompts]
        if lacking:
            raise ValueError(
                f"{len(lacking)} tags of the data are not in the model's vocabulary and have no description: "
                f"{lacking[:10]}; pass --descriptions, --name-prompts or --tag-set"
            )
        # names without descriptions (--name-prompts) are embedded with the prompt-template ensemble
        add_tags(model, {n: descriptions.get(n) for n in new}, tokenizer=tokenizer, keep_existing=not replace)
    return model


def parse_window(text: str | None):
    """`"CENTER,WIDTH"` -> `[center, width]` (width > 0), or None."""
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"--window must be CENTER,WIDTH (two numbers), got {text!r}") from None
    if not width > 0:
        raise ValueError(f"--window width must be positive, got {text!r}")
    return [center, width]


def training_arguments(args, has_eval: bool):
    """`RamPlusTrainingArguments` from the parsed flags, with the command's defaults."""


    values = {}
    for field in dataclasses.fields(RamPlusTrainingArguments):
        if field.init and hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
    values["output_dir"] = os.path.join(args.output_dir, "checkpoints")
    if values.get("learning_rate") is None:
        values["learning_rate"] = 1e-4 if args.lora else 5e-6
    if values.get("disable_tqdm") is None:
        values["disable_tqdm"] = not sys.stderr.isatty()
    accelerator = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    if (values.get("bf16") or values.get("fp16")) and not accelerator:
        values["use_cpu"] = True  # mixed precision on the CPU (bf16 autocast is fast on recent CPUs)
    if has_eval:
        if str(values.get("eval_strategy", "no")) in ("no", "IntervalStrategy.NO"):
            values["eval_strategy"] = values.get("save_strategy", "steps")
            if values.get("eval_steps") is None:
                values["eval_steps"] = values.get("save_steps")
        if values.get("metric_for_best_model") is None:
            values["metric_for_best_model"] = "mAP"
            values["greater_is_better"] = True
    return RamPlusTrainingArguments(**values)


def run(args) -> int:


    final_dirs = [os.path.join(args.output_dir, "adapter" if args.lora else "model")]
    if args.lora and args.merge:
        final_dirs.append(os.path.join(args.output_dir, "model"))
    # nothing named as input may be replaced: the result folders, and the Trainer's checkpoints (rotated, deleted)
    inputs = (
        args.model, args.dataset, args.train_json, args.train_folder, args.eval_dataset, args.image_root,
        args.tag_set, args.descriptions, args.teacher,
    )
    for final in [*final_dirs, os.path.join(args.output_dir, "checkpoints")]:
        refuse_folder_over_inputs(final, inputs, option=final)
    existing = [d for d in final_dirs if os.path.exists(d)]
    if existing and not (args.overwrite or args.resume):
        raise ValueError(f"{existing[0]} exists; pass --overwrite to replace it")
    earlier = earlier_checkpoints(args.output_dir)
    if earlier and not (args.resume or args.overwrite or getattr(args, "resume_from_checkpoint", None)):
        raise ValueError(
            f"{os.path.join(args.output_dir, 'checkpoints')} holds checkpoints of an earlier run; pass --resume to "
            "continue it, or --overwrite to start afresh (its checkpoints are removed)"
        )
    if getattr(args, "per_device_train_batch_size", 1) <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.per_device_train_batch_size}")
    window = parse_window(args.window)
    has_eval = bool(args.eval_dataset or args.eval_split)
    training_args = training_arguments(args, has_eval)  # validates the Trainer flags before any loading

    with reading(f"cannot load the model {args.model!r}"):
        model = RamPlusModel.from_pretrained(args.model)
    try:
        tokenizer = getattr(AutoProcessor.from_pretrained(args.model), "tokenizer", None)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    image_processor = load_image_processor(args.model, model.config)
    if window is not None:
        image_processor.dicom_window = window  # saved with the processor: inference reads scans the same way
    image_size = args.image_size or int(image_processor.size["height"])
    if image_size != int(image_processor.size["height"]):
        image_processor.size = {"height": image_size, "width": image_size}

    source = args.dataset or args.train_folder or args.train_json
    columns = dict(image_column=args.image_column, tags_column=args.tags_column, caption_column=args.caption_column)
    raw_train, train_root = load_training_dataset(source, split=args.split)
    raw_eval, eval_root = (None, None)
    if has_eval:
        raw_eval, eval_root = load_training_dataset(args.eval_dataset or source, split=args.eval_split or args.split)
    names = []
    for raw in (raw_train, raw_eval):
        if raw is not None:
            try:
                names += [n for n in dataset_tag_names(raw, args.tags_column) if n not in names]
            except ValueError:
                pass  # no tags column: captions / distillation only
    base_names = list(model.config.tag_names)
    prepare_vocabulary(model, tokenizer, names, args.descriptions, args.name_prompts, args.tag_set, args.replace_tags)

    def prepare(raw, root):
        return prepare_dataset(
            raw, model.config.label2id, image_root=args.image_root or root, num_tags=model.config.num_tags,
            require_tags=False, **columns,
        )

    dataset = prepare(raw_train, train_root)
    eval_dataset = prepare(raw_eval, eval_root) if raw_eval is not None else None

    teacher = None
    if args.teacher:

        teacher = CLIPVisionModelWithProjection.from_pretrained(args.teacher)
    if not 0 < args.crop_min_area <= 1 or not 0 <= args.jitter < 1:
        raise ValueError(f"--crop-min-area must be in (0, 1] and --jitter in [0, 1), got {args.crop_min_area}, {args.jitter}")
    transform = TrainTransform(
        image_processor=image_processor, scale=(args.crop_min_area, 1.0), jitter=args.jitter,
        flip_probability=0.0 if args.no_flip else 0.5,
    )
    collator = RamPlusDataCollator(
        model.config.num_tags,
        tokenizer=None if (args.no_captions or model.text_model is None) else tokenizer,
        transform=transform,
        image_processor=image_processor,
        teacher_size=224 if teacher is not None else None,
        seed=training_args.seed,
    )
    processor = RamPlusProcessor.from_model_config(model.config, image_processor, tokenizer)
    if len(dataset) and first_readable_image(dataset, collator, image_processor) is None:
        sys.stderr.write(f"ramplus finetune: none of the {len(dataset)} training images could be read; nothing trained\n")
        return 1

    train_model = model
    if args.lora:
        config = default_lora_config(
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            vision=not args.lora_no_vision,
            save_vocabulary=model.vocabulary_changed,
        )
        train_model = apply_lora(model, config)
    trainer = RamPlusTrainer(
        model=train_model,
        args=training_args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        teacher_model=teacher,
        # every checkpoint-N carries the processor, so that pipeline(model=checkpoint) works
        processing_class=processor if tokenizer is not None else image_processor,
        compute_metrics=compute_tagging_metrics if eval_dataset is not None else None,
    )
    resume = training_args.resume_from_checkpoint
    if earlier and args.overwrite and not args.resume and resume is None:
        for folder in earlier:  # start afresh: the earlier run's checkpoints would mix with this run's
            shutil.rmtree(folder)
    if args.resume:
        resume = get_last_checkpoint(training_args.output_dir)
        if resume is not None:  # before the first step: the labels must mean the tags the checkpoint learned
            check_resume_vocabulary(resume, model.config.tag_names, base_names)
    trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate() if eval_dataset is not None else {}

    def save_full(directory, full_model):

        save_model_folder(directory, full_model, image_processor=image_processor, tokenizer=tokenizer)

    if args.lora:
        _save_atomically(final_dirs[0], lambda d: save_adapter(train_model, d, processor=processor))
        if args.merge:
            merged = merge_adapter(train_model)
            _save_atomically(final_dirs[1], lambda d: save_full(d, merged))
    else:
        _save_atomically(final_dirs[0], lambda d: save_full(d, model))
    if training_args.push_to_hub:
        trainer.push_to_hub()
    # the images warned about: the collator counts every image it could not read (the data loader reads a batch
    # ahead, so a run that stops at --max-steps warns about images of a batch it never trained on); with loader
    # workers the collator runs in their processes and only the trained batches' counts reach the trainer
    in_process = not training_args.dataloader_num_workers
    if in_process:
        skipped = f"{collator.num_skipped} broken images skipped"
    else:
        skipped = (
            f"{trainer.num_skipped_images} broken images skipped in the trained batches; the loader's workers may "
            "have read more ahead, see the warnings"
        )
    summary = f"trained {trainer.state.global_step} steps on {len(dataset)} images ({skipped}"
    eval_collator = getattr(trainer, "eval_data_collator", None)
    if in_process and eval_dataset is not None and getattr(eval_collator, "num_skipped", 0):
        summary += f", {eval_collator.num_skipped} broken evaluation images"
    summary += f"); wrote {', '.join(final_dirs)}"
    if metrics:
        shown = {k: round(float(v), 4) for k, v in metrics.items() if k.split("eval_")[-1] in ("mAP", "CP", "CR", "CF1", "loss")}
        summary += f"; evaluation: {shown}"
        if trainer.state.best_model_checkpoint:
            summary += f" (best checkpoint {trainer.state.best_model_checkpoint})"
    sys.stderr.write(summary + "\n")
    return 0
