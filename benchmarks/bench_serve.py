"""Load test of `ramplus serve` on loopback: 16 concurrent clients send 500 requests of real photos (the fixture
photos, in turn) to `POST /v1/tag`, against a server with dynamic batching and one with batch size 1.

Every response is checked against the single-image pipeline result for that photo (same tags in the same order,
scores within 1e-5): no mixed-up batches, nothing lost. Prints throughput and p50/p99 latency per configuration and
their ratio, naming the CPU. The model is the golden tiny RAM++ converted from modeling_tests/fixtures (or --model).

    python benchmarks/bench_serve.py [--model DIR] [--clients 16] [--requests 500] [--max-batch-size 16] [--batch-timeout 0.02]
"""

import argparse
import base64
import concurrent.futures
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "modeling_tests" / "fixtures"
PHOTOS = sorted((FIXTURES / "images").glob("*.jpg"))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tiny_model(folder: Path) -> Path:
    from transformers_ramplus.cli.main import main

    tiny = FIXTURES / "tiny"
    code = main(["convert", str(tiny / "ram_plus_original.pth"), str(folder), "--tag-list", str(tiny / "ram_tag_list.txt"),
                 "--tag-list-chinese", str(tiny / "ram_tag_list_chinese.txt"), "--thresholds", str(tiny / "ram_tag_list_threshold.txt")])
    assert code == 0
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(base, body):
    request = urllib.request.Request(base + "/v1/tag", data=body, headers={"content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.load(response)
    return time.perf_counter() - started, answer


def run(model, max_batch_size, clients, requests, bodies, expected, batch_timeout=0.02):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "transformers_ramplus.cli", "serve", "--model", str(model), "--port", str(port),
         "--accelerator", "cpu", "--max-batch-size", str(max_batch_size), "--batch-timeout", str(batch_timeout),
         "--max-queue", str(4 * clients), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
            if process.poll() is not None:
                raise RuntimeError("the server did not start")
        post(base, bodies[0])  # warm-up
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            outcomes = list(pool.map(lambda i: (i, *post(base, bodies[i % len(bodies)])), range(requests)))
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    mismatches = 0
    for i, _, answer in outcomes:
        got, want = answer["results"][0]["tags"], expected[i % len(expected)]
        same = [t["label"] for t in got] == [t["label"] for t in want] and all(
            abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(got, want))
        mismatches += not same
    latencies = sorted(latency for _, latency, _ in outcomes)
    return {
        "max_batch_size": max_batch_size,
        "requests": len(outcomes),
        "throughput": len(outcomes) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "mismatches": mismatches,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.02, help="seconds the server waits for a batch to fill")
    args = parser.parse_args(argv)
    from transformers import pipeline

    import transformers_ramplus  # noqa: F401

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or tiny_model(Path(scratch) / "tiny")
        tagger = pipeline("zero-shot-image-tagging", model=str(model), device="cpu")
        expected = [tagger(str(photo)) for photo in PHOTOS]  # the single-image pipeline results
        bodies = [json.dumps({"images": [base64.b64encode(p.read_bytes()).decode()]}).encode() for p in PHOTOS]
        rows = [run(model, size, args.clients, args.requests, bodies, expected, args.batch_timeout)
                for size in (args.max_batch_size, 1)]
    print(f"CPU: {cpu_name()}; {args.clients} clients, {args.requests} requests of {len(PHOTOS)} photos; "
          f"model {args.model or 'golden tiny'}; batch timeout {args.batch_timeout} s")
    print("| max batch size | requests/s | p50 latency (s) | p99 latency (s) | responses differing from the pipeline |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['max_batch_size']} | {row['throughput']:.1f} | {row['p50']:.3f} | {row['p99']:.3f} | {row['mismatches']} of {row['requests']} |")
    print(f"dynamic batching / batch size 1 throughput: {rows[0]['throughput'] / rows[1]['throughput']:.2f}x")
    return 1 if any(row["mismatches"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
