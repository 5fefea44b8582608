"""`ramplus serve`: the tagging service over HTTP (LitServe; the `serve` extra).

Endpoints: `POST /v1/tag` (multipart files or base64 JSON; URLs with --allow-urls), the Hub's task format on
`POST /` and `POST /v1/zero-shot-image-classification` (what `huggingface_hub.InferenceClient(base_url=...)` sends),
`GET /health`, `GET /metrics` (Prometheus). Stops gracefully on SIGTERM or Ctrl-C. Logs are JSON lines on stderr.

This module only parses the options; `transformers_ramplus.serving.server` does the work.
"""

from __future__ import annotations

import os

from ..serving.server import ServeSettings, serve


def add_arguments(parser):
    parser.add_argument("--model", default=os.environ.get("RAMPLUS_MODEL"), required=os.environ.get("RAMPLUS_MODEL") is None,
                        help="RAM++ model: a folder or a Hub id (default: $RAMPLUS_MODEL)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind: 127.0.0.1 (default), 0.0.0.0 or ::")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--precision", default=None, help="passed to the tagging pipeline (enable_fast_inference): e.g. fp32, bf16, int8")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="one worker per device of this kind")
    parser.add_argument("--workers", type=int, default=1, help="workers per device (on CPUs: N processes sharing the cores)")
    parser.add_argument("--max-batch-size", type=int, default=8, help="dynamic batching: at most this many requests per forward pass")
    parser.add_argument("--batch-timeout", type=float, default=0.01, help="dynamic batching: seconds to wait for a batch to fill")
    parser.add_argument("--max-queue", type=int, default=64, help="requests in flight per HTTP process before answering 503 + Retry-After")
    parser.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body (413 above)")
    parser.add_argument("--max-image-pixels", type=int, default=40_000_000, help="largest image (decompression-bomb limit)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait for a worker (504 after)")
    parser.add_argument("--allow-urls", action="store_true", help="accept image URLs (the server fetches them)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args) -> int:
    settings = ServeSettings(
        model=args.model, host=args.host, port=args.port, precision=args.precision, accelerator=args.accelerator,
        workers=args.workers, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout,
        max_queue=args.max_queue, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_image_pixels=args.max_image_pixels, timeout=args.timeout, allow_urls=args.allow_urls,
        log_level=args.log_level,
    )
    settings.check()
    serve(settings)
    return 0
