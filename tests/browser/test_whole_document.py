"""The whole document in a real browser, on a machine without a vision-language model (the offline engine):
a multi-page PDF is read in the background, a question is answered from every page with a citation chip, the chip
opens the page with the cited lines highlighted where they are; a scanned PDF's reading shows its progress and
stops with Cancel. Screenshots go to artifacts/browser/ (not committed)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chatvlmllm.devtools.pdfs import Layer, PageKind, PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.loading import load_document
from tests.browser.conftest import (
    ASSISTANT,
    WAIT_S,
    ask,
    click_until,
    new_chat,
    screenshot,
    select_option,
    streamlit_server,
    upload,
    wait_answer,
    wait_idle,
    wait_until,
)
from tests.helpers import CONTRACT_PAGE, CONTRACT_QUESTION, contract_pdf
from ui.language import PAGE_PICKER, SWITCH_KEY

pytestmark = pytest.mark.browser

SCANNED_PAGES = 12  # enough OCR work (seconds a page) to see the reading under way and cancel it
PAD = 12  # display pixels: the highlight's outline reaches a little beyond a line's box
# The bytes of an <img>'s picture as the browser fetched it, base64.
FETCH_IMAGE = """async img => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}"""
CAPTIONS = '[data-testid="stCaptionContainer"], [data-testid="stImageCaption"]'


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_whole_document")
    env = {"CHATVLMLLM_MODELS_FILE": str(root / "none.toml")}
    with streamlit_server(root, env) as info:
        yield info


def shows_text(page, text: str) -> bool:
    return page.locator(CAPTIONS, has_text=text).count() > 0


def yellow_share(pixels: np.ndarray) -> float:
    """The share of the highlight's yellow among `pixels` (RGB), over white paper or over ink."""
    red, green, blue = (pixels[..., channel].astype(np.int32) for channel in range(3))
    yellow = (red > 150) & (green > 120) & (red - blue > 60)
    return float(yellow.sum()) / max(1, yellow.size)


def test_a_citation_chip_opens_the_page_with_the_cited_lines_highlighted(page, server):
    path = server["root"] / "contract.pdf"
    path.write_bytes(contract_pdf())
    upload(page, path)
    wait_until(lambda: shows_text(page, "all 6 pages read"), "the reading never finished", WAIT_S)
    wait_idle(page)
    ask(page, CONTRACT_QUESTION)
    turns = wait_answer(page, server["db"], 1, WAIT_S)
    citations = turns[-1]["citations"]
    assert citations[0]["page"] == CONTRACT_PAGE and citations[0]["verified"]
    answer = page.locator(ASSISTANT).last
    assert "Offline answer (extractive)" in answer.inner_text()
    chip = answer.locator(".st-key-turn1_cite_0 button:visible").first
    assert chip.inner_text().strip().endswith(f"p. {CONTRACT_PAGE}")
    screenshot(page, "whole-document-answer-with-chips.png")

    cited = page.locator(".st-key-cited_page img").first
    click_until(page, chip, lambda: cited.count() > 0 and cited.evaluate("img => img.complete && img.naturalWidth > 0"),
                "the chip did not open the page")  # fmt: skip
    wait_idle(page)
    assert shows_text(page, f"contract.pdf — page {CONTRACT_PAGE}: the cited lines are highlighted")
    screenshot(page, "whole-document-cited-page.png")
    _check_highlight(cited, path, [c for c in citations if c["page"] == CONTRACT_PAGE])

    click_until(page, page.locator(".st-key-close_citation button"),
                lambda: page.locator(".st-key-cited_page").count() == 0, "the cited page did not close")  # fmt: skip

    # The language switch rewords the page picker's choice too, while its value stays (page 2).
    box = page.locator(f'[class*="st-key-{PAGE_PICKER}_"]').first
    picker = box.locator('[role="combobox"]').first
    assert picker.input_value() == "Whole document"
    key = next(name for name in box.get_attribute("class").split() if name.startswith("st-key-"))
    select_option(page, "", "Page 2", key=key.removeprefix("st-key-"))
    select_option(page, "Language", "Русский", key=SWITCH_KEY)
    wait_until(lambda: picker.input_value() == "Страница 2", lambda: f"the page picker shows {picker.input_value()!r}")
    wait_idle(page)
    screenshot(page, "whole-document-page-picker-ru.png")


def _check_highlight(image_element, pdf: Path, citations: list[dict]) -> None:
    """The image the browser shows (the file it loaded; an element screenshot is offset by the sticky panel):
    yellow over each cited line's box, and (nearly) none anywhere else."""
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(image_element.evaluate(FETCH_IMAGE)))).convert("RGB"))
    rendered = load_document(pdf.read_bytes(), pdf.name).page(CONTRACT_PAGE - 1)
    scale = shown.shape[1] / rendered.width
    boxes = [[round(value * scale) for value in box] for citation in citations for box in citation["boxes"]]
    assert boxes
    outside = np.ones(shown.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        assert yellow_share(shown[y0:y1, x0:x1]) > 0.3, f"no highlight where the cited line {x0, y0, x1, y1} is"
        outside[max(0, y0 - PAD) : y1 + PAD, max(0, x0 - PAD) : x1 + PAD] = False
    assert yellow_share(shown[outside]) < 0.002, "yellow where no cited line is"


def test_the_reading_shows_its_progress_and_stops_with_cancel(page, server):
    path = server["root"] / "scans.pdf"
    pages = filler_pages(SCANNED_PAGES, seed=5, lines_per_page=12)
    path.write_bytes(build_pdf([PageSpec(spec.lines, PageKind.SCAN, Layer.NONE) for spec in pages]))
    new_chat(page)
    upload(page, path)
    progress = page.locator('[data-testid="stProgress"]', has_text="Reading scans.pdf")
    wait_until(lambda: progress.count() > 0 and "s left" in progress.first.inner_text(),
               "no progress with the time left", WAIT_S)  # fmt: skip
    text = progress.first.inner_text()
    assert f"of {SCANNED_PAGES} pages" in text
    screenshot(page, "whole-document-reading-progress.png")

    stopped = "Reading scans.pdf stopped after"
    click_until(page, page.locator('[class*="st-key-cancel_reading_"] button').first,
                lambda: shows_text(page, stopped), "Cancel did not stop the reading")  # fmt: skip
    wait_until(lambda: page.locator('[class*="st-key-resume_reading_"] button').count() > 0, "no Resume", WAIT_S)
    # The progress bar goes when the rerun ends (until then Streamlit keeps it, faded, as a stale element).
    still = page.locator('[data-testid="stProgress"]', has_text="Reading scans.pdf")
    wait_until(lambda: still.count() == 0, "the progress bar stayed after Cancel", WAIT_S)
    screenshot(page, "whole-document-reading-cancelled.png")
