"""The service's ASGI middleware without a server or a model: the bounded queue (503 + Retry-After), a client that
disconnects freeing its place, and requests reaching LitServe's route in the one JSON form the workers read."""

import asyncio
import base64
import json
from dataclasses import asdict

import pytest


pytest.importorskip("litserve")
pytest.importorskip("prometheus_client")

from transformers_ramplus.serving.server import TAG_PATH, ServeSettings, ServiceMiddleware


PHOTO = base64.b64encode(b"\xff\xd8 not decoded here").decode()


def _scope(path="/v1/tag", body=b""):
    return {
        "type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }


class Client:
    """One HTTP exchange: the request body, then (optionally) a disconnect; records what the server sends."""

    def __init__(self, body: bytes, disconnect: asyncio.Event | None = None):
        self.body, self.disconnect, self.sent, self.given = body, disconnect, [], False

    async def receive(self):
        if not self.given:
            self.given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        if self.disconnect is not None:
            await self.disconnect.wait()
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # the client stays

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self):
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def headers(self):
        return dict(next(m["headers"] for m in self.sent if m["type"] == "http.response.start"))


def test_queue_bound_disconnect_and_forwarding(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    release, seen, cancelled = asyncio.Event(), [], []

    async def app(scope, receive, send):  # stands in for LitServe: holds the request until released
        message = await receive()
        seen.append((scope["path"], json.loads(message["body"])))
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(scope["path"])
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    settings = asdict(ServeSettings(model="unused", max_queue=1))
    middleware = ServiceMiddleware(app, settings)

    async def scenario():
        body = json.dumps({"inputs": PHOTO, "parameters": {"candidate_labels": ["cat", "dog"]}}).encode()
        gone = asyncio.Event()
        first = Client(body, disconnect=gone)
        task = asyncio.ensure_future(middleware(_scope("/", body), first.receive, first.send))
        while not seen:
            await asyncio.sleep(0.01)
        assert middleware.in_flight == 1
        second = Client(body)
        await middleware(_scope("/", body), second.receive, second.send)  # the queue is full
        assert second.status == 503 and second.headers[b"retry-after"] == b"1"
        gone.set()  # the first client goes away: its request is cancelled and its place freed
        await asyncio.wait_for(task, 5)
        assert cancelled == [TAG_PATH] and middleware.in_flight == 0
        third = Client(json.dumps({"images": [PHOTO], "top_k": 2}).encode())
        release.set()
        await middleware(_scope("/v1/tag", third.body), third.receive, third.send)
        assert third.status == 200
        bad = Client(b"{oops")
        await middleware(_scope("/v1/tag", bad.body), bad.receive, bad.send)
        assert bad.status == 400

    asyncio.run(scenario())
    # the Hub's format reached LitServe's one route as the JSON the workers read
    path, forwarded = seen[0]
    assert path == TAG_PATH
    assert forwarded["_format"] == "hub" and forwarded["candidate_labels"] == ["cat", "dog"]
    assert forwarded["images"] == [{"name": "image 0", "data": PHOTO}]
    assert seen[1][1]["top_k"] == 2 and seen[1][1]["_format"] == "tag"
