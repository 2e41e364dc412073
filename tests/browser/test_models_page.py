"""The Models page in a real browser: a download from a fake hub (HF_ENDPOINT on 127.0.0.1)
shows live byte progress, then the model turns ready. Screenshots go to artifacts/browser/."""

from __future__ import annotations

import pytest

from chatvlmllm.devtools.fake_hub import FakeHub, serving
from tests.browser.conftest import CHROMIUM_ARGS, screenshot, streamlit_server, wait_until
from tests.helpers import write_models_file

pytestmark = pytest.mark.browser

HUB_REPO = "tiny/qwen2-vl"


@pytest.fixture
def models_app(chromium, tmp_path, tiny_qwen2_vl):
    # 64 KiB chunks every 0.15 s: the 0.9 MB weights take a few seconds, long enough to watch.
    hub = FakeHub({HUB_REPO: tiny_qwen2_vl}, chunk_delay_s=0.15)
    models = write_models_file(
        tmp_path / "models.toml", {"tiny_remote": {"family": "qwen2_vl", "hub_id": HUB_REPO, "weights_gb": 0.001}}
    )
    with serving(hub) as endpoint:
        env = {
            "HF_HUB_OFFLINE": "0",  # the fake hub on 127.0.0.1 is this test's whole network
            "HF_ENDPOINT": endpoint,
            "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
            "CHATVLMLLM_MODELS_FILE": str(models),
            "CHATVLMLLM_DATA_DIR": str(tmp_path / "data"),
        }
        with streamlit_server(tmp_path, env) as app:
            yield {"url": app["url"], "hub": hub, "cache": tmp_path / "hf-cache"}


def test_a_download_shows_byte_progress_then_the_model_is_ready(models_app, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(60_000)
        # As a person gets there: the app, then "Models" in the sidebar. (A deep link to /models on a
        # freshly started server draws Streamlit's "Page not found" dialog over the page.)
        page.goto(models_app["url"])
        page.locator('[data-testid="stSidebarNav"] a', has_text="Models").click()
        page.wait_for_selector('[data-testid="stDataFrame"]')
        button = page.locator(".st-key-download_tiny_remote button")
        try:
            button.wait_for()
        except Exception:
            screenshot(page, "FAILED-models-page.png")
            raise
        assert "Download" in button.inner_text()
        try:
            button.click()
        except Exception:
            screenshot(page, "FAILED-models-click.png")
            raise

        progress = page.locator('[data-testid="stProgress"]', has_text="Downloading tiny_remote")
        progress.wait_for()
        # Sizes through Babel's formatter: CLDR writes the kilobyte "kB".
        wait_until(lambda: " of " in progress.inner_text() and "kB" in progress.inner_text(), "byte progress shown")
        first = progress.inner_text()
        screenshot(page, "models-download-progress.png")
        wait_until(lambda: not progress.count() or progress.inner_text() != first, "progress moved", timeout_s=30)

        ready = page.locator('[data-testid="stCaptionContainer"]', has_text="ready (")
        ready.first.wait_for(timeout=60_000)
        screenshot(page, "models-download-ready.png")
        assert any(r.startswith("GET /tiny/qwen2-vl/resolve/") for r in models_app["hub"].requests)
        assert list(models_app["cache"].rglob("model.safetensors"))
        browser.close()
