"""A minimal stand-in for the Hugging Face Hub on 127.0.0.1, serving local directories as model repositories
(`add_repo`) and dataset repositories (`add_dataset`).

It answers the requests huggingface_hub makes to download files (`/api/models/{repo}`, `/api/models/{repo}/tree/...`,
`/{repo}/resolve/{revision}/{path}`; for datasets the same under `/api/datasets/` and `/datasets/`), so that loading
code that takes Hub ids is tested without the network: run the code in a process with `HF_ENDPOINT` set to
`LocalHub.endpoint`. For uploads it answers `HfApi.create_repo`
(`/api/repos/create`), `create_branch` and `upload_folder`/`create_commit` (`/preupload`, then `/commit` with every
file inline, as the Hub does for "regular" files): committed files land in `uploads_dir/<repo>` and the repository
is then served like the others; `commits` records each commit (repo, revision, create_pr, paths).
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
    def __init__(self, uploads_dir=None):
        self.repos: dict[str, Path] = {}
        self.datasets: dict[str, Path] = {}
        self.requests: list[str] = []
        self.created: list[dict] = []
        self.commits: list[dict] = []
        self.validated: list = []
        self.pull_requests: list[dict] = []
        self.uploads_dir = Path(uploads_dir) if uploads_dir is not None else None
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

            def do_POST(self):
                hub._handle_post(self)

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

    def _handle_post(self, handler):
        path = handler.path
        self.requests.append(f"POST {path}")
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        json_headers = {"Content-Type": "application/json"}
        if self.uploads_dir is None:
            return self._send(handler, 403, b'{"error": "read-only stand-in"}', json_headers)
        if path.startswith("/api/repos/create"):
            request = json.loads(body or b"{}")
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            self.created.append(request)
            folder = self.uploads_dir / repo_id
            folder.mkdir(parents=True, exist_ok=True)
            self.repos.setdefault(repo_id, folder)
            return self._send(handler, 200, json.dumps({"url": f"{self.endpoint}/{repo_id}"}).encode(), json_headers)
        if path.startswith("/api/validate-yaml"):  # the card's metadata, checked before a README.md is committed
            import yaml

            content = json.loads(body or b"{}").get("content", "")
            errors = []
            try:
                metadata = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else None
            except (yaml.YAMLError, IndexError) as error:
                metadata, errors = None, [{"message": f"invalid YAML: {error}"}]
            if not isinstance(metadata, dict):
                errors = errors or [{"message": "no YAML metadata"}]
            else:
                errors = [{"message": f"missing {key}"} for key in ("license", "pipeline_tag") if key not in metadata]
            self.validated.append(metadata)
            return self._send(handler, 400 if errors else 200, json.dumps({"errors": errors, "warnings": []}).encode(), json_headers)
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/discussions/?$", path):  # create_pull_request
            request = json.loads(body or b"{}")
            self.pull_requests.append({"repo_id": match.group(1), **request})
            return self._send(handler, 200, json.dumps({"num": len(self.pull_requests)}).encode(), json_headers)
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/branch/([^/?]+)", path):
            return self._send(handler, 200, b"{}", json_headers)
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/preupload/([^/?]+)", path):
            files = json.loads(body or b"{}").get("files", [])
            answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            return self._send(handler, 200, json.dumps(answer).encode(), json_headers)
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/commit/([^/?]+)(?:\?(.*))?$", path):
            repo_id, revision, query = match.group(1), match.group(2), match.group(3) or ""
            if repo_id not in self.repos:
                return self._send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"})
            import base64

            paths = []
            for line in body.splitlines():
                item = json.loads(line)
                if item.get("key") == "file":
                    value = item["value"]
                    target = self.repos[repo_id] / value["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(value["content"]))
                    paths.append(value["path"])
                elif item.get("key") not in ("header", None):
                    return self._send(handler, 400, json.dumps({"error": f"unsupported {item['key']}"}).encode(), json_headers)
            revision = revision.replace("%2F", "/")
            create_pr = "create_pr=1" in query or revision.startswith("refs/pr/")
            self.commits.append({"repo_id": repo_id, "revision": revision, "create_pr": create_pr, "paths": sorted(paths)})
            answer = {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{COMMIT}", "commitOid": COMMIT}
            if create_pr:
                answer["pullRequestUrl"] = f"{self.endpoint}/{repo_id}/discussions/{max(len(self.pull_requests), 1)}"
            return self._send(handler, 200, json.dumps(answer).encode(), json_headers)
        return self._send(handler, 404, b"{}", {"X-Error-Code": "RepoNotFound"})

    def _handle(self, handler, head):
        path = handler.path
        self.requests.append(f"{handler.command} {path}")
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/discussions/(\d+)", path):
            number = int(match.group(2))
            details = {
                "num": number,
                "title": self.pull_requests[number - 1].get("title", ""),
                "isPullRequest": True,
                "status": "draft",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "author": {"name": "local"},
                "repo": {"name": match.group(1), "type": "model"},
                "events": [],
                "changes": {"base": "refs/heads/main"},
                "filesWithConflicts": [],
            }
            return self._send(handler, 200, json.dumps(details).encode(), {"Content-Type": "application/json"}, head)
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
