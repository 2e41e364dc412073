"""After a 79 MP page, a real `chatvlmllm serve` gives the memory back (chatvlmllm.server.memory).

The server subprocess's RSS (psutil) is read after a small warm-up request, then after each of
three requests carrying the hostile corpus's 79 MP page (8,900² greyscale PNG, within every limit).
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request

import pytest
from PIL import Image

from chatvlmllm.devtools.servers import server_process, settled_rss_mb
from tests.helpers import image_bytes

pytestmark = pytest.mark.slow  # a server subprocess and three 79 MP decodes: about a minute

# Kept above the level before, per request. Measured on 2 cores (benchmarks/serve_memory.py): with the
# trim the server ends within ±3 MB of where it was; without it, it kept +5 to +512 MB, varying by run
# (glibc's arenas). 50 MB leaves the trimmed figure a wide margin yet stays under the smallest copy of
# the page a request makes (79 MB greyscale; 237 MB as RGB), so a page still held fails the test.
KEPT_BOUND_MB = 50
LARGE_SIDE = 8_900


def chat_body(model: str, image: Image.Image) -> bytes:
    url = "data:image/png;base64," + base64.b64encode(image_bytes(image)).decode()
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}]
    return json.dumps({"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}]}).encode()


def post(base_url: str, body: bytes) -> int:
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        return response.status


def test_memory_is_given_back_after_a_79_megapixel_page(tiny_qwen2_vl, tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CHATVLMLLM_MODELS_FILE": str(tmp_path / "models.toml"),
        "CHATVLMLLM_DATA_DIR": str(tmp_path / "data"),
    }
    large = chat_body(tiny_qwen2_vl.name, Image.new("L", (LARGE_SIDE, LARGE_SIDE), 255))
    with server_process(["--model-path", str(tiny_qwen2_vl)], env=env) as server:
        # The first image request pays one-off costs (the image processor, torch's kernels): before the baseline.
        assert post(server.base_url, chat_body(tiny_qwen2_vl.name, Image.new("L", (224, 224), 255))) == 200
        before = settled_rss_mb(server.process.pid)
        for _ in range(3):  # glibc keeps the freed heap in some runs and not others: several tries
            assert post(server.base_url, large) == 200
            after = settled_rss_mb(server.process.pid, timeout_s=30)
            assert after - before < KEPT_BOUND_MB, f"kept {after - before:,.0f} MB ({before:,.0f} → {after:,.0f})"
