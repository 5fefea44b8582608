# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The `ramplus` command line (exit codes: 0 done, 1 some inputs failed, 2 usage or input-file errors, 3 internal
error). Each sub-command lives in `transformers_ramplus.cli.<name>` and defines
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when their command runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# name -> (module, one-line help)
COMMANDS = {
    "convert": ("transformers_ramplus.cli.convert", "convert the authors' RAM++ checkpoint to a transformers model"),
    "tag": ("transformers_ramplus.cli.tag", "tag images and folders with built-in or your own tags"),
    "describe": ("transformers_ramplus.cli.describe", "write LLM descriptions of tags for open-set tagging"),
    "finetune": ("transformers_ramplus.cli.finetune", "fine-tune a RAM++ model (LoRA or full) on your images and tags"),
    "evaluate": ("transformers_ramplus.cli.evaluate", "benchmark mAP / CP / CR / F1 of a RAM++ model as JSON"),
    "export-onnx": ("transformers_ramplus.cli.export_onnx", "export the tagger to ONNX (open-set label inputs)"),
    "serve": ("transformers_ramplus.cli.serve", "serve the tagger over HTTP (LitServe; the serve extra)"),
    "demo": ("transformers_ramplus.cli.demo", "the web demo in a browser (Gradio; the demo extra)"),
}


EXIT_CODES = """exit codes:
  0  everything done
  1  some inputs failed (unreadable or unreachable images, an empty folder, nothing readable); the rest is done
  2  usage or input-file errors (bad options, missing or corrupt model/tag files, an output in use or written
     with other options)
  3  internal error (a bug: rerun with --verbose and report the traceback)
  130 interrupted (Ctrl-C)"""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `ramplus` parser. With `argv`, only the chosen command's module is imported and its arguments added.

    A command module may set `PARSER_CLASS` (e.g. transformers' `HfArgumentParser`) for its sub-parser."""
    parser = argparse.ArgumentParser(
        prog="ramplus",
        description="RAM++ image tagging with Hugging Face transformers",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None) if argv is not None else None
    for name, (module_name, help_text) in COMMANDS.items():
        if chosen is not None and name != chosen:
            subparsers.add_parser(name, help=help_text, description=help_text).set_defaults(_module=module_name)
            continue
        module = importlib.import_module(module_name)
        default_class = subparsers._parser_class
        subparsers._parser_class = getattr(module, "PARSER_CLASS", default_class)
        try:
            sub = subparsers.add_parser(
                name, help=help_text, description=help_text, epilog=EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        finally:
            subparsers._parser_class = default_class
        sub.set_defaults(_module=module_name)
        module.add_arguments(sub)
    return parser


# Library messages that a `ramplus` user cannot act on (without --verbose): deprecations inside transformers, torch,
# peft and the ONNX exporter, the exporter's note that torchvision's operators are not registered, and the axis-name
# notes of dynamic shapes. Warnings about the user's model, data or options still show.
NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration",)
# pydicom logs (with a traceback) a file it cannot read, which the reading code reports as an error record already
SILENCED_LOGGERS = ("pydicom",)
NOISY_WARNINGS = (
    (FutureWarning, ""),
    (DeprecationWarning, ""),
    (UserWarning, r"# The axis name: .* will not be used"),
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
)


def configure_output(verbose: bool = False, progress: bool = True) -> None:
    """One handler per message and progress bars only for long steps.

    Our log records go through the root handler this sets up; huggingface_hub has its own handler (which also
    propagated to the root, printing every Hub warning twice) and keeps only that one. transformers' own bars
    ("Loading weights", "Writing model shards": fractions of a second with memory-mapped safetensors) are off; Hub
    download bars (minutes for a 3 GB checkpoint) follow `progress` (`--no-progress`)."""
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("huggingface_hub").propagate = False
    # transformers has its own handler too: keep its records away from the root handler whatever enabled propagation
    logging.getLogger("transformers").propagate = False
    if verbose:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in SILENCED_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    for category, message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # datasets' "Map"/"Generating train split" bars over a few rows (read when datasets is imported)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    if not progress:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def check_device(device) -> None:
    """`--device` names a device this torch build has (a clear error instead of a traceback from deep in torch)."""
    if not device:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps): {error}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else "finds no usable GPU"
            raise ValueError(f"--device {device!r}: this torch build ({torch.__version__}) {build}; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device!r}: there are {torch.cuda.device_count()} GPU(s) (cuda:0 ...)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device!r}: MPS is not available on this machine; use --device cpu")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    configure_output(verbose=args.verbose, progress=not getattr(args, "no_progress", False))
    module = importlib.import_module(args._module)
    try:
        check_device(getattr(args, "device", None))
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except (ValueError, TypeError, OSError) as error:
        if args.verbose:
            raise
        sys.stderr.write(f"ramplus {args.command}: error: {error}\n")
        return 2
    except Exception as error:  # a bug, not a user error: say so, and exit with a code of its own
        if args.verbose:
            raise
        import traceback

        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"ramplus {args.command}: internal error ({type(error).__name__}: {error}); please report it\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
