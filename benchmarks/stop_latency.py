"""How fast Stop is: from `Answer.stop()` to the stopped answer saved, and to the engine done.

Two answers are stopped mid-way, each `--repeats` times, through the same `ChatSession.ask` →
`Answer` path as the app (answer on its worker thread, Stop from another thread):

- `generating`: the tiny Qwen2-VL checkpoint (random weights, repetition guard off) streaming tokens;
- `ocr_reading`: the offline OCR engine (rapidocr) reading a `--pages`-page PDF, stopped once page 1 is read.

`saved_s` is what the user waits for (the turn saved as "Stopped by you", the chat free for the next
question); `ended_s` is when the engine has ended its step and its final counts joined that turn
(an OCR page, or one token). With `--browser` it also times the page in headless Chromium: the Stop
click until the chat input is enabled again with the stopped answer shown (needs Debian's chromium;
the default OCR engine reads a PDF of at least 30 pages, stopped once page 1 is read).

    python benchmarks/stop_latency.py [--repeats 5] [--pages 12] [--browser] [--out artifacts/stop_latency.json]

The last line printed is a JSON object with the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: chatvlmllm and tests.helpers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pages", type=int, default=12)
    parser.add_argument("--browser", action="store_true", help="also time Stop in the page (headless Chromium)")
    parser.add_argument("--out", default="artifacts/stop_latency.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stop-latency-"))
    os.environ["CHATVLMLLM_DATA_DIR"] = str(work / "data")

    result: dict[str, Any] = {"benchmark": "stop_latency", "repeats": args.repeats, "cpu_count": os.cpu_count()}
    result["generating"] = summary(stop_generating(work, args.repeats))
    result["ocr_reading"] = summary(stop_reading_pages(args.pages, args.repeats))
    result["ocr_reading"]["pages"] = args.pages
    if args.browser:
        result["browser"] = summary(stop_in_the_page(work, args.pages, args.repeats))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for name in ("generating", "ocr_reading", "browser"):
        if name in result:
            figures = "  ".join(f"{key} {value:.3f} s" for key, value in result[name].items() if "_m" in key)
            print(f"{name:12s} {figures}")
    print(f"(written to {out})")
    print(
        json.dumps(
            {name: {k: v for k, v in r.items() if "median" in k} for name, r in result.items() if isinstance(r, dict)}
        )
    )
    return 0


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    keys = samples[0].keys()
    figures: dict[str, Any] = {f"{key}_median": round(statistics.median(s[key] for s in samples), 4) for key in keys}
    figures.update({f"{key}_max": round(max(s[key] for s in samples), 4) for key in keys})
    figures["samples"] = samples
    return figures


def timed_stop(answer: Any) -> dict[str, float]:
    """Stop `answer` now (it runs on its own thread); how long until saved, and until its engine ended."""
    started = time.perf_counter()
    answer.stop()
    saved = time.perf_counter() - started
    if not answer.join(600):
        raise RuntimeError("the engine did not end within 10 minutes of Stop")
    return {"saved_s": round(saved, 4), "ended_s": round(time.perf_counter() - started, 4)}


def stop_generating(work: Path, repeats: int) -> list[dict[str, float]]:
    from chatvlmllm.chat.answer import AnswerState
    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.chat.session import AskOptions
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl
    from chatvlmllm.models.catalog import spec_from_path
    from chatvlmllm.models.hardware import probe

    catalog = {"tiny": spec_from_path(build_tiny_qwen2_vl(work / "tiny_qwen2_vl"), "tiny")}
    options = AskOptions(model="tiny", max_new_tokens=4000, repetition_guard=False, fallback=False)
    cache, hardware, samples = EngineCache(), probe(), []
    for _ in range(repeats):
        session = new_session("invoice.png", 1)
        answer = session.ask("Extract all text", options, hardware, catalog, cache)
        generating = threading.Event()
        answer.on_state(lambda state, seen=generating: seen.set() if state is AnswerState.GENERATING else None)
        answer.start()
        if not generating.wait(600):
            raise RuntimeError("no text within 10 minutes")
        samples.append(timed_stop(answer))
    return samples


def stop_reading_pages(pages: int, repeats: int) -> list[dict[str, float]]:
    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.chat.session import AskOptions
    from chatvlmllm.models.catalog import load_catalog
    from chatvlmllm.models.hardware import probe

    catalog, cache, hardware, samples = load_catalog(), EngineCache(), probe(), []
    options = AskOptions(model="rapidocr", fallback=False)
    for _ in range(repeats):
        session = new_session("long.pdf", pages)
        session.select_pages(list(range(1, pages + 1)))
        answer = session.ask("Extract all text", options, hardware, catalog, cache)
        answer.start()
        deadline = time.monotonic() + 600
        while (answer.progress is None or answer.progress.done < 1) and not answer.settled:
            if time.monotonic() > deadline:
                raise RuntimeError("page 1 was not read within 10 minutes")
            time.sleep(0.01)  # a benchmark's poll of the page counter
        samples.append(timed_stop(answer))
    return samples


def new_session(name: str, pages: int) -> Any:
    from chatvlmllm.chat.session import ChatSession
    from chatvlmllm.chat.store import ChatStore
    from chatvlmllm.documents.loading import load_document
    from tests.helpers import image_bytes, pdf_of, text_image

    images = [
        text_image([f"PAGE {n} OF {pages}", "Item 1 costs 5.00", "Item 2 costs 7.50"]) for n in range(1, pages + 1)
    ]
    data = pdf_of(images) if name.endswith(".pdf") else image_bytes(images[0])
    session = ChatSession(store=ChatStore())
    session.attach(load_document(data, name))
    return session


def stop_in_the_page(work: Path, pages: int, repeats: int) -> list[dict[str, float]]:
    """The Stop click in Chromium until the chat input is enabled again, the stopped answer on the page."""
    from tests.browser.conftest import (
        ASSISTANT,
        CHAT_INPUT,
        chromium_browser,
        chromium_or_skip,
        click_button,
        new_chat,
        open_app,
        select_option,
        streamlit_server,
        upload,
        wait_answer,
        wait_until,
    )
    from tests.helpers import pdf_of, text_image

    def page_is_free(page: Any) -> bool:
        stopped = page.locator(ASSISTANT, has_text="Stopped by you").count() > 0
        return stopped and page.locator(CHAT_INPUT).is_enabled()

    pages = max(pages, 30)  # the page must still be reading when the click lands
    pdf = work / "long.pdf"
    lines = ["Item 1 costs 5.00", "Item 2 costs 7.50"]
    pdf.write_bytes(pdf_of([text_image([f"PAGE {n} OF {pages}", *lines]) for n in range(1, pages + 1)]))
    reading = re.compile(rf"Reading page ([2-9]|\d\d+) of {pages}")  # page 1 is read
    env = {"CHATVLMLLM_DATA_DIR": str(work / "browser-data"), "CHATVLMLLM_DEFAULT_MODEL": "rapidocr"}
    samples = []
    with streamlit_server(work, env) as server, chromium_browser(chromium_or_skip()) as browser:
        page = open_app(browser, server["url"])
        for _ in range(repeats):
            new_chat(page)
            upload(page, pdf)
            select_option(page, "Page (", "All pages")
            click_button(page, "quick_extract_text")
            page.locator('[data-testid="stProgress"]', has_text=reading).first.wait_for(timeout=600_000)
            started = time.perf_counter()
            click_button(page, "stop_generation")
            wait_until(lambda: page_is_free(page), "Stop never landed", 600)
            samples.append({"page_free_s": round(time.perf_counter() - started, 4)})
            wait_answer(page, server["db"], 1, 600)
    return samples


if __name__ == "__main__":
    raise SystemExit(main())
