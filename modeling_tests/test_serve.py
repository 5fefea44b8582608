"""`ramplus serve` against a real server on 127.0.0.1 (the golden tiny model; one server for the module)."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import REFERENCE_IMAGES


# a server start costs about a minute on 2 shared cores: run by .ci/run explicitly (pytest -m slow ...)
pytestmark = pytest.mark.slow
pytest.importorskip("litserve")
pytest.importorskip("prometheus_client")

PHOTOS = [path.read_bytes() for path in REFERENCE_IMAGES]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url, body=None, content_type="application/json", method=None, timeout=60):
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if data is not None:
        request.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def server(converted_tiny, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("metrics")))
    command = [
        sys.executable, "-m", "transformers_ramplus.cli", "serve", "--model", str(converted_tiny), "--port", str(port),
        "--accelerator", "cpu", "--max-batch-size", "4", "--max-body-mb", "2", "--max-image-pixels", "20000000",
    ]
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while True:
        try:
            if _request(base + "/health", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"the server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield base, process, log
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def tagger(converted_tiny):
    from transformers import pipeline

    import transformers_ramplus  # noqa: F401

    return pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")


def _close(got, want):
    assert [t["label"] for t in got] == [t["label"] for t in want]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(got, want))


def test_tag_json_and_multipart_equal_the_pipeline(server, tagger, tmp_path):
    base = server[0]
    status, _, body = _request(base + "/v1/tag", {"images": [_b64(PHOTOS[0]), {"name": "b.jpg", "data": _b64(PHOTOS[1])}]})
    assert status == 200, body
    results = json.loads(body)["results"]
    assert [r["path"] for r in results] == ["image 0", "b.jpg"]
    paths = [str(p) for p in REFERENCE_IMAGES]
    for record, path in zip(results, paths):
        _close(record["tags"], tagger(path))
    # multipart upload with options, one bad file among good ones: the good one is tagged, the bad one named
    boundary = "ramplusboundary"
    parts = []
    for name, data in (("a.jpg", PHOTOS[0]), ("notes.txt", b"not an image")):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        )
    for name, value in (("top_k", "2"), ("threshold", "0.0")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    form = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, _, body = _request(base + "/v1/tag", form, f"multipart/form-data; boundary={boundary}")
    assert status == 200, body
    good, bad = json.loads(body)["results"]
    _close(good["tags"], tagger(paths[0], top_k=2, threshold=0.0))
    assert bad["path"] == "notes.txt" and "not a readable image" in bad["error"]


def test_hub_task_format_and_inference_client(server, tagger):
    from huggingface_hub import InferenceClient

    base = server[0]
    labels = tagger.model.config.tag_names[:4]
    want = tagger(str(REFERENCE_IMAGES[1]), candidate_labels=labels, all_labels=True)
    status, _, body = _request(base + "/", {"inputs": _b64(PHOTOS[1]), "parameters": {"candidate_labels": labels}})
    assert status == 200, body
    _close(json.loads(body), want)
    status, _, body = _request(
        base + "/v1/zero-shot-image-classification", {"inputs": _b64(PHOTOS[1]), "parameters": {"candidate_labels": labels}}
    )
    _close(json.loads(body), want)
    answer = InferenceClient(base_url=base).zero_shot_image_classification(str(REFERENCE_IMAGES[1]), candidate_labels=labels)
    assert [a.label for a in answer] == [w["label"] for w in want]
    assert all(abs(a.score - w["score"]) < 1e-5 for a, w in zip(answer, want))


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/v1/tag", b"{not json", 400, "not valid JSON"),
        ("/v1/tag", {"images": ["%%%"]}, 400, "base64"),
        ("/v1/tag", {"images": [_b64(b"GIF89a broken")]}, 400, "image 0"),
        ("/v1/tag", {"images": []}, 400, "no image"),
        ("/v1/tag", {"images": ["http://127.0.0.1:9/x.jpg"]}, 400, "--allow-urls"),
        ("/v1/tag", {"images": [_b64(PHOTOS[0])], "threshold": 2}, 422, "threshold"),
        ("/v1/tag", {"images": [_b64(PHOTOS[0])], "colour": "red"}, 422, "colour"),
        ("/", {"inputs": _b64(PHOTOS[0])}, 422, "candidate_labels"),
    ],
)
def test_bad_requests_are_named_4xx(server, path, body, status, words):
    got, _, answer = _request(server[0] + path, body)
    assert got == status, answer
    assert words in json.loads(answer)["error"]


def test_limits_body_and_pixels(server):
    base = server[0]
    status, _, body = _request(base + "/v1/tag", {"images": [_b64(os.urandom(1_600_000))]})
    assert status == 413 and "limit" in json.loads(body)["error"]
    from io import BytesIO

    from PIL import Image

    big = BytesIO()
    Image.new("1", (5000, 4100)).save(big, format="PNG")  # 20.5 M pixels, a small file: over --max-image-pixels
    status, _, body = _request(base + "/v1/tag", {"images": [{"name": "bomb.png", "data": _b64(big.getvalue())}]})
    assert status == 400 and json.loads(body)["image"] == "bomb.png"
    # the worker is not stuck: a good request still works
    assert _request(base + "/v1/tag", {"images": [_b64(PHOTOS[0])]})[0] == 200


def test_metrics_and_json_logs(server):
    base, _, log = server
    status, _, body = _request(base + "/metrics")
    text = body.decode()
    assert status == 200
    for name in ("ramplus_requests_total", "ramplus_request_latency_seconds_bucket", "ramplus_batch_size_bucket",
                 "ramplus_errors_total", "ramplus_images_total"):
        assert name in text
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(entry.get("message") == "request" and entry.get("status") == 200 for entry in lines)


def test_sigterm_stops_gracefully(server):
    """Last in the module: SIGTERM ends the server (all its processes) promptly."""
    process = server[1]
    children = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True, check=False).stdout.split()
    assert len(children) > 1  # the main process, its HTTP server and its worker
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    deadline = time.time() + 30
    while subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, check=False).returncode == 0:
        assert time.time() < deadline, "processes of the server outlived SIGTERM"
        time.sleep(0.5)
