"""`ramplus convert CHECKPOINT OUTPUT_DIR`: the authors' checkpoint (a .pth file or a Hub id) -> a model folder."""

from __future__ import annotations

import os
import sys

from huggingface_hub.errors import RepositoryNotFoundError

from ..hub import (
    TAG2TEXT_TAG_FILE,
    TAG2TEXT_TOKENIZER,
    bundled_tag2text_tag_list,
    bundled_tag_files,
    download_original_checkpoint,
    label_rows,
)
from ..io.repo_ids import looks_like_repo_id
from ..models.ram_plus.convert_ram_plus import convert_checkpoint
from ..models.tag2text.convert_tag2text import convert_checkpoint as convert_tag2text_checkpoint
from ..models.tag2text.convert_tag2text import is_tag2text_checkpoint


def add_arguments(parser):
    parser.add_argument(
        "checkpoint",
        help="original RAM++ or RAM checkpoint (the format is detected from its keys): a .pth file (e.g. "
        "ram_plus_swin_large_14m.pth, ram_swin_large_14m.pth) or a Hub repository id holding one (e.g. "
        "xinyu1205/recognize-anything-plus-model, xinyu1205/recognize_anything_model)",
    )
    parser.add_argument("output_dir", help="directory to write (must not exist unless --overwrite)")
    parser.add_argument(
        "--tag-list",
        help="ram_tag_list.txt (one English tag per line; default: the repository's, "
        "else the 4585-tag files shipped with the package when the checkpoint has 4585 tags); Tag2Text: "
        "tag2text_ori_tag_list.txt (default: the 3429-tag list shipped with the package)",
    )
    parser.add_argument("--tag-list-chinese", help="ram_tag_list_chinese.txt (same order)")
    parser.add_argument("--thresholds", help="ram_tag_list_threshold.txt (one threshold per tag)")
    parser.add_argument("--variant", default="auto", choices=["auto", "swin_l", "swin_b"], help="image encoder")
    parser.add_argument("--decoder-heads", type=int, default=4, help="decoder attention heads (not in the shapes)")
    parser.add_argument("--text-tower", help="transformers CLIP checkpoint to bundle (Hub id or directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument(
        "--original-file",
        help="Hub id only: the checkpoint file to convert, for repositories holding "
        "several (e.g. tag2text_swin_14m.pth in xinyu1205/recognize_anything_model)",
    )
    parser.add_argument(
        "--tokenizer",
        help="Tag2Text, and RAM's text side (its caption loss): the BERT tokenizer (folder or Hub id; the released "
        "models use bert-base-uncased, Tag2Text's default; [DEC] and [ENC] are added when missing for Tag2Text)",
    )
    parser.add_argument(
        "--text-heads",
        type=int,
        help="Tag2Text: attention heads of the BERT text side (default: width / 64, i.e. 12 for the released model)",
    )
    parser.add_argument("--revision", help="Hub id only: branch, tag or commit to download (default: main)")
    parser.add_argument("--cache-dir", help="Hub id only: Hugging Face cache directory (default: HF_HUB_CACHE)")


def run(args) -> int:
    checkpoint, tag_files = args.checkpoint, {}
    if not os.path.exists(checkpoint):
        if looks_like_repo_id(checkpoint):
            try:
                checkpoint, tag_files = download_original_checkpoint(
                    args.checkpoint,
                    revision=args.revision,
                    cache_dir=args.cache_dir,
                    original_file=getattr(args, "original_file", None),
                )
            except RepositoryNotFoundError:
                raise ValueError(
                    f"{args.checkpoint!r} is neither a file nor a model repository on the Hugging Face Hub "
                    "(not found, or private without a token)"
                ) from None
    if is_tag2text_checkpoint(checkpoint):
        return _convert_tag2text(checkpoint, args, tag_files)
    if args.tag_list is None:
        tag_files = tag_files or _bundled_if_4585(checkpoint)
    else:
        tag_files = {}
    report = convert_checkpoint(
        checkpoint,
        args.output_dir,
        tag_list=args.tag_list or tag_files.get("ram_tag_list.txt"),
        tag_list_chinese=args.tag_list_chinese or tag_files.get("ram_tag_list_chinese.txt"),
        thresholds=args.thresholds or tag_files.get("ram_tag_list_threshold.txt"),
        variant=args.variant,
        num_attention_heads=args.decoder_heads,
        overwrite=args.overwrite,
        text_tower=args.text_tower,
        tokenizer=args.tokenizer,  # RAM: its text side (the text_generation loss)
        text_num_attention_heads=args.text_heads,
    )
    config = report.config
    sys.stderr.write(
        f"converted {report.converted_keys} tensors ({config.model_type}: {config.num_tags} tags x "
        f"{config.descriptions_per_tag} descriptions, Swin embed_dim {config.vision_config.embed_dim}) -> "
        f"{report.output_dir}\n"
        f"dropped {len(report.dropped_buffers)} recomputed buffers; skipped {len(report.unknown_keys)} unknown keys\n"
    )
    if getattr(args, "verbose", False):  # the converter's warning already names the first ten
        for key in report.unknown_keys:
            sys.stderr.write(f"  skipped: {key}\n")
    return 0


def _bundled_if_4585(checkpoint) -> dict:
    """The package's 4585-tag files when the checkpoint's label embeddings have 4585 tags (the released model)."""

    rows = label_rows(checkpoint)
    if rows and rows % 4585 == 0:
        return {name: os.fspath(path) for name, path in bundled_tag_files().items()}
    return {}


def _convert_tag2text(checkpoint, args, tag_files) -> int:
    """A Tag2Text checkpoint (detected from its keys): its tag list and the BERT tokenizer."""
    # defaults: the 3429-tag list shipped with the package (the converter names a tag-count mismatch) and
    # bert-base-uncased from the Hub
    report = convert_tag2text_checkpoint(
        checkpoint,
        args.output_dir,
        tag_list=args.tag_list or tag_files.get(TAG2TEXT_TAG_FILE) or bundled_tag2text_tag_list(),
        tokenizer=args.tokenizer or TAG2TEXT_TOKENIZER,
        thresholds=args.thresholds,
        text_num_attention_heads=args.text_heads,
        tagging_num_attention_heads=args.decoder_heads,
        overwrite=args.overwrite,
    )
    config = report.config
    sys.stderr.write(
        f"converted {report.converted_keys} tensors (Tag2Text: {config.num_tags} tags, Swin embed_dim "
        f"{config.vision_config.embed_dim}, text vocabulary {config.text_config.vocab_size}) -> {report.output_dir}\n"
        f"checked {report.shared_keys_checked} tagging-head tensors equal to the tag encoder's; skipped "
        f"{len(report.unknown_keys)} unknown keys\n"
    )
    return 0
