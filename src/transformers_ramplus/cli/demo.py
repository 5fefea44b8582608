"""`ramplus demo`: the web demo (Gradio; the `demo` extra) on --host/--port.

This module only parses the options; `transformers_ramplus.serving.demo` does the work.
"""

from __future__ import annotations

import os
import sys

from ..serving.demo import launch_demo, require_gradio


def add_arguments(parser):
    parser.add_argument("--model", default=os.environ.get("RAMPLUS_MODEL"), required=os.environ.get("RAMPLUS_MODEL") is None,
                        help="RAM++, RAM or Tag2Text model: a folder or a Hub id (default: $RAMPLUS_MODEL)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind: 127.0.0.1 (default) or 0.0.0.0")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best there is)")
    parser.add_argument("--precision", default=None, help="passed to the tagging pipeline: e.g. fp32, bf16, int8")
    parser.add_argument("--title", default=None, help="the page's title")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")


def run(args) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1-65535, got {args.port}")
    try:
        require_gradio()
    except ImportError as error:
        sys.stderr.write(f"ramplus demo: error: {error}\n")
        return 2
    launch_demo(args.model, host=args.host, port=args.port, device=args.device, precision=args.precision,
                share=args.share, title=args.title)
    return 0
