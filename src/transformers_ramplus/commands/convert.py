"""`ramplus convert ORIGINAL.pth OUTPUT_DIR`: the authors' checkpoint -> a transformers model directory."""

from __future__ import annotations

import sys


def add_arguments(parser):
    parser.add_argument("checkpoint", help="original RAM++ checkpoint (.pth), e.g. ram_plus_swin_large_14m.pth")
    parser.add_argument("output_dir", help="directory to write (must not exist unless --overwrite)")
    parser.add_argument("--tag-list", help="ram_tag_list.txt (one English tag per line)")
    parser.add_argument("--tag-list-chinese", help="ram_tag_list_chinese.txt (same order)")
    parser.add_argument("--thresholds", help="ram_tag_list_threshold.txt (one threshold per tag)")
    parser.add_argument("--variant", default="auto", choices=["auto", "swin_l", "swin_b"], help="image encoder")
    parser.add_argument("--decoder-heads", type=int, default=4, help="decoder attention heads (not in the shapes)")
    parser.add_argument("--text-tower", help="transformers CLIP checkpoint to bundle (Hub id or directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def run(args) -> int:
    from ..convert import convert_checkpoint

    report = convert_checkpoint(
        args.checkpoint,
        args.output_dir,
        tag_list=args.tag_list,
        tag_list_chinese=args.tag_list_chinese,
        thresholds=args.thresholds,
        variant=args.variant,
        num_attention_heads=args.decoder_heads,
        overwrite=args.overwrite,
        text_tower=args.text_tower,
    )
    config = report.config
    sys.stderr.write(
        f"converted {report.converted_keys} tensors ({config.num_tags} tags x {config.descriptions_per_tag} "
        f"descriptions, Swin embed_dim {config.vision_config.embed_dim}) -> {report.output_dir}\n"
        f"dropped {len(report.dropped_buffers)} recomputed buffers; skipped {len(report.unknown_keys)} unknown keys\n"
    )
    for key in report.unknown_keys:
        sys.stderr.write(f"  skipped: {key}\n")
    return 0
