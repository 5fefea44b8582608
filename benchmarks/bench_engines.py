"""Which serving engine for `ramplus serve`: LitServe or Ray Serve, measured on this machine (loopback only).

For each engine, one worker serving a trivial JSON echo (no model: the engine's own cost), dynamic batching of up to
8 requests: the seconds from start to the first healthy answer, and the requests per second of 16 concurrent
clients sending 400 requests. Usage: python benchmarks/bench_engines.py  (needs litserve and ray[serve])
"""

import concurrent.futures
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


CLIENTS, REQUESTS, PORT = 16, 400, 18931

LITSERVE = f"""
import litserve as ls
class Echo(ls.LitAPI):
    def setup(self, device): pass
    def decode_request(self, request): return request["x"]
    def batch(self, xs): return list(xs)
    def predict(self, xs): return xs
    def unbatch(self, ys): return ys
    def encode_response(self, y): return {{"y": y}}
if __name__ == "__main__":
  ls.LitServer(Echo(max_batch_size=8, batch_timeout=0.01, api_path="/echo"), accelerator="cpu").run(
    host="127.0.0.1", port={PORT}, generate_client_file=False, log_level="warning")
"""

RAY = f"""
import time
from ray import serve
from starlette.requests import Request
@serve.deployment(num_replicas=1)
class Echo:
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def run(self, xs): return xs
    async def __call__(self, request: Request):
        return {{"y": await self.run((await request.json())["x"])}}
serve.start(http_options={{"host": "127.0.0.1", "port": {PORT + 1}}})
serve.run(Echo.bind(), route_prefix="/echo")
while True: time.sleep(1)
"""


def post(i, port=PORT):
    data = json.dumps({"x": i}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/echo", data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["y"] == i


def measure(name, code, port):
    script = os.path.join(tempfile.mkdtemp(), f"{name.split()[0].lower()}_echo.py")  # spawned workers import it
    with open(script, "w") as stream:
        stream.write(code)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while True:
            try:
                post(-1, port)
                break
            except OSError:  # not listening yet
                if time.perf_counter() - started > 180:
                    raise TimeoutError(name)
                time.sleep(0.2)
        startup = time.perf_counter() - started
        begin = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda i: post(i, port), range(REQUESTS)))
        rate = REQUESTS / (time.perf_counter() - begin)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the engine's processes (HTTP servers, workers) too
        process.wait(60)
        if "ray" in code:  # the Ray cluster this run started (its daemons outlive the driver)
            subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), "stop"], capture_output=True, check=False)
    print(f"{name:9s} startup {startup:6.1f} s   {rate:7.1f} requests/s ({CLIENTS} clients, {REQUESTS} requests)")


if __name__ == "__main__":
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    measure("LitServe", LITSERVE, PORT)
    measure("Ray Serve", RAY, PORT + 1)
