"""A small Hugging Face hub on 127.0.0.1 serving model folders, for download tests and demos.

It answers the three requests huggingface_hub makes for a snapshot: the repo metadata
(`/api/models/{repo}/revision/{rev}`), file metadata (`HEAD /{repo}/resolve/{rev}/{file}`) and
file bodies (`GET`, with `Range` for resumed downloads). Point `HF_ENDPOINT` at its URL.
Knobs for tests: a per-chunk delay (progress and cancel become observable), a held file (its
body stops before its last chunk until the test releases it), gated repos, and an unreachable
mode (every request answers 503).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
HOLD_LIMIT_S = 300.0  # a held transfer goes on by itself after this, should a test never release it
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/?]+))?/?(?:\?.*)?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/?]+)")


@dataclass
class FakeHub:
    repos: dict[str, Path] = field(default_factory=dict)  # "org/name" → folder
    gated: set[str] = field(default_factory=set)
    chunk_delay_s: float = 0.0
    unreachable: bool = False
    requests: list[str] = field(default_factory=list)
    # file name → release event: that file's body stops before its last chunk until the event is set
    # (`holding` is set once a transfer waits there), so a test acts mid-file without timing luck.
    held: dict[str, threading.Event] = field(default_factory=dict)
    holding: threading.Event = field(default_factory=threading.Event)

    def commit(self, repo: str) -> str:
        digest = hashlib.sha1(repo.encode())
        for path in sorted(self.files(repo)):
            digest.update(path.encode())
            digest.update(str((self.repos[repo] / path).stat().st_size).encode())
        return digest.hexdigest()

    def files(self, repo: str) -> list[str]:
        folder = self.repos[repo]
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _etag(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read hub.requests
            log.debug(format, *args)

        def _refuse(self, repo: str | None) -> bool:
            if hub.unreachable:
                self.send_error(503, "hub unavailable")
                return True
            if repo is None or repo not in hub.repos:
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.end_headers()
                return True
            if repo in hub.gated:
                self.send_response(403)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header("X-Error-Message", "Access to this model is restricted: accept its licence")
                self.end_headers()
                return True
            return False

        def do_HEAD(self) -> None:
            self._resolve(send_body=False)

        def do_GET(self) -> None:
            hub.requests.append(f"GET {self.path} {self.headers.get('Range', '')}".strip())
            tree = _TREE.match(self.path)
            if tree:
                repo = tree.group("repo")
                if self._refuse(repo):
                    return
                folder = hub.repos[repo]
                self._json(
                    [
                        {"type": "file", "path": f, "size": (folder / f).stat().st_size, "oid": _etag(folder / f)}
                        for f in hub.files(repo)
                    ]
                )
                return
            info = _INFO.match(self.path)
            if info:
                repo = info.group("repo")
                if self._refuse(repo):
                    return
                self._json(
                    {
                        "id": repo,
                        "modelId": repo,
                        "sha": hub.commit(repo),
                        "private": False,
                        "gated": False,
                        "siblings": [
                            {"rfilename": f, "size": (hub.repos[repo] / f).stat().st_size} for f in hub.files(repo)
                        ],
                    }
                )
                return
            self._resolve(send_body=True)

        def _json(self, data: object) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _resolve(self, send_body: bool) -> None:
            match = _RESOLVE.match(self.path.split("?", 1)[0])
            repo = match.group("repo") if match else None
            if self._refuse(repo):
                return
            assert match is not None and repo is not None
            path = hub.repos[repo] / match.group("file")
            if not path.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            size = path.stat().st_size
            start = 0
            ranged = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if ranged:
                start = int(ranged.group(1))
            self.send_response(206 if ranged and send_body else 200)
            self.send_header("ETag", f'"{_etag(path)}"')
            self.send_header("X-Repo-Commit", hub.commit(repo))
            self.send_header("Content-Length", str(size - start if send_body else size))
            if ranged and send_body:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            if not send_body:
                return
            release = hub.held.get(match.group("file"))
            with path.open("rb") as handle:
                handle.seek(start)
                while chunk := handle.read(CHUNK):
                    if release is not None and handle.tell() >= size:  # the last chunk waits for the test
                        hub.holding.set()
                        release.wait(HOLD_LIMIT_S)
                    try:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if hub.chunk_delay_s:
                        time.sleep(hub.chunk_delay_s)

    return Handler


@contextlib.contextmanager
def serving(hub: FakeHub) -> Iterator[str]:
    """Run `hub` on a free 127.0.0.1 port; yield its endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    """`python -m chatvlmllm.devtools.fake_hub REPO=FOLDER ... [--delay S]`: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("repos", nargs="+", metavar="ORG/NAME=FOLDER")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between 64 KiB chunks")
    args = parser.parse_args(argv)
    hub = FakeHub({r.split("=", 1)[0]: Path(r.split("=", 1)[1]) for r in args.repos}, chunk_delay_s=args.delay)
    with serving(hub) as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
