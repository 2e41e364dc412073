"""ocr_auto, the script probe, the OCR cache, cancellation and the offline answer policy, on real pages.

The engines are the real ones (RapidOCR's bundled models, the Tesseract binary) on real items of
../shared/eval; nothing is mocked. Where a test must know whether the engine ran, it counts calls
to the engine's own page reader (a spy that calls through), or the library's recogniser.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import pytest
from PIL import Image, ImageDraw

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.decisions import Task
from chatvlmllm.engines import GenerationSettings, Message, reader_summary
from chatvlmllm.engines._ocr_answers import key_fields
from chatvlmllm.eval.metrics import cer
from chatvlmllm.i18n import use_language
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.choice import default_model
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.tasks import OFFLINE_AUTO, QUICK_PROMPTS, classify
from tests.helpers import SHARED_EVAL, engine_for, require_tesseract, text_image

RUSSIAN_LINES = ("ru_line_c6b31e0d", "ru_line_fd45b59d")  # the second: Tesseract OSD calls it Latin
RECEIPTS = ("receipt_000", "receipt_054")  # the second: Tesseract OSD calls it Cyrillic


@pytest.fixture(scope="module")
def cache():
    cache = EngineCache()
    yield cache
    cache.unload()


def eval_page(item: str) -> Image.Image:
    from chatvlmllm.documents.loading import open_document

    found = sorted((SHARED_EVAL / "images").glob(f"{item}.*"))
    if not found:
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    return open_document(found[0]).page(0)


def truth(item: str) -> str:
    return (SHARED_EVAL / "truth" / f"{item}.txt").read_text(encoding="utf-8")


class ReadCounter:
    """Counts the engine's page reads, calling through to the real reader."""

    def __init__(self, engine, monkeypatch):
        self.calls = 0
        original = engine._read_page

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(engine, "_read_page", counted)


def ask(engine, images, prompt="Extract all text", **options):
    stream = engine.stream([Message("user", prompt, list(images))], GenerationSettings(options=options))
    return stream.consume(), stream


# -- script detection, "Not set" -------------------------------------------------------------


@pytest.mark.parametrize("key", ["ocr_auto", "rapidocr"])
@pytest.mark.slow
def test_not_set_language_russian_lines_go_to_tesseract_and_the_answer_says_why(cache, key):
    require_tesseract()
    engine = engine_for(cache, key)
    for item in RUSSIAN_LINES:
        text, stream = ask(engine, [eval_page(item)], ocr_cache=False)  # no "lang": the app's "Not set"
        page = stream.extras["pages"][0]
        assert page["engine"] == "tesseract" and "Cyrillic script" in page["reason"]
        assert stream.extras["read_by"].startswith("Read by Tesseract")  # said beside the text, in words
        assert "Read by" not in text and "Tesseract" not in text  # the text is the page's only
        assert cer(text, truth(item)) < 0.1


@pytest.mark.slow
def test_not_set_language_english_receipts_stay_with_rapidocr(cache):
    require_tesseract()
    engine = engine_for(cache, "ocr_auto")
    for item in RECEIPTS:
        text, stream = ask(engine, [eval_page(item)], ocr_cache=False)
        page = stream.extras["pages"][0]
        assert page["engine"] == "rapidocr" and "Tesseract was unsure" in page["reason"]
        assert cer(text.upper(), truth(item)) < 0.35


@pytest.mark.slow
def test_a_receipt_tesseract_is_unsure_of_is_read_by_rapidocr_alone(cache, monkeypatch):
    """The probe's strip already shows Tesseract unsure of the receipt's print: no full Tesseract read."""
    require_tesseract()
    from chatvlmllm.engines._ocr_readers import Psm, TesseractReader

    engine = engine_for(cache, "ocr_auto")
    reads: list[Psm | None] = []
    words = TesseractReader.words

    def counted(self, image, language, cancel=None):
        reads.append(self.psm)  # the probe's strip is read with Psm.BLOCK, a page with None (by its shape)
        return words(self, image, language, cancel)

    monkeypatch.setattr(TesseractReader, "words", counted)
    text, stream = ask(engine, [eval_page("receipt_000")], ocr_cache=False)
    page = stream.extras["pages"][0]
    assert page["engine"] == "rapidocr" and "widest lines" in page["reason"]
    with use_language("ru"):  # the reason is a catalogue message: a Russian page says it in Russian
        said = reader_summary(stream.extras["pages"])
    assert said.startswith("Прочитано RapidOCR") and not re.search("[A-Za-z]", re.sub("RapidOCR|Tesseract", "", said))
    assert reads == [Psm.BLOCK]  # the probe only
    assert cer(text.upper(), truth("receipt_000")) < 0.2


def test_recognition_keeps_each_line_with_its_text_whatever_the_crops_order():
    """Crops go to the recogniser sorted by shape across the page; the texts come back in the crops' order."""
    from chatvlmllm.engines._ocr_readers import RapidReader

    reader = RapidReader()
    image = Image.new("RGB", (900, 220), "white")
    draw = ImageDraw.Draw(image)
    for n, words in enumerate(("TOTAL", "9.00", "GOODS SOLD ARE NOT RETURNABLE", "CASH 10.00")):
        draw.text((30, 20 + 50 * n), words, fill="black", font_size=30)
    crops = reader.detect(image).crops
    texts, _scores = reader._recognise_crops(crops, None)
    reversed_texts, _ = reader._recognise_crops(crops[::-1], None)
    assert reversed_texts == texts[::-1]
    assert {"TOTAL", "9.00", "CASH 10.00"} <= {text.strip() for text in texts}


def short_russian_line(item: str = "ru_line_0ef6475f", share: float = 0.12) -> Image.Image:
    """The first word of a real scanned Russian line ("другого."): too few letters for the probe to be sure."""
    page = eval_page(item).convert("RGB")
    return page.crop((0, 0, int(page.width * share), page.height))


@pytest.mark.parametrize("key", ["ocr_auto", "rapidocr"])
def test_a_line_too_short_to_tell_its_script_goes_to_the_reader_of_both(cache, key):
    """The held-out failure: a short Russian line sent to RapidOCR (no Cyrillic) came back as Latin junk."""
    require_tesseract()
    text, stream = ask(engine_for(cache, key), [short_russian_line()], ocr_cache=False)
    page = stream.extras["pages"][0]
    assert page["engine"] == "tesseract" and "too little text" in page["reason"]
    assert "другого" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("item", "reader"),
    [
        ("page_multicol_04", "tesseract"),  # prose columns: Tesseract sure of its reading, and of their order
        ("page_table_12", "rapidocr"),  # Tesseract sure of each cell, but reads the table cell by cell
    ],
)
def test_a_latin_page_goes_to_the_reader_its_own_evidence_points_to(cache, item, reader):
    require_tesseract()
    text, stream = ask(engine_for(cache, "ocr_auto"), [eval_page(item)], ocr_cache=False)
    assert stream.extras["pages"][0]["engine"] == reader
    assert cer(text, truth(item)) < 0.1  # both engines alone: 0.065 vs 0.452, and 0.012 vs 0.611


@pytest.mark.slow
def test_ocr_auto_records_its_choice_for_every_page(cache):
    require_tesseract()
    pages = [eval_page(RECEIPTS[0]), eval_page(RUSSIAN_LINES[0])]
    _text, stream = ask(engine_for(cache, "ocr_auto"), pages, ocr_cache=False)
    recorded = stream.extras["pages"]
    assert [(p["page"], p["engine"]) for p in recorded] == [(1, "rapidocr"), (2, "tesseract")]
    assert all(p["reason"] and p["cached"] is False for p in recorded)
    assert stream.extras["read_by"] == "Read page 1 by RapidOCR; page 2 by Tesseract."
    assert {line["page"] for line in stream.extras["lines"]} == {1, 2}


def test_ocr_auto_is_the_offline_default():
    assert OFFLINE_AUTO == "ocr_auto"
    assert default_model(probe(), load_catalog())[0] == "ocr_auto"  # no VLM weights in the test data dir


# -- the OCR cache ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_ask_about_the_same_page_does_not_run_the_engine(cache, monkeypatch):
    engine = engine_for(cache, "rapidocr")
    counter = ReadCounter(engine, monkeypatch)
    page = text_image(["INVOICE 2026-11", "TOTAL 12.50"])
    first, stream = ask(engine, [page])
    assert counter.calls == 1 and stream.extras["pages"][0]["cached"] is False
    again, stream = ask(engine, [page], prompt="What is the total?")
    assert counter.calls == 1 and stream.extras["pages"][0]["cached"] is True
    assert "TOTAL 12.50" in again and "TOTAL 12.50" in first
    # Other engine settings (a language) are another entry: read again.
    ask(engine, [page], lang="de")
    assert counter.calls == 2


_RESTARTED = """
import json, sys
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.models.catalog import get_model
from chatvlmllm.engines import Message
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from PIL import Image
spec = get_model("rapidocr")
engine = EngineCache().get(spec, plan_load(probe(), spec))
reads = []
original = engine._read_page
engine._read_page = lambda *a, **k: reads.append(1) or original(*a, **k)
stream = engine.stream([Message("user", "What is the total?", [Image.open(sys.argv[1])])])
text = stream.consume()
print(json.dumps({"reads": len(reads), "cached": stream.extras["pages"][0]["cached"], "text": text}))
"""


@pytest.mark.slow
def test_the_cache_survives_a_restart(cache, tmp_path):
    import os

    page = text_image(["INVOICE 2026-11", "TOTAL 12.50"])
    path = tmp_path / "page.png"
    page.save(path)
    ask(engine_for(cache, "rapidocr"), [Image.open(path)])  # this process reads and stores it
    done = subprocess.run(
        [sys.executable, "-c", _RESTARTED, str(path)], capture_output=True, text=True, env=dict(os.environ), check=True
    )
    restarted = json.loads(done.stdout.strip().splitlines()[-1])
    assert restarted["reads"] == 0 and restarted["cached"] is True
    assert "TOTAL 12.50" in restarted["text"]


# -- cancellation (Stop) ---------------------------------------------------------------------


def test_stop_after_the_first_page_leaves_the_later_pages_unread(cache, monkeypatch):
    engine = engine_for(cache, "rapidocr")
    counter = ReadCounter(engine, monkeypatch)
    pages = [text_image([f"PAGE {n} OF THREE"]) for n in (1, 2, 3)]
    stream = engine.stream(
        [Message("user", "Extract all text", pages)], GenerationSettings(options={"ocr_cache": False})
    )
    for _chunk in stream:
        stream.cancel()  # the user presses Stop as soon as the first page's text shows
    assert counter.calls == 1
    assert stream.metrics.stopped_by == "cancelled"
    assert [p["page"] for p in stream.extras["pages"]] == [1]


def many_lines_page(lines: int = 60) -> Image.Image:
    image = Image.new("RGB", (900, 40 * lines + 40), "white")
    draw = ImageDraw.Draw(image)
    for n in range(lines):
        draw.text((30, 20 + 40 * n), f"line number {n} of the long page", fill="black", font_size=26)
    return image


@pytest.mark.slow
def test_stop_during_recognition_stops_between_chunks(monkeypatch):
    from chatvlmllm.engines._ocr_readers import REC_CHUNK, Cancelled, RapidReader

    reader = RapidReader()
    detection = reader.detect(many_lines_page())
    assert len(detection.crops) > 2 * REC_CHUNK  # several chunks to recognise
    cancel = threading.Event()
    chunks = []
    recognise = reader.ocr.recognize_txt

    def first_chunk_then_stop(crops):
        chunks.append(len(crops))
        cancel.set()  # Stop pressed while the first chunk is being recognised
        return recognise(crops)

    monkeypatch.setattr(reader.ocr, "recognize_txt", first_chunk_then_stop)
    with pytest.raises(Cancelled):
        reader.recognise(detection, cancel)
    assert chunks == [REC_CHUNK]


def test_stop_kills_a_running_tesseract():
    require_tesseract()
    from chatvlmllm.engines._ocr_readers import Cancelled, TesseractReader

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        TesseractReader().read(many_lines_page(120), "eng", cancel)


# -- what each kind of request gets ----------------------------------------------------------


def test_quick_prompts_are_told_apart():
    kinds = {label: classify(prompt) for label, prompt in QUICK_PROMPTS.items()}
    assert kinds == {
        "Extract all text": Task.TRANSCRIBE,
        "Table → Markdown": Task.TABLE,
        "Key fields → JSON": Task.KEY_FIELDS,
        "Summarise": Task.SUMMARY,
    }
    assert classify("Where is the total?") is Task.QUESTION
    assert classify("Распознай текст") is Task.TRANSCRIBE


@pytest.mark.slow
def test_quick_prompts_get_distinct_honest_answers_on_a_real_receipt(cache):
    require_tesseract()
    engine = engine_for(cache, "ocr_auto")
    page = eval_page("receipt_000")
    answers = {label: ask(engine, [page], prompt)[0] for label, prompt in QUICK_PROMPTS.items()}
    assert len(set(answers.values())) == len(answers)
    table = answers["Table → Markdown"]
    # A receipt's lines do not line up in columns: no table forced out of it (chatvlmllm.documents.box_table).
    assert "does not understand tables" in table and "No table found" in table and "|---|" not in table
    fields = answers["Key fields → JSON"]
    assert "heuristic" in fields
    found = json.loads(fields.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert found["total"].endswith("9.00")  # the receipt's total, RM 9.00
    assert "cannot summarise" in answers["Summarise"] and "BOOK TA" in answers["Summarise"]
    assert not answers["Extract all text"].startswith("ocr_auto is")


def test_key_fields_by_pattern():
    text = "ACME SDN BHD\nDate: 12/03/2018 10:41\nGST 6% 0.51\nTOTAL RM 9.00\nTel: 07-355 1234"
    assert key_fields(text) == {
        "total": "RM 9.00",
        "date": "12/03/2018",
        "time": "10:41",
        "tax": "0.51",
        "phone": "07-355 1234",
    }
