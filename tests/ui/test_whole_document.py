"""The whole document in the app, through AppTest on a machine without a vision-language model (the offline
engine answers): a multi-page PDF is read in the background, a question with no page chosen covers every page,
the answer's citation chip opens the page with the cited lines highlighted where they are; the reading shows its
progress, stops with Cancel, goes on with Resume, and resumes by itself after a restart."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from chatvlmllm.devtools.pdfs import Layer, PageKind, PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.index import ReadState
from chatvlmllm.documents.reading import ReadingJob, job_of
from tests.documents.test_text_layer import ENGLISH
from tests.helpers import CONTRACT_QUESTION, contract_pdf
from tests.ui.conftest import fresh_process

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
YELLOW_SHARE = 0.3  # of a highlighted line's pixels, at least (its letters and the outline are the rest)


@pytest.fixture
def media(monkeypatch) -> dict[str, bytes]:
    """The files the page hands to the browser (st.image's PNGs), by URL: what the user would see."""
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[self.get_url(file_id)] = self.get_file(file_id).content
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return files


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.main.file_uploader[0].set_value((name, data, "application/pdf")).run()
    assert not at.exception
    return at


def session(at: AppTest):
    return at.session_state["chat_session"]


def job(at: AppTest) -> ReadingJob:
    chat = session(at)
    found = job_of(chat.document.sha256, chat.index)
    assert found is not None, "no reading job started"
    return found


def wait_for(condition, what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # a poll interval, not a wait for something to happen


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.main.caption)


def picker(at: AppTest):
    chat = session(at)
    return at.main.selectbox(key=f"page_picker_{chat.id}_{chat.document.sha256[:12]}")


def yellow_share(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """The share of pixels inside `box` that are the highlight's yellow (over white or over ink)."""
    x0, y0, x1, y1 = (round(v) for v in box)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int32)[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    yellow = (red > 150) & (green > 120) & (red - blue > 60)
    return float(yellow.sum()) / max(1, yellow.size)


@pytest.mark.slow
def test_a_question_is_answered_from_the_whole_pdf_and_its_chip_opens_the_page_highlighted(offline_app, media):
    at = upload(start(), "contract.pdf", contract_pdf())
    assert picker(at).options[:2] == ["Whole document", "Page 1"] and picker(at).options[-1] == "All pages"
    assert picker(at).value == -1  # the whole document, by default
    assert job(at).wait(120).state is ReadState.DONE
    at.run()
    assert "contract.pdf: all 6 pages read (6 from the text layer)" in captions(at)

    at.chat_input[0].set_value(CONTRACT_QUESTION).run()
    assert not at.exception
    answer = session(at).conversation.turns[-1]
    assert answer.text.startswith("Offline answer (extractive)") and answer.citations[0].page == 4
    chips = [button for button in at.main.button if button.key and button.key.startswith("turn1_cite_")]
    assert chips and chips[0].label == "p. 4"
    assert "contract.pdf, whole document" in " ".join(c.value for c in at.chat_message[0].caption)

    chips[0].click().run()
    assert not at.exception
    cited = at.main.image[0]
    assert cited.proto.imgs[0].caption == "contract.pdf — page 4: the cited lines are highlighted"
    shown = Image.open(io.BytesIO(media[cited.proto.imgs[0].url]))
    page = session(at).document.page(3)
    scale = shown.width / page.width
    cited_lines = [c for c in answer.citations if c.page == 4]
    for citation in cited_lines:  # the highlight is where each cited line is...
        for x0, y0, x1, y1 in citation.boxes:
            assert yellow_share(shown, (x0 * scale, y0 * scale, x1 * scale, y1 * scale)) > YELLOW_SHARE
    stored = session(at).index.page_text(cited_lines[0].document, 4)
    cited_boxes = {box for c in cited_lines for box in c.boxes}
    for line in stored.lines:  # ...and nowhere else on the page
        if line.box not in cited_boxes and not any(_touch(line.box, box) for box in cited_boxes):
            x0, y0, x1, y1 = line.box
            assert yellow_share(shown, (x0 * scale, y0 * scale, x1 * scale, y1 * scale)) < 0.02

    at.button(key="close_citation").click().run()
    assert at.main.image[0].proto.imgs[0].caption == "contract.pdf — page 1 of 6"  # back to the page in view


def _touch(a: tuple[float, ...], b: tuple[float, ...], pad: float = 6.0) -> bool:
    """Two boxes within the highlight's padding of each other (a neighbour line may be brushed by the outline)."""
    return a[0] - pad < b[2] and b[0] - pad < a[2] and a[1] - pad < b[3] and b[1] - pad < a[3]


def test_an_unverified_citation_is_shown_as_such(offline_app, media):
    from chatvlmllm.chat.conversation import Turn
    from chatvlmllm.documents.citations import Citation, CitationStatus

    at = upload(start(), "contract.pdf", contract_pdf())
    chat = session(at)
    chat.conversation.add(
        Turn("user", CONTRACT_QUESTION, document="contract.pdf", document_sha256=chat.document.sha256)
    )
    quote = "a bonus of fifty pounds a day"
    chat.conversation.add(
        Turn("assistant", f'"{quote}" [p. 4]', model="tiny", citations=[
            Citation(4, quote, [], CitationStatus.NOT_ON_PAGE, chat.document.sha256, "contract.pdf", 41.0)])
    )  # fmt: skip
    at.run()
    chip = at.main.button(key="turn1_cite_0")
    assert chip.label == "p. 4 · unverified" and "quoted words are not on this page" in chip.help
    chip.click().run()
    image = at.main.image[0].proto.imgs[0]
    assert image.caption == "contract.pdf — page 4: nothing highlighted, the citation is not verified"
    assert yellow_share(Image.open(io.BytesIO(media[image.url])), (0, 0, 10_000, 10_000)) < 0.001
    warning = " ".join(w.value for w in at.main.warning)
    assert "Unverified citation" in warning and quote in warning


@pytest.mark.slow
def test_the_reading_shows_progress_cancels_resumes_and_goes_on_after_a_restart(offline_app):
    scans = build_pdf([PageSpec(ENGLISH if n == 2 else filler_pages(1, seed=n)[0].lines, PageKind.SCAN, Layer.NONE)
                       for n in range(1, 6)])  # fmt: skip
    at = upload(start(), "scans.pdf", scans)
    running = job(at)
    wait_for(lambda: running.progress().pages_read >= 1, "no page was OCR'd")
    at.run()
    progress = at.main.get("progress")[0]
    assert "Reading scans.pdf:" in progress.proto.text and "of 5 pages" in progress.proto.text
    assert "s left" in progress.proto.text  # a page is read: the time left is estimated

    at.main.button(key=f"cancel_reading_{session(at).document.sha256[:12]}").click().run()
    stopped = running.wait(300)
    assert stopped.state is ReadState.CANCELLED and 1 <= stopped.pages_read < 5
    at.run()
    assert f"Reading scans.pdf stopped after {stopped.pages_read} of 5 pages" in captions(at)

    at.chat_input[0].set_value("What is the penalty for late delivery of the goods?").run()
    answer = session(at).conversation.turns[-1]  # answered from the pages read, saying so
    assert answer.text.startswith(
        f"Still reading: this answer comes from the pages read so far ({stopped.pages_read} of 5"
    )

    at.main.button(key=f"resume_reading_{session(at).document.sha256[:12]}").click().run()
    resumed = job(at)
    assert resumed is not running
    wait_for(lambda: resumed.progress().pages_read > stopped.pages_read, "the resumed reading read nothing")
    assert resumed.progress().resumed_from == stopped.pages_read  # the pages read before were not read again

    # A restart while it reads: the stored state still says running; the new process resumes when the chat opens.
    chat_id, index, sha = session(at).id, session(at).index, session(at).document.sha256
    resumed.cancel()
    resumed.wait(300)
    index.set_state(sha, ReadState.RUNNING)
    fresh_process()
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params["chat"] = chat_id
    again.run()
    assert not again.exception
    after_restart = job(again)
    assert after_restart.progress().resumed_from == index.status(sha).pages_read or after_restart.progress().finished
    assert after_restart.wait(600).state is ReadState.DONE
    again.run()
    assert "scans.pdf: all 5 pages read (5 by OCR)" in captions(again)
