"""chatvlmllm.chat.answer, one answer's lifecycle, with the tiny real Qwen2-VL checkpoint (no mock of
the model): the state sequence, Stop in each state, partial saves, a failure, the chat title.

Stops are made from the answer's own listeners (`on_state`, `on_chunk`), so each test stops in the
state it names, whatever the machine's load."""

from __future__ import annotations

import threading

import pytest

from chatvlmllm.chat.answer import NOT_STARTED, AnswerState
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.documents.loading import load_document
from chatvlmllm.errors import UserError
from chatvlmllm.models.catalog import spec_from_path
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.helpers import image_bytes, text_image

SHORT = AskOptions(model="tiny", max_new_tokens=8, fallback=False)
# The tiny model loops; without the guard it would run to 2000 tokens unless stopped.
LONG = AskOptions(model="tiny", max_new_tokens=2000, repetition_guard=False, fallback=False)
EXTRACT = QUICK_PROMPTS["Extract all text"]
WAIT_S = 120  # generous: the machine may be busy


@pytest.fixture
def session(tmp_path) -> ChatSession:
    chat = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    chat.attach(load_document(image_bytes(text_image(["INVOICE 7", "TOTAL 12.50"])), "invoice.png"))
    chat.rename("invoice.png")  # as the page names a chat after its upload
    return chat


def stored(session: ChatSession):
    return session.store.load(session.id).conversation


def record_states(answer) -> list[AnswerState]:
    states = [answer.state]
    answer.on_state(states.append)
    return states


def test_the_states_run_queued_loading_reading_generating_done(session, catalog):
    cache = EngineCache()  # nothing loaded yet: the first answer loads the model
    first = session.ask("What is the total?", SHORT, probe(), catalog, cache)
    states = record_states(first)
    assert [t.role for t in stored(session).turns] == ["user"]  # the question is saved before anything runs
    turn = first.run()

    assert states == ["queued", "loading", "reading", "generating", "done"]
    assert first.settled and first.join(0) and first.turn is turn
    assert turn.error is None and turn.metrics["new_tokens"] == 8 and not turn.incomplete
    assert stored(session).turns[-1] == turn

    second = session.ask("And the date?", SHORT, probe(), catalog, cache)
    states = record_states(second)
    second.run()
    assert states == ["queued", "reading", "generating", "done"]  # loaded once: no loading state
    assert cache.loads == 1


def test_stop_while_queued_saves_a_stopped_turn_and_nothing_runs(session, catalog):
    cache = EngineCache()
    answer = session.ask("What is the total?", LONG, probe(), catalog, cache)
    stopped = answer.stop()

    assert answer.state is AnswerState.STOPPED and answer.join(0)
    assert stopped.error == NOT_STARTED and stopped.stopped_by == "cancelled" and stopped.text == ""
    assert answer.run() is stopped and cache.loads == 0  # running it afterwards starts nothing
    assert [t.role for t in stored(session).turns] == ["user", "assistant"]
    assert stored(session).turns[-1].stopped_by == "cancelled"


def test_stop_while_loading_is_saved_at_once_and_the_load_finishes_behind_it(session, catalog):
    cache = EngineCache()
    answer = session.ask("What is the total?", LONG, probe(), catalog, cache)
    seen_at_stop = []

    def stop_on_loading(state: AnswerState) -> None:
        if state is AnswerState.LOADING:
            answer.stop()
            seen_at_stop.append(stored(session).turns[-1])  # saved before the model is even loaded

    answer.on_state(stop_on_loading)
    turn = answer.run()

    assert seen_at_stop[0].role == "assistant" and seen_at_stop[0].stopped_by == "cancelled"
    assert seen_at_stop[0].error == NOT_STARTED and cache.loads == 1
    assert answer.state is AnswerState.STOPPED and turn.stopped_by == "cancelled"
    assert not turn.metrics.get("new_tokens")  # the engine skipped the request: nothing generated
    assert [t.role for t in stored(session).turns] == ["user", "assistant"]


def test_stop_while_reading_ends_before_any_text(session, catalog, cache):
    answer = session.ask("What is the total?", LONG, probe(), catalog, cache)
    answer.on_state(lambda state: answer.stop() if state is AnswerState.READING else None)
    turn = answer.run()

    assert answer.state is AnswerState.STOPPED and turn.text == ""
    assert turn.metrics["stopped_by"] == "cancelled" and turn.metrics["model"] == "tiny"
    assert turn.attempts[-1]["reason"] == "stopped by the user"
    assert stored(session).turns[-1] == turn


def test_stop_while_generating_saves_the_text_at_once_and_the_counts_join_the_same_turn(session, catalog, cache):
    answer = session.ask("Extract all text", LONG, probe(), catalog, cache)
    at_stop = []

    def stop_at_first_chunk(chunk: str) -> None:
        if not at_stop:
            answer.stop()
            at_stop.append((chunk, stored(session).turns))

    turn = answer.run(on_chunk=stop_at_first_chunk)

    first_chunk, turns_at_stop = at_stop[0]
    assert [t.role for t in turns_at_stop] == ["user", "assistant"]
    assert turns_at_stop[-1].text.startswith(first_chunk) and turns_at_stop[-1].stopped_by == "cancelled"
    assert "new_tokens" not in turns_at_stop[-1].metrics  # the engine had not ended yet
    assert turn.text.startswith(first_chunk) and turn.metrics["stopped_by"] == "cancelled"
    assert 0 < turn.metrics["new_tokens"] < LONG.max_new_tokens  # the engine's own counts, joined later
    assert turn.attempts[-1]["outcome"] == "answered" and turn.attempts[-1]["reason"] == "stopped by the user"
    after = stored(session).turns
    assert [t.role for t in after] == ["user", "assistant"] and after[-1] == turn  # the same turn, replaced
    assert answer.stop() is turn  # stopping twice saves once


def test_stop_after_done_changes_nothing(session, catalog, cache):
    answer = session.ask("What is the total?", SHORT, probe(), catalog, cache)
    turn = answer.run()
    assert answer.stop() is turn and answer.state is AnswerState.DONE
    assert turn.stopped_by == "max_tokens" and stored(session).turns[-1].stopped_by == "max_tokens"


def test_partial_saves_grow_one_incomplete_turn_that_stop_then_replaces(session, catalog, cache, monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_PARTIAL_SAVE_S", "0")  # save after every chunk
    answer = session.ask("Extract all text", LONG, probe(), catalog, cache)
    shown, seen = "", []

    def look_then_stop(chunk: str) -> None:
        nonlocal shown
        if shown:  # everything shown before this chunk is saved, marked incomplete, in one turn
            turns = stored(session).turns
            seen.append(([t.role for t in turns], turns[-1].incomplete, turns[-1].text == shown))
        shown += chunk
        if len(seen) == 3:
            answer.stop()

    turn = answer.run(on_chunk=look_then_stop)

    assert seen[:3] == [(["user", "assistant"], True, True)] * 3
    final = stored(session).turns
    assert [t.role for t in final] == ["user", "assistant"]  # replaced, never appended
    assert not final[-1].incomplete and final[-1].stopped_by == "cancelled" and final[-1].text == turn.text


def test_an_answer_no_model_gives_fails_with_the_reason(session, eos_qwen2_vl, cache):
    catalog = {"eos": spec_from_path(eos_qwen2_vl, "eos")}
    answer = session.ask("What is the total?", AskOptions(model="eos", fallback=False), probe(), catalog, cache)
    turn = answer.run()

    assert answer.state is AnswerState.FAILED and answer.settled
    assert turn.error.startswith("No text found: eos read the page") and turn.text == ""
    assert [a["outcome"] for a in turn.attempts] == ["empty"]
    assert stored(session).turns[-1].error == turn.error


def test_a_new_chat_is_titled_by_document_and_task_and_the_title_is_saved_with_the_question(session, catalog, cache):
    answer = session.ask(EXTRACT, SHORT, probe(), catalog, cache)
    assert session.conversation.title == "invoice.png — Extract all text"
    assert stored(session).title == "invoice.png — Extract all text"  # saved with the question, before any answer
    answer.stop()  # (the title needs no answer: each answer here is stopped while queued)

    session.ask("What is the total?", SHORT, probe(), catalog, cache).stop()
    assert stored(session).title == "invoice.png — Extract all text"  # only a new chat is named

    typed = ChatSession(store=session.store)
    typed.attach(session.document)
    typed.rename("invoice.png")
    typed.ask("  What is   the total?  ", SHORT, probe(), catalog, cache).stop()
    assert stored(typed).title == "invoice.png — What is the total?"

    named = ChatSession(store=session.store)
    named.attach(session.document)
    named.rename("My receipts")
    named.ask(EXTRACT, SHORT, probe(), catalog, cache).stop()
    assert stored(named).title == "My receipts"  # a name the user gave stays


def test_a_refused_question_changes_neither_the_title_nor_the_history(session, catalog, cache):
    with pytest.raises(UserError, match="at least 1"):
        session.ask(EXTRACT, AskOptions(model="tiny", max_new_tokens=0), probe(), catalog, cache)
    assert session.conversation.title == stored(session).title == "invoice.png"
    assert session.conversation.turns == [] and stored(session).turns == []


def test_one_answer_per_chat_and_the_next_question_goes_once_stop_has_saved(session, catalog, cache):
    first = session.ask("Extract all text", LONG, probe(), catalog, cache)
    generating = threading.Event()
    first.on_state(lambda state: generating.set() if state is AnswerState.GENERATING else None)
    first.start()
    assert generating.wait(WAIT_S)
    with pytest.raises(UserError, match="still being written"):
        session.ask("What is the total?", SHORT, probe(), catalog, cache)

    first.stop()  # settled at once: the next question may go while the engine ends its step
    second = session.ask("What is the total?", SHORT, probe(), catalog, cache).run()
    assert first.join(WAIT_S)

    turns = stored(session).turns
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]  # strict order
    assert turns[1].stopped_by == "cancelled" and 0 < turns[1].metrics["new_tokens"] < LONG.max_new_tokens
    assert turns[3] == second and second.stopped_by == "max_tokens"
    assert session.conversation.turns == turns


def test_settle_stops_an_answer_running_on_its_thread_and_waits_for_its_counts(session, catalog, cache):
    answer = session.ask("Extract all text", LONG, probe(), catalog, cache)
    generating = threading.Event()
    answer.on_state(lambda state: generating.set() if state is AnswerState.GENERATING else None)
    answer.start()
    assert generating.wait(WAIT_S)
    assert session.settle(timeout_s=WAIT_S)

    turn = session.conversation.turns[-1]
    assert turn.role == "assistant" and turn.metrics["stopped_by"] == "cancelled"
    assert 0 < turn.metrics["new_tokens"] < LONG.max_new_tokens
    assert session.settle() is True  # nothing runs any more
