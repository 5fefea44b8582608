"""`ramplus finetune MODEL OUTPUT_DIR --train-json FILE | --train-folder DIR`: LoRA (default) or full fine-tuning.

Data: the authors' JSON (`image_path`, `caption`, `union_label_id`) or an image folder with `metadata.jsonl`
(`file_name`, `tags` by name, optional `caption`/`captions`). Tags of the folder that the model does not know are
added to its vocabulary from `--descriptions` (JSON `{tag: [text, ...]}` or the authors' list format) or, with
`--name-prompts`, from the prompt-template ensemble (both need the model's text tower), or from a saved `--tag-set`;
`--replace-tags` drops the old vocabulary. New tags get threshold 0.5.

Writes into OUTPUT_DIR: `checkpoints/` (Trainer checkpoints; `--resume` continues from the last one) and, at the
end, `adapter/` (LoRA adapter + its tag set) and/or `model/` (a full model: the fine-tuned one, or the LoRA-merged
one with `--merge`), each written to a temporary directory and moved into place.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile


def add_arguments(parser):
    parser.add_argument("model", help="pretrained RamPlusModel directory (or Hub id)")
    parser.add_argument("output_dir", help="where checkpoints and the result go")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train-json", help="training records in the authors' JSON format")
    source.add_argument("--train-folder", help="image folder with metadata.jsonl (tags by name)")
    parser.add_argument("--image-root", help="base folder of relative `image_path`s (default: the JSON's folder)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="lora", action="store_true", default=True, help="LoRA fine-tuning (default)")
    mode.add_argument("--full", dest="lora", action="store_false", help="fine-tune all trainable weights")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-no-vision", action="store_true", help="do not adapt the image encoder")
    parser.add_argument("--merge", action="store_true", help="also save the LoRA-merged full model in model/")
    parser.add_argument("--descriptions", help="JSON descriptions of new tags")
    parser.add_argument("--name-prompts", action="store_true", help='embed new tags from their names (prompt-template ensemble)')
    parser.add_argument("--tag-set", help="saved tag set (directory or Hub id, TagSet.save_pretrained) with tags to add")
    parser.add_argument("--replace-tags", action="store_true", help="drop the model's old tags")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, help="default 1e-4 with LoRA, 5e-6 for full fine-tuning")
    parser.add_argument("--image-size", type=int, help="training resolution (default: the model's)")
    parser.add_argument("--teacher", help="CLIP ViT-B/16 (CLIPVisionModelWithProjection) for the distillation loss")
    parser.add_argument("--no-captions", action="store_true", help="train without the alignment loss")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--save-steps", type=int, default=500)
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUTPUT_DIR")
    parser.add_argument("--overwrite", action="store_true", help="replace existing adapter/ and model/")


def _save_atomically(target: str, write) -> None:
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix=".ramplus-")
    try:
        write(temporary)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def prepare_vocabulary(model, tokenizer, names_needed, descriptions_path=None, name_prompts=False, tag_set=None, replace=False):
    """Add the tags of `names_needed` that the model lacks (from descriptions, name prompts or a saved tag set)."""
    from ..tag_sets import TagSet, load_descriptions
    from ..training import add_tags

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


def run(args) -> int:
    from transformers import AutoProcessor
    from transformers.trainer_utils import get_last_checkpoint

    from ..data import RamPlusDataCollator, collect_tag_names, load_imagefolder_dataset, load_json_dataset
    from ..modeling_ram_plus import RamPlusModel
    from ..peft_utils import apply_lora, default_lora_config, merge_adapter, save_adapter
    from ..training import RamPlusTrainer, RamPlusTrainingArguments
    from .evaluate import load_image_processor

    final_dirs = [os.path.join(args.output_dir, "adapter" if args.lora else "model")]
    if args.lora and args.merge:
        final_dirs.append(os.path.join(args.output_dir, "model"))
    existing = [d for d in final_dirs if os.path.exists(d)]
    if existing and not (args.overwrite or args.resume):
        raise ValueError(f"{existing[0]} exists; pass --overwrite to replace it")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")

    model = RamPlusModel.from_pretrained(args.model)
    try:
        tokenizer = getattr(AutoProcessor.from_pretrained(args.model), "tokenizer", None)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    image_processor = load_image_processor(args.model, model.config)

    if args.train_folder:
        prepare_vocabulary(
            model, tokenizer, collect_tag_names(args.train_folder), args.descriptions, args.name_prompts,
            args.tag_set, args.replace_tags,
        )
        dataset = load_imagefolder_dataset(args.train_folder, model.config.label2id)
    else:
        if args.tag_set:
            prepare_vocabulary(model, tokenizer, [], tag_set=args.tag_set, replace=args.replace_tags)
        dataset = load_json_dataset(args.train_json, args.image_root, num_tags=model.config.num_tags)

    teacher = None
    if args.teacher:
        from transformers import CLIPVisionModelWithProjection

        teacher = CLIPVisionModelWithProjection.from_pretrained(args.teacher)
    image_size = args.image_size or int(model.config.vision_config.image_size)
    collator = RamPlusDataCollator(
        model.config.num_tags,
        tokenizer=None if (args.no_captions or model.text_model is None) else tokenizer,
        image_size=image_size,
        teacher_size=224 if teacher is not None else None,
        seed=args.seed,
    )
    collator.transform.mean = tuple(image_processor.image_mean)
    collator.transform.std = tuple(image_processor.image_std)

    train_model = model
    if args.lora:
        config = default_lora_config(r=args.lora_r, lora_alpha=args.lora_alpha, vision=not args.lora_no_vision)
        train_model = apply_lora(model, config)
    learning_rate = args.learning_rate or (1e-4 if args.lora else 5e-6)
    training_args = RamPlusTrainingArguments(
        output_dir=os.path.join(args.output_dir, "checkpoints"),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        seed=args.seed,
        dataloader_num_workers=args.workers,
        bf16=args.bf16,
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = RamPlusTrainer(
        model=train_model, args=training_args, train_dataset=dataset, data_collator=collator, teacher_model=teacher
    )
    resume = get_last_checkpoint(training_args.output_dir) if args.resume else None
    trainer.train(resume_from_checkpoint=resume)

    def save_full(directory, full_model):
        from ..remote_code import save_model_folder

        save_model_folder(directory, full_model, image_processor=image_processor, tokenizer=tokenizer)

    if args.lora:
        _save_atomically(final_dirs[0], lambda d: save_adapter(train_model, d))
        if args.merge:
            merged = merge_adapter(train_model)
            _save_atomically(final_dirs[1], lambda d: save_full(d, merged))
    else:
        _save_atomically(final_dirs[0], lambda d: save_full(d, model))
    sys.stderr.write(
        f"trained {trainer.state.global_step} steps on {len(dataset)} images ({trainer.num_skipped_images} broken "
        f"images skipped); wrote {', '.join(final_dirs)}\n"
    )
    return 0
