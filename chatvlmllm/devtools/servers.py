"""Start and wait for a `chatvlmllm serve` subprocess (for tests, benchmarks and scripts)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chatvlmllm.server import DEFAULT_HOST


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nothing listens on right now (for tests, benchmarks and scripts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.bind((host, 0))
        return probe_socket.getsockname()[1]


@dataclass(frozen=True)
class ServerProcess:
    """A started `chatvlmllm serve`: its base URL (…/v1) and its process (for its memory, its pid)."""

    base_url: str
    process: subprocess.Popen


@contextlib.contextmanager
def running_server(
    args: Sequence[str], port: int | None = None, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[str]:
    """Run `chatvlmllm serve ARGS` in a subprocess on 127.0.0.1; yield its base URL (…/v1); always stop it."""
    with server_process(args, port, env, timeout_s) as server:
        yield server.base_url


@contextlib.contextmanager
def server_process(
    args: Sequence[str], port: int | None = None, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[ServerProcess]:
    """Run `chatvlmllm serve ARGS` in a subprocess on 127.0.0.1 until it answers; always stop it.

    The server's output goes to a temporary log that is shown when it fails to start.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "chatvlmllm", "serve", *args, "--host", DEFAULT_HOST, "--port", str(port)]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base_url = f"http://{DEFAULT_HOST}:{port}/v1"
            try:
                wait_until_ready(base_url, timeout_s, process)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                raise RuntimeError(f"{exc}; server output:\n{log.read()[-4000:]}") from None
            yield ServerProcess(base_url, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_ready(base_url: str, timeout_s: float = 60.0, process: Any = None) -> None:
    """Poll `/health` under `base_url` (with or without /v1) until the server answers.

    `process` (a subprocess.Popen) makes a server that died while starting fail at once.
    """
    root = base_url.rstrip("/").removesuffix("/v1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no answer from {root}/health within {timeout_s:g} s")


def settled_rss_mb(pid: int, settle_s: float = 1.0, timeout_s: float = 15.0) -> float:
    """A process's resident memory (MB) once it has moved by no more than 1 MB for `settle_s`
    (or whatever it is after `timeout_s`): a server finishing a request frees memory for a moment."""
    import psutil

    process = psutil.Process(pid)
    deadline = time.monotonic() + timeout_s
    last, since = process.memory_info().rss / 1e6, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = process.memory_info().rss / 1e6
        if abs(now - last) > 1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            break
    return last
