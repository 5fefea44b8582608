# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""`ramplus serve`: the tagging service on LitServe (the `serve` extra).

LitServe runs the model workers (one per device, or `workers` on the CPU) and their dynamic batching
(`max_batch_size` requests, waiting at most `batch_timeout` seconds for a batch to fill); the worker tags a batch with
`TaggingService` (one pipeline call per set of options). In front of LitServe's route, an ASGI middleware of this
module (running in the HTTP processes) keeps the limits and the other formats:

- `POST /v1/tag` (JSON or multipart files) and the Hub's task format on `POST /` and
  `POST /v1/zero-shot-image-classification`, all parsed here (`serving.requests`) into one JSON form that the worker
  reads; a malformed request is a 4xx naming the problem before it takes a worker's time;
- the request body limit (413), the bounded queue (503 with `Retry-After` when `max_queue` requests are in flight),
  the per-request timeout (LitServe: 504), a client that disconnects freeing its place in the queue;
- `GET /metrics` (Prometheus: requests by route and status, latency histogram, images, batch sizes, errors) and one
  JSON log line per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass

from .requests import RequestError, TagRequest, parse_form_fields, parse_json_request


try:  # the serve extra
    import litserve as ls
    from starlette.responses import JSONResponse
except ImportError:
    ls = JSONResponse = None
_LitAPI = ls.LitAPI if ls is not None else object


logger = logging.getLogger("transformers_ramplus.serve")

TAG_PATH = "/v1/tag"
HUB_PATHS = ("/", "/v1/zero-shot-image-classification")


@dataclass
class ServeSettings:
    """Everything `ramplus serve` takes (see its `--help`)."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    precision: str | None = None
    accelerator: str = "auto"
    workers: int = 1
    max_batch_size: int = 8
    batch_timeout: float = 0.01
    max_queue: int = 64
    max_body_bytes: int = 32 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    timeout: float = 60.0
    allow_urls: bool = False
    url_timeout: float = 10.0
    log_level: str = "info"
    api_servers: int = 1

    def check(self) -> ServeSettings:
        for name in ("workers", "max_batch_size", "max_queue", "max_body_bytes", "max_image_pixels", "api_servers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        for name in ("batch_timeout", "timeout", "url_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or (name != "batch_timeout" and value == 0):
                raise ValueError(f"`{name}` must be a positive number of seconds, got {value!r}")
        if self.host not in ("127.0.0.1", "0.0.0.0", "::"):
            raise ValueError(f"`host` must be 127.0.0.1, 0.0.0.0 or :: (LitServe binds only these), got {self.host!r}")
        if not 1024 <= int(self.port) <= 65535:
            raise ValueError(f"`port` must be in 1024..65535, got {self.port!r}")
        return self


# ------------------------------------------------------------------------------------------------ logs and metrics
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's `fields`."""

    def format(self, record):
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


class _Metrics:
    """The service's Prometheus metrics, shared by its processes (prometheus_client's multiprocess mode)."""

    def __init__(self):
        from prometheus_client import Counter, Histogram

        self.requests = Counter("ramplus_requests", "HTTP requests by route and status", ["route", "status"])
        self.errors = Counter("ramplus_errors", "requests answered with an error, by kind", ["kind"])
        self.latency = Histogram(
            "ramplus_request_latency_seconds", "request latency (receive to answer)", ["route"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.images = Counter("ramplus_images", "images tagged")
        self.batch_size = Histogram(
            "ramplus_batch_size", "requests per worker batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
        )


_METRICS: _Metrics | None = None


def metrics() -> _Metrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = _Metrics()
    return _METRICS


def render_metrics() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


# ------------------------------------------------------------------------------------------------ the HTTP side
async def _send_json(send, status: int, body, headers: dict | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class ServiceMiddleware:
    """Limits, formats, metrics and logs in front of LitServe's `/v1/tag` route (see the module docstring)."""

    def __init__(self, app, settings: dict):
        self.app = app
        self.settings = ServeSettings(**settings)
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path == "/metrics" and method == "GET":
            body, content_type = render_metrics()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type.encode())]})
            return await send({"type": "http.response.body", "body": body})
        if method != "POST" or path not in (TAG_PATH, *HUB_PATHS):
            return await self.app(scope, receive, send)
        route = TAG_PATH if path == TAG_PATH else "hub"
        started = time.perf_counter()
        status_box = {"status": 500}

        async def send_recording(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, send_recording, path)
        finally:
            status, elapsed = status_box["status"], time.perf_counter() - started
            m = metrics()
            m.requests.labels(route, str(status)).inc()
            m.latency.labels(route).observe(elapsed)
            if status >= 400:
                m.errors.labels("client" if status < 500 else ("overload" if status in (503, 504) else "server")).inc()
            logger.info(
                "request", extra={"fields": {"method": method, "path": path, "status": status, "seconds": round(elapsed, 4)}}
            )

    async def _serve(self, scope, receive, send, path):
        settings = self.settings
        if self.in_flight >= settings.max_queue:
            return await _send_json(send, 503, {"error": "the server is busy: too many requests queued"}, {"Retry-After": 1})
        self.in_flight += 1
        try:
            try:
                body = await self._read_body(scope, receive)
                request = await self._parse(scope, body, path)
            except RequestError as error:
                return await _send_json(send, error.status, error.as_json())
            payload = json.dumps(request.to_json()).encode("utf-8")
            headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            inner = dict(scope, path=TAG_PATH, raw_path=TAG_PATH.encode(), headers=headers)
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": payload, "more_body": False}
                return await receive()

            # the request runs while we watch the client: a disconnect cancels it and frees its place in the queue
            task = asyncio.ensure_future(self.app(inner, replay, send))
            disconnect = asyncio.ensure_future(self._wait_disconnect(receive))
            done, _ = await asyncio.wait({task, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                task.cancel()
                logger.info("client disconnected", extra={"fields": {"path": path}})
            else:
                disconnect.cancel()
                task.result()
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _wait_disconnect(receive):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def _read_body(self, scope, receive) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.settings.max_body_bytes
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("the client disconnected", status=499)
            chunk = message.get("body", b"")
            size += len(chunk)
            too_large = too_large or size > limit
            if not too_large:
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        if too_large:  # read to the end (nothing kept), so that the client reads the answer instead of a reset
            raise RequestError(f"the request body is larger than the limit of {limit} bytes", status=413)
        return b"".join(chunks)

    async def _parse(self, scope, body: bytes, path: str) -> TagRequest:
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        allow_urls = self.settings.allow_urls
        if content_type.startswith("multipart/form-data"):
            from starlette.formparsers import MultiPartException
            from starlette.requests import Request

            async def once():
                return {"type": "http.request", "body": body, "more_body": False}

            try:
                form = await Request(dict(scope), once).form(max_files=256, max_fields=256)
            except (MultiPartException, ValueError, KeyError) as error:  # starlette's parser: a malformed body
                raise RequestError(f"malformed multipart body: {error}") from None
            fields: dict[str, list[str]] = {}
            files = []
            for name, value in form.multi_items():
                if isinstance(value, str):
                    fields.setdefault(name, []).append(value)
                else:
                    files.append((value.filename or name, await value.read()))
            await form.close()
            request = parse_form_fields(fields, files, allow_urls)
            if path in HUB_PATHS:
                raise RequestError("the zero-shot-image-classification routes take JSON (`inputs`, `parameters`)")
            return request
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if path in HUB_PATHS and body[:1] not in (b"{", b"["):  # the Hub's raw-bytes form: the image itself
                raise RequestError("send the image as base64 JSON: {\"inputs\": ..., \"parameters\": {...}}") from None
            raise RequestError("the request body is not valid JSON") from None
        return parse_json_request(data, allow_urls, default_format="hub" if path in HUB_PATHS else "tag")


# ------------------------------------------------------------------------------------------------ the worker side
class TaggingAPI(_LitAPI):
    """A LitServe worker: decodes the JSON the middleware made, tags batches with `TaggingService`."""

    def __init__(self, settings: ServeSettings):
        super().__init__(max_batch_size=settings.max_batch_size, batch_timeout=settings.batch_timeout, api_path=TAG_PATH)
        self.settings = settings

    def setup(self, device):
        import torch

        from .service import TaggingService

        if self.settings.workers > 1 and str(device).startswith("cpu"):
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.settings.workers))
        self.service = TaggingService(
            self.settings.model, device=device, precision=self.settings.precision,
            max_image_pixels=self.settings.max_image_pixels, url_timeout=self.settings.url_timeout,
        )
        configure_logging(self.settings.log_level)
        logger.info("worker ready", extra={"fields": {"device": str(device), "model": self.settings.model}})

    def decode_request(self, request):
        try:  # never raises: one bad request must not fail the batch it is in
            return parse_json_request(dict(request), self.settings.allow_urls)
        except RequestError as error:
            return error

    def batch(self, inputs):
        return list(inputs)

    def unbatch(self, output):
        return output

    def predict(self, requests):
        single = not isinstance(requests, list)
        requests = [requests] if single else requests
        metrics().batch_size.observe(len(requests))
        good = [r for r in requests if isinstance(r, TagRequest)]
        answers = iter(self.service.answer(good) if good else [])
        out = [next(answers) if isinstance(r, TagRequest) else r for r in requests]
        metrics().images.inc(sum(len(r.images) for r in good))
        return out[0] if single else out

    def encode_response(self, answer):
        if isinstance(answer, RequestError):
            return JSONResponse(answer.as_json(), status_code=answer.status)
        return JSONResponse(answer.body, status_code=answer.status)


def build_server(settings: ServeSettings):
    """The LitServer of `settings` (not started)."""
    if ls is None:
        raise ImportError("`ramplus serve` needs the serve extra: pip install 'transformers-ramplus[serve]'")
    settings.check()
    api = TaggingAPI(settings)
    accelerator = settings.accelerator
    return ls.LitServer(
        api,
        accelerator=accelerator,
        devices=1 if accelerator == "cpu" else "auto",
        workers_per_device=settings.workers,
        timeout=settings.timeout,
        middlewares=[(ServiceMiddleware, {"settings": asdict(settings)})],
        enable_shutdown_api=False,
    )


def serve(settings: ServeSettings) -> None:
    """Run the service until SIGTERM or Ctrl-C (LitServe's graceful shutdown: running requests finish)."""
    if ls is None:
        raise ImportError("`ramplus serve` needs the serve extra: pip install 'transformers-ramplus[serve]'")
    settings.check()
    # the metrics of every process (HTTP servers, workers) in one place, before any process starts
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="ramplus-serve-metrics-"))
    configure_logging(settings.log_level)
    server = build_server(settings)

    def stop(signum, frame):  # SIGTERM as Ctrl-C: LitServe's graceful shutdown stops the HTTP servers and workers too
        logger.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    logger.info("starting", extra={"fields": {"host": settings.host, "port": settings.port, "model": settings.model}})
    server.run(
        host=settings.host, port=settings.port, num_api_servers=settings.api_servers, log_level=settings.log_level,
        generate_client_file=False,
    )


__all__ = ["HUB_PATHS", "TAG_PATH", "JsonFormatter", "ServeSettings", "ServiceMiddleware", "TaggingAPI", "build_server", "serve"]
