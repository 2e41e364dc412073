"""The Models page in a real browser: a download from a fake hub (HF_ENDPOINT on 127.0.0.1)
shows live byte progress, then the model turns ready. Screenshots go to artifacts/browser/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from chatvlmllm.devtools.fake_hub import FakeHub, serving
from tests.conftest import write_models_file
from tests.test_browser_e2e import CHROMIUM_ARGS, REPO, _free_port, _wait_healthy, chromium, screenshot, wait_until

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the fixture, shared with the chat end-to-end test

HUB_REPO = "tiny/qwen2-vl"


@pytest.fixture
def models_app(chromium, tmp_path, tiny_qwen2_vl):
    # 64 KiB chunks every 0.15 s: the 0.9 MB weights take a few seconds, long enough to watch.
    hub = FakeHub({HUB_REPO: tiny_qwen2_vl}, chunk_delay_s=0.15)
    models = write_models_file(
        tmp_path / "models.toml", {"tiny_remote": {"family": "qwen2_vl", "hub_id": HUB_REPO, "weights_gb": 0.001}}
    )
    with serving(hub) as endpoint:
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
        env.update(
            {
                "HF_ENDPOINT": endpoint,
                "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
                "CHATVLMLLM_MODELS_FILE": str(models),
                "CHATVLMLLM_DATA_DIR": str(tmp_path / "data"),
            }
        )
        port = _free_port()
        log = tmp_path / "streamlit.log"
        with log.open("w") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                 "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                 "--server.fileWatcherType", "none"],
                cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield {"url": url, "hub": hub, "cache": tmp_path / "hf-cache"}
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_download_shows_byte_progress_then_the_model_is_ready(models_app, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(models_app["url"] + "/Models")
        page.wait_for_selector('[data-testid="stDataFrame"]')
        button = page.locator(".st-key-download_tiny_remote button")
        try:
            button.wait_for()
        except Exception:
            screenshot(page, "FAILED-models-page.png")
            raise
        assert "Download" in button.inner_text()
        button.click()

        progress = page.locator('[data-testid="stProgress"]', has_text="Downloading tiny_remote")
        progress.wait_for()
        wait_until(lambda: " of " in progress.inner_text() and "KB" in progress.inner_text(), "byte progress shown")
        first = progress.inner_text()
        screenshot(page, "models-download-progress.png")
        wait_until(lambda: not progress.count() or progress.inner_text() != first, "progress moved", timeout_s=30)

        ready = page.locator('[data-testid="stCaptionContainer"]', has_text="ready (")
        ready.first.wait_for(timeout=60_000)
        screenshot(page, "models-download-ready.png")
        assert any(r.startswith("GET /tiny/qwen2-vl/resolve/") for r in models_app["hub"].requests)
        assert list(models_app["cache"].rglob("model.safetensors"))
        browser.close()
        time.sleep(0)  # nothing else to wait for: the server fixture stops streamlit
