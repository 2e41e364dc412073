"""Conversation turns, transcript exports (Markdown, JSON round trip, CSV) and engine messages."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from PIL import Image

from chatvlmllm.chat.conversation import (
    CSV_COLUMNS,
    DEFAULT_TITLE,
    TRANSCRIPT_FORMAT,
    TRANSCRIPT_VERSION,
    Conversation,
    Turn,
    title_from,
)
from chatvlmllm.engines import AnswerMetrics
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import lazy_message, use_language

METRICS = AnswerMetrics(
    model="tiny",
    family="qwen2_vl",
    attention="sdpa",
    dtype="float32",
    device="cpu",
    quantization=None,
    load_s=0.2,
    ttft_s=0.05,
    total_s=0.31,
    prompt_tokens=300,
    new_tokens=16,
    tokens_per_s=58.1,
    peak_vram_mb=None,
    stopped_by="max_tokens",
)


def sample_conversation() -> Conversation:
    conversation = Conversation()
    conversation.add(Turn("user", "What is the total?", document="receipt.pdf", document_sha256="aa", pages=[2]))
    conversation.add(
        Turn(
            "assistant",
            "The total is **12.50**.",
            model="tiny",
            metrics=METRICS.to_dict(),
            attempts=[
                {"model": "broken", "outcome": "load_failed", "reason": "no config.json", "seconds": 0.01},
                {"model": "tiny", "outcome": "answered", "reason": "", "seconds": 0.31},
            ],
            extras={"image_tokens": 64},
        )
    )
    conversation.add(Turn("user", "And the date?", document="receipt.pdf", document_sha256="aa", pages=[2]))
    conversation.add(Turn("assistant", "", model=None, error="No model could answer."))
    return conversation


def test_first_question_names_the_chat():
    conversation = sample_conversation()
    assert conversation.title == "What is the total?"
    assert title_from("word " * 40).endswith("…") and len(title_from("word " * 40)) <= 48
    assert Conversation().title == DEFAULT_TITLE


def test_turn_caption_is_the_metrics_caption():
    turn = sample_conversation().turns[1]
    assert turn.caption() == METRICS.caption()
    assert "tiny" in turn.caption() and "sdpa" in turn.caption() and "tok/s" in turn.caption()
    assert turn.fell_back and turn.stopped_by == "max_tokens"


def test_json_round_trip_keeps_every_field():
    conversation = sample_conversation()
    text = conversation.to_json()
    data = json.loads(text)
    assert data["format"] == TRANSCRIPT_FORMAT and data["version"] == TRANSCRIPT_VERSION
    assert data["turns"][1]["metrics"]["attention"] == "sdpa"
    assert data["turns"][1]["metrics"]["stopped_by"] == "max_tokens"
    assert data["turns"][0]["document"] == "receipt.pdf" and data["turns"][0]["pages"] == [2]
    assert Conversation.from_json(text) == conversation
    assert Conversation.from_json(text.encode()) == conversation


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"turns": []}', "not a chatvlmllm transcript"),
        (json.dumps({"format": TRANSCRIPT_FORMAT, "version": 99, "turns": []}), "version 99"),
        (json.dumps({"format": TRANSCRIPT_FORMAT, "version": 1, "turns": "x"}), r"turns: Input should be a valid list"),
        (
            json.dumps({"format": TRANSCRIPT_FORMAT, "version": 1, "turns": [{"text": "hi"}]}),
            r"turns\[0\]\.role: Field required",
        ),
        (
            json.dumps({"format": TRANSCRIPT_FORMAT, "version": 1, "turns": [{"role": "user"}]}),
            r"turns\[0\]\.text: Field required",
        ),
        (
            json.dumps({"format": TRANSCRIPT_FORMAT, "version": 1, "turns": [{"role": "user", "text": None}]}),
            r"turns\[0\]\.text: Input should be a valid string",
        ),
        (
            json.dumps(
                {
                    "format": TRANSCRIPT_FORMAT,
                    "version": 1,
                    "turns": [{"role": "assistant", "text": "a", "attempts": ["x"]}],
                }
            ),
            r"turns\[0\]\.attempts\[0\]",
        ),
        (
            json.dumps(
                {
                    "format": TRANSCRIPT_FORMAT,
                    "version": 1,
                    "turns": [{"role": "assistant", "text": "a", "metrics": "fast"}],
                }
            ),
            r"turns\[0\]\.metrics",
        ),
        (
            json.dumps(
                {"format": TRANSCRIPT_FORMAT, "version": 1, "turns": [{"role": "user", "text": "a", "pages": ["1"]}]}
            ),
            r"turns\[0\]\.pages\[0\]: Input should be a valid integer",
        ),
    ],
)
def test_bad_transcripts_are_refused_with_a_reason(payload, message):
    with pytest.raises(UserError, match=message):
        Conversation.from_json(payload)


def test_markdown_is_readable():
    markdown = sample_conversation().to_markdown()
    assert markdown.startswith("# What is the total?")
    assert "## You — receipt.pdf, page 2" in markdown
    assert "The total is **12.50**." in markdown
    assert f"_{METRICS.caption()}_" in markdown
    assert "- broken: failed to load (no config.json)" in markdown
    assert "**Error:** No model could answer." in markdown


def test_markdown_follows_the_interface_language_and_json_does_not():
    conversation = sample_conversation()
    with use_language("ru"):
        russian, russian_json = conversation.to_markdown(), conversation.to_json()
    with use_language("en"):
        english, english_json = conversation.to_markdown(), conversation.to_json()
    assert "## Вы — receipt.pdf, страница 2" in russian and "## Ассистент (tiny)" in russian
    assert "_Выгружено из chatvlmllm " in russian and "Попытки:" in russian
    assert "- broken: не загрузилась (no config.json)" in russian  # the stored reason stays as it was written
    assert "- tiny: ответила" in russian
    assert "**Ошибка:** No model could answer." in russian and "остановлено: предел токенов" in russian
    assert "## You — receipt.pdf, page 2" in english and "Attempts:" in english and "stopped: token limit" in english
    assert not re.search("[А-Яа-яЁё]", english)
    assert russian_json == english_json and not re.search("[А-Яа-яЁё]", english_json)  # language-neutral


def test_csv_has_one_row_per_turn_and_the_documented_columns():
    conversation = sample_conversation()
    frame = pd.read_csv(io.StringIO(conversation.to_csv()), dtype={"pages": str})
    assert list(frame.columns) == list(CSV_COLUMNS)
    assert len(frame) == len(conversation.turns)
    answer = frame.iloc[1]
    assert answer["model"] == "tiny" and answer["attention"] == "sdpa" and answer["new_tokens"] == 16
    assert answer["attempts"] == "broken: load_failed; tiny: answered"
    assert frame.iloc[0]["document"] == "receipt.pdf" and frame.iloc[0]["pages"] == "2"


def test_engine_messages_carry_history_and_attach_each_page_once():
    pages = {("aa", 1): Image.new("RGB", (32, 32), "white"), ("aa", 2): Image.new("RGB", (32, 32), "black")}
    conversation = Conversation()
    conversation.add(Turn("user", "q1", document="d.pdf", document_sha256="aa", pages=[1]))
    conversation.add(Turn("assistant", "a1"))
    conversation.add(Turn("user", "q2", document="d.pdf", document_sha256="aa", pages=[1]))
    conversation.add(Turn("assistant", "", error="failed"))  # no text: not sent
    conversation.add(Turn("user", "q3", document="d.pdf", document_sha256="aa", pages=[1, 2]))
    conversation.add(Turn("user", "q4", document="gone.pdf", document_sha256="zz", pages=[1]))

    messages = conversation.engine_messages(lambda sha, page: pages.get((sha, page)))

    assert [(m.role, m.text) for m in messages] == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("user", "q3"),
        ("user", "q4"),
    ]
    assert [len(m.images) for m in messages] == [1, 0, 0, 1, 0]
    assert messages[0].images[0] is pages[("aa", 1)] and messages[3].images[0] is pages[("aa", 2)]
    assert [len(m.images) for m in conversation.engine_messages(None)] == [0, 0, 0, 0, 0]


def test_the_wait_is_the_time_from_question_to_saved_answer():
    turn = Turn(
        "assistant",
        "text",
        metrics={**METRICS.to_dict(), "total_s": 0.1},  # the engine's own time: not what the user waited
        started_at="2026-12-04T10:00:00.000+00:00",
        finished_at="2026-12-04T10:00:07.700+00:00",
    )
    assert turn.waited_s() == pytest.approx(7.7)
    assert Turn("assistant", "partial", finished_at=None).waited_s() is None
    assert Turn("assistant", "x", started_at="not a date", finished_at="2026-12-04T10:00:00+00:00").waited_s() is None


def crashed_conversation() -> Conversation:
    """A chat after two crashes: an answer cut off (saved as incomplete, no figures yet) and a question
    killed before anything of its answer was saved, then a question asked again after the restart."""
    conversation = Conversation(title="Crashes")
    conversation.turns = [
        Turn("user", "Extract all text", document="r.png", pages=[1]),
        Turn("assistant", "TOTAL 12", model="ocr_auto", incomplete=True, finished_at=None),
        Turn("user", "What is the date?", document="r.png", pages=[1]),
        Turn("user", "What is the date, again?", document="r.png", pages=[1]),
    ]
    return conversation


def test_questions_no_answer_follows_are_unanswered_unless_one_is_being_answered():
    conversation = crashed_conversation()
    assert conversation.unanswered() == {2, 3}
    assert conversation.unanswered(answering=True) == {2}  # the last one's answer is on its way
    assert sample_conversation().unanswered() == set()  # a failed answer is still an answer


def test_markdown_marks_an_incomplete_answer_and_an_unanswered_question():
    markdown = crashed_conversation().to_markdown()
    assert "TOTAL 12\n\n_ocr_auto · incomplete: the app stopped while this answer was being written_" in markdown
    you = markdown.split("## You")
    assert "Not answered: the app stopped before answering." in you[2]  # the question the crash cut off
    assert "Not answered" in you[3]
    assert "Not answered" not in crashed_conversation().to_markdown(answering=True).split("## You")[3]


def test_markdown_says_which_engine_read_the_page_beside_the_text():
    read_by = "Read pages 1, 2 by Tesseract; page 3 by RapidOCR."
    conversation = Conversation()
    conversation.add(Turn("user", "Extract all text", document="d.pdf", pages=[1, 2, 3]))
    text = "--- page 1 ---\nONE\n\n--- page 2 ---\nTWO\n\n--- page 3 ---\nTHREE"
    conversation.add(Turn("assistant", text, model="ocr_auto", extras={"read_by": read_by}))
    markdown = conversation.to_markdown()
    assert f"{text}\n\n_{read_by}_\n" in markdown  # its own line after the text, never inside it
    assert markdown.count("Read pages") == 1


def test_a_reason_kept_as_a_message_survives_the_json_and_reads_in_russian_in_the_markdown():
    reason = lazy_message(
        "{model} is not downloaded yet: download it on the Models page or with `chatvlmllm pull {model}`, "
        "then ask again",
        model="big_vlm",
    )
    conversation = Conversation()
    conversation.add(Turn("user", "Extract all text"))
    attempts = [
        {"model": "big_vlm", "outcome": "skipped", "reason": reason.english, "seconds": 0.0},
        {"model": "tiny", "outcome": "answered", "reason": "", "seconds": 0.2},
    ]
    attempts[0]["reason_message"] = reason.to_dict()
    conversation.add(Turn("assistant", "TOTAL 1.00", model="tiny", attempts=attempts))
    again = Conversation.from_json(conversation.to_json())
    assert again == conversation and "reason_message" not in again.turns[1].attempts[1]
    with use_language("ru"):
        markdown = again.to_markdown()
        russian = str(reason)
    assert re.search("[а-яА-Я]", russian) and f"({russian})" in markdown and reason.english not in markdown
    assert f"({reason.english})" in again.to_markdown()  # English where no language is set
