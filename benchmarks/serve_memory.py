"""Memory of `chatvlmllm serve` around a 79 MP image request: RSS before, at peak, and after.

Starts `chatvlmllm serve` on 127.0.0.1 with the tiny Qwen2-VL (built here, offline) or the
checkpoint given with --model-path, warms it up with a small image (one-off costs such as the image
processor's first use stay out of the figures), reads the server process's RSS (psutil), then sends
the 79 MP page of the hostile-input corpus (8,900² greyscale PNG, within every limit) `--requests`
times. Per request: the peak RSS while it runs (sampled every 5 ms) and the RSS once the response
is in and the server has settled (no change over `--settle-s`, or `--max-wait-s` at most).

    python benchmarks/serve_memory.py [--side 8900] [--requests 3] [--model-path DIR]
                                      [--out artifacts/serve_memory.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MB = 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8_900, help="the page is side × side pixels (8,900² = 79 MP)")
    parser.add_argument("--requests", type=int, default=3, help="large-image requests in a row")
    parser.add_argument("--settle-s", type=float, default=1.0, help="RSS unchanged this long counts as settled")
    parser.add_argument("--max-wait-s", type=float, default=15.0)
    parser.add_argument("--model-path", help="checkpoint to serve (default: a tiny Qwen2-VL built now)")
    parser.add_argument("--out", default="artifacts/serve_memory.json")
    args = parser.parse_args()

    import psutil

    from chatvlmllm.devtools.servers import server_process, settled_rss_mb

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.model_path) if args.model_path else tiny_model(Path(scratch) / "tiny_qwen2_vl")
        env = {
            **os.environ,
            "CHATVLMLLM_DATA_DIR": str(Path(scratch) / "data"),
            "CHATVLMLLM_MODELS_FILE": str(Path(scratch) / "models.toml"),
        }
        large = request_body(folder.name, page_png(args.side))
        with server_process(["--model-path", str(folder)], env=env) as server:
            process = psutil.Process(server.process.pid)
            post(server.base_url, request_body(folder.name, page_png(224)))  # warm-up
            before = settled_rss_mb(process.pid, args.settle_s, args.max_wait_s)
            print(f"before: {before:,.0f} MB", flush=True)
            rows = [measure(server.base_url, process, large, args) for _ in range(args.requests)]
    result = {
        "what": f"chatvlmllm serve, one {args.side:,}² greyscale PNG ({args.side**2 / 1e6:.0f} MP) per request",
        "model": str(args.model_path or "tiny Qwen2-VL (random weights, built offline)"),
        "rss_before_mb": round(before),
        "requests": rows,
        "rss_after_mb": rows[-1]["rss_after_mb"],
        "kept_mb": rows[-1]["rss_after_mb"] - round(before),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"kept after the last request: {result['kept_mb']:,} MB; wrote {out}")
    return 0


def tiny_model(folder: Path) -> Path:
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(folder)


def page_png(side: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), 255).save(buffer, "PNG")
    return buffer.getvalue()


def request_body(model: str, png: bytes) -> bytes:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}]
    return json.dumps({"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}]}).encode()


def post(base_url: str, body: bytes) -> float:
    """Send one chat completion; its seconds."""
    started = time.perf_counter()
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        if response.status != 200:
            raise SystemExit(f"the request failed: HTTP {response.status}")
        response.read()
    return time.perf_counter() - started


def measure(base_url: str, process, body: bytes, args: argparse.Namespace) -> dict:
    from chatvlmllm.devtools.servers import settled_rss_mb

    peak = PeakSampler(process)
    with peak:
        seconds = post(base_url, body)
    after = settled_rss_mb(process.pid, args.settle_s, args.max_wait_s)
    row = {"seconds": round(seconds, 1), "rss_peak_mb": round(peak.peak_mb), "rss_after_mb": round(after)}
    print(f"request: {row['seconds']} s, peak {row['rss_peak_mb']:,} MB, after {row['rss_after_mb']:,} MB", flush=True)
    return row


class PeakSampler:
    """The peak RSS (MB) of another process while the block runs."""

    def __init__(self, process) -> None:
        self.process = process
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / MB)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


if __name__ == "__main__":
    raise SystemExit(main())
