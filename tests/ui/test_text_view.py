"""How answers are drawn (ui/text_view.py) through AppTest: tables as tables, JSON once, transcriptions verbatim.

The offline cases run the real offline OCR engine on real pages of ../shared/eval; the model answers
with a table or JSON are stored turns (as a model writes them), since the tiny test checkpoints write
random text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.helpers import SHARED_EVAL, image_bytes, text_image

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TABLE_PROMPT = QUICK_PROMPTS["Table → Markdown"]
JSON_PROMPT = QUICK_PROMPTS["Key fields → JSON"]


@pytest.fixture
def offline_app():
    """The app as on a machine with no vision-language model: the offline OCR engine answers."""
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    yield at
    st.cache_resource.clear()
    default_cache().unload()


def upload(at: AppTest, name: str, data: bytes) -> None:
    at.main.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception


def ask(at: AppTest, question: str) -> None:
    at.chat_input[0].set_value(question).run()
    assert not at.exception


def add_turns(at: AppTest, *turns: Turn) -> None:
    """Turns stored as if a model had answered them, then the page drawn again."""
    session = at.session_state["chat_session"]
    for turn in turns:
        session.conversation.add(turn)
        session.store.append_turn(session.conversation, turn)
    at.run()
    assert not at.exception


def eval_image(item: str) -> tuple[str, bytes]:
    found = sorted((SHARED_EVAL / "images").glob(f"{item}.*"))
    if not found:
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    return found[0].name, found[0].read_bytes()


def test_a_model_table_is_drawn_as_a_table_with_csv_and_markdown(offline_app):
    at = offline_app
    upload(at, "invoice.png", image_bytes(text_image(["INVOICE", "TOTAL 12.50"])))
    table = "| Item | Price |\n|---|---:|\n| **Coffee** | $4.50 |\n| Tea | $3.00 |"
    add_turns(
        at,
        Turn("user", TABLE_PROMPT, document="invoice.png", pages=[1]),
        Turn("assistant", f"The table:\n\n{table}", model="qwen_vl_2b"),
    )
    answer = at.chat_message[1]
    frame = answer.table[0].value
    assert list(frame.columns) == ["Item", "Price"] and frame.values.tolist() == [["Coffee", "$4.50"], ["Tea", "$3.00"]]
    assert answer.markdown[0].value == "The table:"  # the prose around it, as Markdown
    assert not any("|---|" in m.value for m in answer.markdown)  # no raw pipe text
    assert [c.value for c in answer.code] == [table] and answer.code[0].language == "markdown"  # to copy
    downloads = [e for e in answer.get("download_button")]
    assert len(downloads) == 1 and downloads[0].proto.label == "Download CSV"


def test_model_json_is_shown_once_formatted_without_fences(offline_app):
    at = offline_app
    upload(at, "invoice.png", image_bytes(text_image(["INVOICE", "TOTAL 12.50"])))
    add_turns(
        at,
        Turn("user", JSON_PROMPT, document="invoice.png", pages=[1]),
        Turn("assistant", '```json\n{"total": "12.50", "магазин": "Пятёрочка"}\n```', model="qwen_vl_2b"),
    )
    (code,) = at.chat_message[1].code
    assert code.language == "json" and "```" not in code.value
    assert code.value == '{\n  "total": "12.50",\n  "магазин": "Пятёрочка"\n}'


@pytest.mark.slow
def test_the_offline_engine_draws_a_real_table_page_as_a_table(offline_app):
    at = offline_app
    upload(at, *eval_image("page_table_02"))
    ask(at, TABLE_PROMPT)
    answer = at.chat_message[1]
    frame = answer.table[0].value
    assert list(frame.columns) == ["Date", "Description", "Number", "Debits", "Credits", "Balance"]
    assert len(frame) >= 10 and "Clearing Cheque" in frame["Description"].tolist()
    assert "does not understand tables" in answer.markdown[0].value  # what the table is, in words
    assert [c.language for c in answer.code] == ["markdown"]  # pipe text only behind "Copy as Markdown"


@pytest.mark.slow
def test_the_offline_engine_says_a_receipt_has_no_table_and_fields_are_json_once(offline_app):
    at = offline_app
    upload(at, *eval_image("receipt_000"))
    ask(at, TABLE_PROMPT)
    answer = at.chat_message[1]
    assert not answer.table and not answer.code
    assert "No table found" in " ".join(m.value for m in answer.markdown)

    ask(at, JSON_PROMPT)
    fields = at.chat_message[3]
    (code,) = fields.code
    assert code.language == "json" and "```" not in code.value and '"total"' in code.value
    assert "heuristic" in fields.markdown[0].value
