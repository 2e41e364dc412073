"""Prompts fit the model's context: earliest turns dropped first, their images before their text."""

from __future__ import annotations

import pytest

from chatvlmllm.chat.context import (
    PlannedTurn,
    PromptBudget,
    context_from_config,
    context_tokens,
    fit_turns,
)
from chatvlmllm.chat.conversation import TURNS_NOT_SENT, Turn
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.documents.loading import load_document
from chatvlmllm.errors import UserError
from chatvlmllm.models.catalog import load_catalog, spec_from_path
from chatvlmllm.models.hardware import probe
from tests.helpers import image_bytes, text_image, write_models_file


def test_context_is_read_from_the_language_model_config(tiny_qwen2_vl):
    # Real configs: Qwen2-VL-2B-Instruct has it at the top level, Qwen3-VL under text_config.
    assert context_from_config({"max_position_embeddings": 32768}) == 32768
    assert context_from_config({"text_config": {"max_position_embeddings": 262144}}) == 262144
    assert context_tokens(spec_from_path(tiny_qwen2_vl)) == 4096  # the tiny checkpoint's own config


def test_a_models_file_entry_sets_the_context(tiny_qwen2_vl, tmp_path, monkeypatch):
    entries = {"short": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl), "context_tokens": 2048}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entries)))
    assert context_tokens(load_catalog()["short"]) == 2048  # over the config's 4096
    entries["short"]["context_tokens"] = 0
    write_models_file(tmp_path / "models.toml", entries)
    with pytest.raises(UserError, match=r"\[models\.short\]: context_tokens: Input should be greater than 0"):
        load_catalog()


def test_images_of_the_earliest_turns_go_first_then_the_turns():
    turns = [
        PlannedTurn("user", "q1 " * 100, [1_000_000]),
        PlannedTurn("assistant", "a1 " * 100),
        PlannedTurn("user", "q2 " * 100, [1_000_000]),
        PlannedTurn("assistant", "a2 " * 100),
        PlannedTurn("user", "last question", [1_000_000]),
    ]
    budget = PromptBudget(max_tokens=3_400)
    fit = fit_turns(turns, budget)
    # Each image is ~1,280 tokens: dropping the first image fits; no text is lost.
    assert (fit.dropped_turns, fit.dropped_images) == (0, 1)
    assert [t.keep for t in turns] == [True] * 5 and [t.keep_images for t in turns] == [False, True, True, True, True]
    tight = [PlannedTurn(t.role, t.text, t.image_pixels) for t in turns]
    fit = fit_turns(tight, PromptBudget(max_tokens=1_700))
    # Both older images go, then the first question and its answer; the last question stays whole.
    assert fit.dropped_turns == 2 and [t.keep for t in tight] == [False, False, True, True, True]
    assert not tight[2].keep_images and tight[4].keep_images


def test_the_pixel_budget_drops_old_images_too():
    turns = [PlannedTurn("user", "q", [40_000_000]), PlannedTurn("user", "q", [40_000_000])]
    fit = fit_turns(turns, PromptBudget(max_tokens=None, max_pixels=64_000_000))
    assert fit.dropped_images == 1 and turns[1].keep_images


def test_a_long_chat_is_cut_to_the_context_with_a_visible_note(tmp_path, tiny_qwen2_vl):
    spec = spec_from_path(tiny_qwen2_vl, key="tiny")
    session = ChatSession()
    session.attach(load_document(image_bytes(text_image(["PAGE"])), "page.png"))
    for index in range(40):
        session.conversation.add(Turn("user", f"question {index} " + "word " * 200))
        session.conversation.add(Turn("assistant", f"answer {index} " + "word " * 200))
    options = AskOptions(model="tiny", max_new_tokens=4, fallback=False)
    pending = session.ask("And now?", options, probe(), {"tiny": spec})
    for stream in pending:
        for _ in pending.chunks(stream):
            pass
    answer = pending.finish()
    dropped = answer.extras[TURNS_NOT_SENT]
    assert dropped > 0 and answer.extras["messages_sent"] == 81 - dropped
    assert f"the first {dropped} turns were not sent" in answer.caption()
    assert answer.metrics["prompt_tokens"] <= 4096  # it fit, so it ran
    assert answer.extras["images_sent"] == 1  # the current question's page is never dropped


@pytest.mark.parametrize("dropped", [1, 3])
def test_the_note_reads_well(dropped):
    turn = Turn("assistant", "x", extras={TURNS_NOT_SENT: dropped})
    expected = "the first turn was not sent" if dropped == 1 else "the first 3 turns were not sent"
    assert expected in turn.caption()


def test_all_pages_of_a_long_pdf_are_refused_before_rendering_with_the_reason(tiny_qwen2_vl, monkeypatch):
    import io

    import pypdfium2 as pdfium

    from chatvlmllm.documents import loading as documents
    from chatvlmllm.errors import DocumentError

    pdf = pdfium.PdfDocument.new()
    for _ in range(60):
        pdf.new_page(595, 842)
    buffer = io.BytesIO()
    pdf.save(buffer)
    session = ChatSession()
    session.attach(load_document(buffer.getvalue(), "long.pdf"))
    session.select_pages(list(range(1, 61)))  # choosing is fine: the page picker never fails
    spec = spec_from_path(tiny_qwen2_vl, key="tiny")
    with pytest.raises(DocumentError, match=r"60 pages of long.pdf are \d+ MP together; one question can use 64 MP"):
        session.ask("All of it?", AskOptions(model="tiny", fallback=False), probe(), {"tiny": spec})
    assert not session.conversation.turns and len(session.document._pages) <= documents.RENDER_CACHE_PAGES
