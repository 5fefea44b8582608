"""`ramplus tag PATH...`: tag images and folders with the built-in tags, your own tags, or tags with descriptions.

Results are written as they come (jsonl/csv/text: one record appended and flushed per image; json: the whole file
rewritten atomically after every batch), so an interrupted run loses nothing done; rerunning with the same
`--output` skips the images that already have a result (unless the file's size or modification time changed since,
recorded in `.NAME.ramplus-tag.index`), and a record cut short by a crash is dropped and redone.
The options that determine the results (model, tags, thresholds, top-k, language, format) are recorded next to the
output (`.NAME.ramplus-tag.json`); a rerun with other options refuses unless `--overwrite`. A lock file
(`.NAME.lock`) stops a second `ramplus tag` on the same output. Unreadable inputs are reported on stderr and as error
records, the others are tagged.

Exit codes: 0 every input tagged; 1 some inputs failed (unreadable, unreachable, an empty folder); 2 usage or
input-file errors (bad options, a corrupt tag set, an output written with other options or locked); 3 an internal
error (a bug: please report it with the traceback).

Under `accelerate launch --multi_gpu --num_processes N -m transformers_ramplus.cli tag ...` (or `torchrun`), the
inputs are shared out over the processes and merged into one output: see `transformers_ramplus.inference.sharding`.

With `--heatmaps DIR`, one PNG per image shows where its tags look (`transformers_ramplus.inference.heatmaps`):
`--heatmap-tags N` picks each image's N best tags (default 4), `--heatmap-tags "dog,grass"` the same tags for every
image.

This module only parses the options; `transformers_ramplus.inference.tag_files` does the work.
"""

from __future__ import annotations

import sys
from dataclasses import fields

from tqdm.auto import tqdm

from ..inference.heatmaps import DEFAULT_TAGS
from ..inference.precision import PRECISION_CHOICES
from ..inference.sharding import sharded_run, tag_files_sharded
from ..inference.tag_files import TagFilesOptions, TagFilesSummary, tag_files
from ..inference.caption_files import CAPTION_FORMATS, SPACING
from ..io.keywords import MODES
from ..io.records import FORMATS
from ..io.xmp import SIDECAR_NAMING


def add_arguments(parser):
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (walked) or URLs")
    parser.add_argument(
        "--model",
        default=None,
        help="RAM++ model: a folder, a Hub id of a converted model, or a Hub id of an original checkpoint (converted "
        "once and cached); default: $RAMPLUS_MODEL, else the authors' release xinyu1205/recognize-anything-plus-model",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    parser.add_argument("--original-file", metavar="FILE", help="Hub id of original checkpoints only: the one to load when the repository holds several (e.g. tag2text_swin_14m.pth in xinyu1205/recognize_anything_model)")
    parser.add_argument("--labels", nargs="+", action="extend", metavar="TAG", help="tag only these tags (built-in or new names)")
    parser.add_argument("--labels-file", help="file with one tag per line (UTF-8; lines starting with # are ignored, blank lines are an error)")
    parser.add_argument("--descriptions", metavar="FILE_OR_HUB_ID", help="tag descriptions JSON ([{tag: [descriptions]}], e.g. from `ramplus describe`): a file, a folder, or a Hub dataset id (downloaded and cached)")
    parser.add_argument("--descriptions-file", metavar="NAME", help="the JSON file to read in the --descriptions folder or Hub repository (needed when it holds several)")
    parser.add_argument("--descriptions-revision", metavar="REV", help="branch, tag or commit of the --descriptions Hub repository")
    parser.add_argument("--descriptions-repo-type", choices=["dataset", "model"], default="dataset", help="kind of the --descriptions Hub repository (default: dataset)")
    parser.add_argument("--name-templates", choices=["ram_plus", "compact"], default=None, help="how new tags given by name are embedded: the authors' 63-template ensemble (ram_plus, default) or the earlier 14 templates (compact)")
    parser.add_argument("--tag-set", help="a tag set saved with TagSet.save_pretrained (directory or Hub id)")
    parser.add_argument("--threshold", type=float, help="one threshold for all tags (default: per tag; 0.5 for new tags)")
    parser.add_argument("--top-k", type=int, help="keep at most K tags per image")
    parser.add_argument("--language", default="en", choices=["en", "zh"], help="names of built-in tags")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--recursive", "-r", action="store_true", help="walk folders recursively")
    parser.add_argument("--extensions", help="comma-separated file extensions to take from folders (default: every file)")
    parser.add_argument("--format", choices=FORMATS, help="output format (default: from --output's extension, else text)")
    parser.add_argument("--output", "-o", help="output file (default: stdout); rerunning with the same file resumes")
    parser.add_argument("--overwrite", action="store_true", help="start --output afresh instead of resuming it (also when it was written with other options)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for an image URL's server to connect or send more data (default 10); a server that keeps sending slowly is given at most 10 times this for the whole download")
    parser.add_argument("--max-image-pixels", type=int, default=None, help="refuse encoded images declaring more pixels (decompression bombs; default about 179 million)")
    parser.add_argument(
        "--no-exif-orientation", dest="exif_orientation", action="store_const", const=False, default=None,
        help="read images as stored, ignoring their EXIF orientation tag (default: phone photos are turned upright)",
    )
    parser.add_argument(
        "--fast-decode", action="store_const", const=True, default=None,
        help="decode JPEGs at a reduced scale (1/2, 1/4 or 1/8, never below the model's input size) before resizing: "
        "large photos read 2-4x faster, but the pixels are close to, not identical to, the reference preprocessing "
        "(default: off, full decode)",
    )
    parser.add_argument(
        "--fast-resize", action="store_const", const=True, default=None,
        help="resize with torch's antialiased kernel instead of PIL's: several times faster on large photos, pixel values "
        "within 1 of PIL's (default: off, PIL's resize as the reference preprocessing)",
    )
    parser.add_argument(
        "--read-processes", type=int, default=0, metavar="N",
        help="read (decode and resize) images in N processes instead of threads: for a GPU that tags faster than threads "
        "decode (a few seconds to start; not with --captions or --heatmaps; default 0: threads)",
    )
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: first GPU, else CPU)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="inference precision (enable_fast_inference): auto (default: bf16 on CPUs with AMX or AVX-512 BF16 and on GPUs with bf16, else fp32; logged), fp32, bf16, or int8 (CPU: int8 linears, bf16 elsewhere); bf16/int8 on a CPU that emulates them warn")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--window", help="DICOM display window CENTER,WIDTH (default: each scan's own VOI window)")
    parser.add_argument(
        "--heatmaps",
        metavar="DIR",
        help="also write one PNG per image to DIR: the image with its tags and, per tag, where the model looks "
        "(needs matplotlib: pip install 'transformers-ramplus[visualize]')",
    )
    parser.add_argument(
        "--heatmap-tags",
        metavar="N_OR_TAGS",
        help=f"which tags get a heatmap: N (each image's N best tags, default {DEFAULT_TAGS}) or comma-separated tag "
        "names (the same tags for every image)",
    )
    parser.add_argument(
        "--captions",
        action="store_true",
        help="also write a caption per image, written from its tags (captioning models: Tag2Text); records gain a "
        "`caption` (jsonl/json; text: after a tab)",
    )
    parser.add_argument(
        "--tag-map",
        metavar="FILE",
        help="YAML or JSON file that renames, translates, merges, drops or keeps tags after the thresholds, in every "
        "output (sections rename: {old: new}, drop: [...], keep: [...]; or a flat {old: new-or-null})",
    )
    photo = parser.add_argument_group("keywords in photos and caption files")
    photo.add_argument(
        "--write-keywords",
        choices=MODES,
        help="write the tags as keywords photo managers read: xmp-sidecar (an XMP file beside each image, no extra "
        "tool) or embedded (XMP dc:subject + IPTC Keywords inside JPEG/TIFF/PNG/WebP, pixels untouched; needs exiftool). "
        "The user's keywords are kept; this tool's earlier ones are replaced",
    )
    photo.add_argument("--xmp-sidecar-name", choices=SIDECAR_NAMING, default="full", help="sidecar names: full = IMG_1.JPG.xmp (darktable, digiKam; default), stem = IMG_1.xmp (Lightroom)")
    photo.add_argument("--keyword-parent", default="ramplus", help="parent of the hierarchical keywords (lr:hierarchicalSubject PARENT|tag; default ramplus)")
    photo.add_argument("--keyword-scores", action="store_true", help="also write each tag's score (XMP ramplus:Scores, label=score)")
    photo.add_argument("--write-captions", choices=CAPTION_FORMATS, help="write NAME.txt beside each image: the tags by score, comma-separated (kohya-ss, taggui, WD14 style)")
    photo.add_argument("--caption-prefix", metavar="WORDS", help="trigger words written first in every caption file (comma-separated)")
    photo.add_argument("--caption-extension", default=".txt", help="extension of the caption files (default .txt)")
    photo.add_argument("--caption-spacing", choices=SPACING, default="spaces", help="multi-word tags with spaces (default) or underscores (WD14 style)")
    photo.add_argument("--max-tags", type=int, help="at most this many tags per caption file")
    photo.add_argument("--dry-run", action="store_true", help="write no keywords or caption files: list what would change (records go to stdout)")


def _report(message: str) -> None:
    tqdm.write(message, file=sys.stderr)  # above the progress bar, when there is one


def options_from(args) -> TagFilesOptions:
    """The run's options from the parsed command line."""
    values = {field.name: getattr(args, field.name) for field in fields(TagFilesOptions) if hasattr(args, field.name)}
    return TagFilesOptions(**values, progress=not args.no_progress)


def run(args) -> int:
    options = options_from(args)
    run_files = tag_files_sharded if sharded_run(options.output) else tag_files
    return exit_code(run_files(options, report=_report))


def exit_code(summary: TagFilesSummary) -> int:
    """0 every input tagged, 1 some failed (or none to tag); process 0 prints the summary."""
    code = 0 if summary.complete else 1
    if summary.rank == 0:
        processes = f" by {summary.processes} processes" if summary.processes > 1 else ""
        _report(f"tagged {summary.tagged} image(s){processes}, {summary.failed} failed, {summary.skipped} skipped (already done)")
        if not summary.inputs:
            _report("ramplus tag: no images to tag")
        if summary.processes > 1:  # the launchers report one status for all processes
            _report(f"ramplus tag: exit code {code}")
    return code
