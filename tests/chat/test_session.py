"""chatvlmllm.chat.session, the logic behind the chat page, with a tiny real Qwen2-VL checkpoint:
multi-turn history, saving every turn, resuming chats (an answer's lifecycle and Stop: test_answer.py)."""

from __future__ import annotations

import pytest

from chatvlmllm.chat.conversation import Conversation
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.documents.loading import load_document
from chatvlmllm.errors import DocumentError, ModelNotFoundError, UserError
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from tests.helpers import image_bytes, text_image

SHORT = AskOptions(model="tiny", max_new_tokens=8, fallback=False)


@pytest.fixture
def session(tmp_path) -> ChatSession:
    chat = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    chat.attach(load_document(image_bytes(text_image(["INVOICE 7", "TOTAL 12.50"])), "invoice.png"))
    return chat


def ask(session, question, options, catalog, cache):
    """Ask and run the answer to its saved turn (the page runs it on the answer's worker thread)."""
    return session.ask(question, options, probe(), catalog, cache).run()


def test_a_question_and_its_answer_are_saved_with_metadata(session, catalog, cache):
    answer = ask(session, "What is the total?", SHORT, catalog, cache)

    question = session.conversation.turns[0]
    assert question.document == "invoice.png" and question.pages == [1] and question.settings["max_new_tokens"] == 8
    assert answer.model == "tiny" and answer.error is None
    assert answer.metrics["attention"] == "sdpa" and answer.metrics["new_tokens"] == 8
    assert answer.metrics["stopped_by"] == "max_tokens"
    assert answer.extras["messages_sent"] == 1 and answer.extras["images_sent"] == 1
    assert [(a["model"], a["outcome"]) for a in answer.attempts] == [("tiny", "answered")]
    stored = session.store.load(session.id)
    assert stored.conversation == session.conversation
    assert stored.documents[question.document_sha256].name == "invoice.png"


def test_a_follow_up_sends_the_earlier_turns_to_the_model(session, catalog, cache):
    first = ask(session, "What is the total?", SHORT, catalog, cache)
    second = ask(session, "What is the total?", SHORT, catalog, cache)  # same words: only history differs

    assert second.extras["messages_sent"] == 3 and second.extras["images_sent"] == 1
    assert second.metrics["prompt_tokens"] > first.metrics["prompt_tokens"] + first.metrics["new_tokens"]
    # The engine's own tokenisation of question 1, answer 1 and question 2 is what it was given.
    spec = catalog["tiny"]
    engine = cache.peek(spec, plan_load(probe(), spec, SHORT.overrides()))
    history = Conversation(turns=session.conversation.turns[:3]).engine_messages(session.page_image)
    inputs = engine.prepare_inputs(history, engine.plan.max_pixels)
    assert inputs["input_ids"].shape[1] == second.metrics["prompt_tokens"]


def test_bad_questions_are_refused_before_anything_is_saved(session, catalog, cache):
    with pytest.raises(UserError, match="Type a question"):
        session.ask("   ", SHORT, probe(), catalog, cache)
    with pytest.raises(ModelNotFoundError, match="Unknown model"):
        session.ask("hi", AskOptions(model="nope"), probe(), catalog, cache)
    with pytest.raises(UserError, match="at least 1"):
        session.ask("hi", AskOptions(model="tiny", max_new_tokens=0), probe(), catalog, cache)
    with pytest.raises(DocumentError, match="1 page"):
        session.select_pages([2])
    assert session.conversation.turns == []


def test_a_stored_chat_reopens_with_its_document_and_pages(tmp_path, catalog, cache):
    store = ChatStore(tmp_path / "chats.sqlite3")
    tiff = image_bytes(text_image(["page one"]), "TIFF", save_all=True, append_images=[text_image(["page two"])])
    session = ChatSession(store=store)
    session.attach(load_document(tiff, "scan.tiff"))
    session.select_pages([2])
    ask(session, "What does page 2 say?", SHORT, catalog, cache)

    reopened = ChatSession.open(ChatStore(tmp_path / "chats.sqlite3"), session.id)

    assert reopened.conversation == session.conversation
    assert reopened.document.name == "scan.tiff" and reopened.document.page_count == 2
    assert reopened.pages == [2]
    answer = ask(reopened, "And page 1?", SHORT, catalog, cache)
    assert answer.extras["messages_sent"] == 3


def test_a_transcript_resumes_as_a_new_chat_each_time(tmp_path, session, catalog, cache):
    ask(session, "What is the total?", SHORT, catalog, cache)
    transcript = session.conversation.to_json()
    store = session.store

    first = ChatSession.from_transcript(store, transcript)  # same id as the original: gets a new one
    second = ChatSession.from_transcript(store, transcript)

    assert len({session.id, first.id, second.id}) == 3
    assert first.conversation.turns == session.conversation.turns
    assert len(store.list_sessions()) == 3
    assert first.document is None  # documents are not in transcripts: upload again to continue
    with pytest.raises(UserError, match="not valid JSON"):
        ChatSession.from_transcript(store, b"\x00garbage")


def test_a_failing_store_keeps_the_chat_going_and_says_the_turn_is_not_saved(tmp_path, catalog, cache):
    """The data folder vanishes under the app (unmounted disk): answers still come, with a clear note."""
    import shutil

    folder = tmp_path / "data"
    session = ChatSession(store=ChatStore(folder / "chats.sqlite3"))
    session.attach(load_document(image_bytes(text_image(["TOTAL 1.00"])), "invoice.png"))
    ask(session, "first?", SHORT, catalog, cache)
    assert session.save_error is None
    shutil.rmtree(folder)  # sqlite cannot even open the file now

    answer = ask(session, "second?", SHORT, catalog, cache)
    assert answer.model == "tiny" and session.conversation.turns[-1] is answer  # kept in the session
    assert "could not be updated" in session.save_error or "cannot be opened" in session.save_error
    assert "not saved" in session.save_error


@pytest.mark.slow
def test_all_pages_after_page_three_sends_every_page_with_its_number(tmp_path, cache):
    """The offline engine reads the latest question's pages: "All pages" after a question about page 3
    must still carry page 3, and label each page with its own number."""
    from chatvlmllm.models.catalog import load_catalog
    from tests.helpers import pdf_of

    words = {1: "ALPHA", 2: "BRAVO", 3: "CHARLIE"}
    pdf = pdf_of([text_image([f"{word} PAGE"]) for word in words.values()])
    session = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    session.attach(load_document(pdf, "three.pdf"))
    catalog = load_catalog()  # the built-ins and the offline engines, as the app sees them
    ocr = AskOptions(model="rapidocr", fallback=False)

    session.select_pages([3])
    first = ask(session, "Extract all text", ocr, catalog, cache)
    session.select_pages([1, 2, 3])
    every = ask(session, "Extract all text", ocr, catalog, cache)

    assert "CHARLIE" in first.text and "--- page" not in first.text
    assert every.extras["images_sent"] == 3  # page 3 travels again, with the question that asks for it
    sections = every.text.split("--- page ")[1:]
    assert [section.split(" ---")[0] for section in sections] == ["1", "2", "3"]
    for section, word in zip(sections, words.values(), strict=True):
        assert word in section
    assert sorted({line["page"] for line in every.extras["lines"]}) == [1, 2, 3]
