"""The offline OCR engines (rapidocr, tesseract) through the real engine protocol and cache.

RapidOCR runs its bundled PP-OCR models on rendered text; Tesseract needs its binary (apt) and
skips without it unless CHATVLMLLM_REQUIRE_TESSERACT is set (CI), where it must run.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.cli import main
from chatvlmllm.documents.reading_order import TextBox, box_from_points, lines_text, reading_order
from chatvlmllm.engines import GenerationSettings, Message, family_info
from chatvlmllm.engines.classic_ocr import tesseract_problem
from chatvlmllm.errors import EngineError, PlanError
from chatvlmllm.eval.metrics import cer
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.choice import model_status
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from chatvlmllm.models.tasks import OCR_TRANSCRIBES, classify, offline_engine_for
from tests.helpers import SHARED_EVAL, engine_for, image_bytes, require_tesseract, text_image, write_models_file


@pytest.fixture(scope="module")
def cache():
    cache = EngineCache()
    yield cache
    cache.unload()


def two_column_page() -> Image.Image:
    """A heading across the page over two prose columns whose lines sit at the same heights."""
    image = Image.new("RGB", (1000, 420), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 20), "QUARTERLY REPORT ON RIVER LEVELS", fill="black", font_size=30)
    left = ["the left column starts here", "and carries on with more words", "until the left column ends"]
    right = ["then the right column begins", "with its own words in order", "and finishes the whole page"]
    for i, (left_line, right_line) in enumerate(zip(left, right, strict=True)):
        draw.text((40, 90 + 40 * i), left_line, fill="black", font_size=26)
        draw.text((540, 90 + 40 * i), right_line, fill="black", font_size=26)
    return image


def test_offline_engines_are_catalog_entries_without_weights():
    catalog = load_catalog()
    for key in ("rapidocr", "tesseract"):
        info = family_info(key)
        assert catalog[key].family == key
        assert info.backend == "classic" and info.needs_weights is False
        assert info.attention == () and info.capabilities == frozenset({"ocr"})
        assert catalog[key].description  # the one-line note shows in the picker
    plan = plan_load(probe(), catalog["rapidocr"])
    assert plan.runnable and plan.device == "cpu" and plan.attention == "n/a"
    assert model_status(catalog["rapidocr"], probe()).status == "ready"


def test_rapidocr_reads_rendered_text_with_line_boxes(cache):
    engine = engine_for(cache, "rapidocr")
    stream = engine.stream([Message("user", "Extract all text", [text_image(["INVOICE 2026-11", "TOTAL 12.50"])])])
    text = stream.consume()
    assert text.splitlines() == ["INVOICE 2026-11", "TOTAL 12.50"]
    lines = stream.extras["lines"]
    assert [line["text"] for line in lines] == text.splitlines()
    assert all(len(line["box"]) == 4 and 0 < line["score"] <= 1 and line["page"] == 1 for line in lines)
    assert lines[0]["box"][1] < lines[1]["box"][1]  # top to bottom
    assert stream.metrics.model == "rapidocr" and stream.metrics.stopped_by == "eos"
    assert stream.metrics.device == "cpu"


def test_rapidocr_reads_columns_one_after_the_other(cache):
    text = engine_for(cache, "rapidocr").stream([Message("user", "OCR this page", [two_column_page()])]).consume()
    lines = text.splitlines()
    assert lines[0] == "QUARTERLY REPORT ON RIVER LEVELS"
    assert lines.index("until the left column ends") < lines.index("then the right column begins")


def test_a_question_gets_the_text_and_an_honest_note_not_an_answer(cache):
    stream = engine_for(cache, "rapidocr").stream(
        [Message("user", "What is the total?", [text_image(["INVOICE 2026-11", "TOTAL 12.50"])])]
    )
    text = stream.consume()
    assert "cannot answer questions" in text and "vision-language model" in text
    assert text.rstrip().endswith("TOTAL 12.50")
    assert stream.extras["qa_supported"] is False and "note" in stream.extras


def test_follow_up_without_an_image_reads_the_earlier_page_and_chat_without_any_is_declined(cache):
    engine = engine_for(cache, "rapidocr")
    history = [
        Message("user", "Extract all text", [text_image(["INVOICE 2026-11"])]),
        Message("assistant", "INVOICE 2026-11"),
        Message("user", "Transcribe it again"),
    ]
    assert engine.stream(history).consume() == "INVOICE 2026-11"
    reply = engine.stream([Message("user", "hello there")]).consume()
    assert "cannot chat" in reply and "Attach a document" in reply


@pytest.mark.slow
def test_pages_are_separated_and_boxes_stay_in_page_coordinates_under_a_pixel_budget(cache):
    engine = engine_for(cache, "rapidocr")
    pages = [text_image(["FIRST PAGE"]), text_image(["SECOND PAGE"])]
    full = engine.stream([Message("user", "Extract all text", pages)])
    text = full.consume()
    assert "--- page 1 ---" in text and "--- page 2 ---" in text
    assert text.index("FIRST PAGE") < text.index("SECOND PAGE")
    assert [line["page"] for line in full.extras["lines"]] == [1, 2]
    # OCR on a copy with a quarter of the pixels: the boxes still point at the text on the page.
    small = engine.stream([Message("user", "OCR", pages[:1])], GenerationSettings(max_pixels=640 * 360 // 4))
    assert small.consume() == "FIRST PAGE"
    for edge_small, edge_full in zip(small.extras["lines"][0]["box"], full.extras["lines"][0]["box"], strict=True):
        assert abs(edge_small - edge_full) < 12


def test_the_engine_loads_once_per_cache(cache):
    engine_for(cache, "rapidocr")
    engine_for(cache, "rapidocr")
    assert cache.load_counts["rapidocr"] == 1


def test_transcription_requests_are_told_from_questions():
    from chatvlmllm.models.tasks import OCR_PROMPT, QUICK_PROMPTS

    requests = ("Extract all text", "OCR", "Please transcribe this", "Распознай текст", "", OCR_PROMPT)
    for request in (*requests, QUICK_PROMPTS["Extract all text"]):
        assert classify(request) in OCR_TRANSCRIBES, request
    questions = (
        "What is the total?",
        "Who issued this receipt?",
        "Сколько стоит?",
        "Can you read the date?",
        "What is the total in the text?",
        "Переведи текст",
    )
    # The other quick prompts ask for what OCR cannot make: they get the text with the honest note.
    for question in (*questions, *(p for k, p in QUICK_PROMPTS.items() if k != "Extract all text")):
        assert classify(question) not in OCR_TRANSCRIBES, question


@pytest.mark.slow
def test_ask_cli_on_a_real_receipt_returns_text_with_attempts(capsys):
    receipt = SHARED_EVAL / "images" / "receipt_000.jpg"
    if not receipt.is_file():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    assert main(["ask", str(receipt), "Extract all text", "--model", "rapidocr", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "rapidocr" and record["device"] == "cpu"
    assert record["attempts"] == [
        {"model": "rapidocr", "outcome": "answered", "reason": "", "seconds": record["attempts"][0]["seconds"]}
    ]
    truth = (SHARED_EVAL / "truth" / "receipt_000.txt").read_text(encoding="utf-8")
    assert cer(record["answer"].upper(), truth) < 0.2  # case aside, the receipt is read
    assert record["extras"]["lines"] and record["extras"]["lines"][0]["box"]


# -- Tesseract -------------------------------------------------------------------------------


def test_tesseract_reads_russian_with_its_language_data(cache):
    require_tesseract()
    item = SHARED_EVAL / "images" / "ru_line_1be72776.png"
    if not item.is_file():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    from chatvlmllm.documents.loading import open_document

    engine = engine_for(cache, "tesseract")
    image = open_document(item).page(0)
    settings = GenerationSettings(options={"lang": "ru"})
    text = engine.stream([Message("user", "Extract all text", [image])], settings).consume()
    truth = (SHARED_EVAL / "truth" / "ru_line_1be72776.txt").read_text(encoding="utf-8")
    assert cer(text, truth) < 0.1
    # No language given (the app's chat): English and Russian data together still read it.
    unlabelled = engine.stream([Message("user", "Extract all text", [image])]).consume()
    assert cer(unlabelled, truth) < 0.1
    assert offline_engine_for("ru") == "ocr_auto"  # which probes the script and hands Cyrillic to Tesseract


def test_tesseract_reads_english_in_reading_order(cache):
    require_tesseract()
    text = engine_for(cache, "tesseract").stream([Message("user", "OCR", [two_column_page()])]).consume()
    lines = text.splitlines()
    assert lines.index("until the left column ends") < lines.index("then the right column begins")


def test_tesseract_without_its_binary_is_refused_by_the_plan(monkeypatch, tmp_path):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract-here"))
    problem = tesseract_problem()
    assert problem and "apt-get install tesseract-ocr" in problem
    spec = load_catalog()["tesseract"]
    plan = plan_load(probe(), spec)
    assert not plan.runnable and "not installed" in plan.why_not()
    assert model_status(spec, probe()).status != "ready"
    with pytest.raises(PlanError, match="not installed"):
        EngineCache().get(spec, plan)
    # Loading directly (a stale plan) fails with the same reason instead of a pytesseract traceback.
    from chatvlmllm.engines.classic_ocr import TesseractEngine

    with pytest.raises(EngineError, match="not installed"):
        TesseractEngine(spec).load(plan)
    # The offline default still runs: ocr_auto without Tesseract reads with RapidOCR alone.
    assert offline_engine_for("ru") == "ocr_auto"
    assert plan_load(probe(), load_catalog()["ocr_auto"]).runnable


def test_language_defaults():
    # One offline default for every language: ocr_auto probes each page's script itself.
    assert {offline_engine_for(language) for language in ("en", None, "de", "ru")} == {"ocr_auto"}


def test_rapidocr_warns_that_it_has_no_cyrillic(cache):
    stream = engine_for(cache, "rapidocr").stream(
        # Enough distinctive Latin letters for the script probe to be sure (a page too short to tell goes to Tesseract).
        [Message("user", "Extract all text", [text_image(["TOTAL 12.50", "Thank you for shopping with us"])])],
        GenerationSettings(options={"lang": "ru"}),
    )
    stream.consume()
    assert "tesseract" in stream.extras["warning"]


@pytest.mark.slow
def test_the_entry_language_reaches_the_engine_under_its_old_name_too(cache, tmp_path, monkeypatch):
    entries = {"rapid_ru": {"family": "rapidocr", "language": "ru"}}  # `lang` since typed options
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entries)))
    engine = engine_for(cache, "rapid_ru")
    # Enough letters for the script probe to call it Latin (a short line would go to Tesseract as unsure).
    lines = ["Quality guaranteed with every purchase", "TOTAL 12.50"]
    page = [Message("user", "Extract all text", [text_image(lines)])]
    from_entry = engine.stream(page)
    from_entry.consume()
    assert "tesseract" in from_entry.extras["warning"]
    english = engine.stream(page, GenerationSettings(options={"lang": "en"}))  # the request's language wins
    english.consume()
    assert "warning" not in english.extras


def test_image_bytes_round_trip_through_the_document_loader(cache):
    from chatvlmllm.documents.loading import load_document

    doc = load_document(image_bytes(text_image(["TOTAL 12.50"]), "JPEG", quality=90), "scan.jpg")
    text = engine_for(cache, "rapidocr").stream([Message("user", "OCR", [doc.page(0)])]).consume()
    assert text == "TOTAL 12.50"


# -- reading order on boxes laid out by hand ---------------------------------------------------


def box(text: str, x0: float, y0: float, x1: float, height: float = 20) -> TextBox:
    return TextBox(text, (x0, y0, x1, y0 + height))


def test_receipt_amounts_stay_on_their_rows():
    boxes = [
        box("SUB-TOTAL :", 100, 100, 220),
        box("13.00", 400, 101, 450),
        box("SERVICE CHARGE :", 40, 125, 220),
        box("0.00", 410, 124, 450),
        box("TOTAL", 100, 150, 160),
        box("13.80", 400, 152, 450),
    ]
    assert lines_text(reading_order(boxes)).splitlines() == [
        "SUB-TOTAL : 13.00",
        "SERVICE CHARGE : 0.00",
        "TOTAL 13.80",
    ]


def test_aligned_prose_columns_under_a_heading_are_read_one_after_the_other():
    heading = box("A HEADING THAT SPANS BOTH COLUMNS", 20, 10, 900, 30)
    left = [box(f"left column line {i} with words", 20, 60 + 30 * i, 420) for i in range(4)]
    right = [box(f"right column line {i} with words", 480, 60 + 30 * i, 900) for i in range(4)]
    text = lines_text(reading_order([*right, heading, *left])).splitlines()
    assert text == [heading.text, *(b.text for b in left), *(b.text for b in right)]


def test_columns_whose_lines_do_not_align_are_read_one_after_the_other():
    left = [box(f"L{i}", 20, 40 * i, 200) for i in range(3)]
    right = [box(f"R{i}", 300, 40 * i + 20, 480) for i in range(3)]
    assert lines_text(reading_order(right + left)).splitlines() == ["L0", "L1", "L2", "R0", "R1", "R2"]


def test_a_slightly_tilted_row_is_still_one_row():
    # A photographed receipt: each box sits a little lower than the one on its left.
    row = [box("ITEM", 0, 100, 60), box("2", 150, 106, 170), box("3.50", 300, 112, 360)]
    below = [box("NEXT", 0, 126, 60)]
    assert lines_text(reading_order(row + below)).splitlines() == ["ITEM 2 3.50", "NEXT"]


def test_reading_order_of_nothing_is_nothing():
    assert reading_order([]) == [] and reading_order([box("  ", 0, 0, 10)]) == []
    quad = [[10.0, 5.0], [50.0, 7.0], [50.0, 25.0], [9.0, 24.0]]
    assert box_from_points(quad) == (9.0, 5.0, 50.0, 25.0)


def test_full_width_punctuation_from_the_chinese_recogniser_is_ascii_outside_cjk_text():
    from chatvlmllm.engines._ocr_readers import fold_fullwidth

    # As RapidOCR read a real SROIE receipt: the parentheses came out full-width (a box in most fonts).
    assert fold_fullwidth("S.H.H.MOTOR（SUNGAI RENGIT）SDN.BHD.") == "S.H.H.MOTOR(SUNGAI RENGIT)SDN.BHD."
    assert fold_fullwidth("ИТОГО：１２,５０") == "ИТОГО:12,50"
    assert fold_fullwidth("合计（元）") == "合计（元）"  # Chinese text keeps its own punctuation
