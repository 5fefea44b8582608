"""A minimal stand-in for the Hugging Face Hub on 127.0.0.1, serving local directories as model repositories
(`add_repo`) and dataset repositories (`add_dataset`).

It answers the requests huggingface_hub makes to download files (`/api/models/{repo}`, `/api/models/{repo}/tree/...`,
`/{repo}/resolve/{revision}/{path}`; for datasets the same under `/api/datasets/` and `/datasets/`), so that loading
code that takes Hub ids is tested without the network: run the code in a process with `HF_ENDPOINT` set to
`LocalHub.endpoint`.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class LocalHub:
    def __init__(self):
        self.repos: dict[str, Path] = {}
        self.datasets: dict[str, Path] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_repo(self, repo_id: str, folder) -> None:
        self.repos[repo_id] = Path(folder)

    def add_dataset(self, repo_id: str, folder) -> None:
        """Serve `folder` as the dataset repository `repo_id` (`repo_type="dataset"` in huggingface_hub)."""
        self.datasets[repo_id] = Path(folder)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _send(handler, code, body=b"", headers=None, head=False):
        handler.send_response(code)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _handle(self, handler, head):
        path = handler.path
        self.requests.append(f"{handler.command} {path}")
        repos = self.repos
        if dataset := re.match(r"^(/api)?/datasets(/.*)$", path):  # dataset URLs: the model ones with a prefix
            path = dataset.group(2) if dataset.group(1) is None else "/api/models" + dataset.group(2)
            repos = self.datasets
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/tree/[^/]+/?([^?]*)", path):
            root = repos.get(match.group(1))
            if root is None:
                return self._send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)
            folder = root / match.group(2)
            entries = []
            if folder.is_dir():
                for child in sorted(folder.iterdir()):
                    relative = child.relative_to(root).as_posix()
                    if child.is_dir():
                        entries.append({"type": "directory", "path": relative, "oid": COMMIT})
                    else:
                        entries.append({"type": "file", "path": relative, "size": child.stat().st_size, "oid": COMMIT})
            return self._send(handler, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)
        if match := re.match(r"^/api/models/([^/]+/[^/]+?)(?:/revision/[^/?]+)?/?(?:\?.*)?$", path):
            root = repos.get(match.group(1))
            if root is None:
                return self._send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            body = json.dumps(
                {"id": match.group(1), "sha": COMMIT, "private": False, "siblings": [{"rfilename": f} for f in files]}
            ).encode()
            return self._send(handler, 200, body, {"Content-Type": "application/json", "X-Repo-Commit": COMMIT}, head)
        if match := re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/([^?]+)", path):
            root = repos.get(match.group(1))
            if root is None:
                return self._send(handler, 404, b"", {"X-Error-Code": "RepoNotFound"}, head)
            file = root / match.group(2)
            if not file.is_file():
                return self._send(handler, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, head)
            data = file.read_bytes()
            headers = {
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Repo-Commit": COMMIT,
                "Content-Type": "application/octet-stream",
            }
            return self._send(handler, 200, data, headers, head)
        return self._send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"}, head)


def hub_env(hub: LocalHub, home) -> dict:
    """Environment for a child process that talks to `hub` instead of huggingface.co."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update({"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"})
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env
