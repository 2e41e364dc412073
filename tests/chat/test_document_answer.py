"""Questions over every document of a chat (chatvlmllm.chat.document_answer through ChatSession): the extractive
answer with citations, a tiny real Qwen2-VL over the retrieved pages, the checked citations of a model's answer,
page tasks that stay with the page in view, and an answer given while the reading runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatvlmllm.chat.context import prompt_budget
from chatvlmllm.chat.conversation import QuestionScope, Turn
from chatvlmllm.chat.document_answer import AnswerMethod, DocumentAnswer, DocumentRoute, unread_note
from chatvlmllm.chat.document_reading import keep_reading, reading_job
from chatvlmllm.chat.router import RoutedAnswer
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.citations import CitationStatus
from chatvlmllm.documents.index import PageSource, PageText, ReadState
from chatvlmllm.documents.loading import load_document
from chatvlmllm.documents.reading import job_of
from chatvlmllm.documents.text_layer import TextLine
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from chatvlmllm.models.tasks import QUICK_PROMPTS
from tests.documents.test_text_layer import ENGLISH
from tests.helpers import CONTRACT_QUESTION, write_models_file

OFFLINE = AskOptions(model="ocr_auto", fallback=False)


@pytest.fixture(scope="module")
def contract() -> bytes:
    """Six born-digital pages; the penalty clause on page 4."""
    pages = filler_pages(6, seed=11)
    pages[3] = PageSpec(ENGLISH)
    return build_pdf(pages)


@pytest.fixture
def catalog(tiny_qwen2_vl):
    write_models_file(
        Path(os.environ["CHATVLMLLM_MODELS_FILE"]), {"tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}}
    )
    return load_catalog()


@pytest.fixture
def session(tmp_path, contract) -> ChatSession:
    chat = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    chat.attach(load_document(contract, "contract.pdf"))
    return chat


def read_all(session: ChatSession) -> None:
    for document in session.documents.values():
        final = reading_job(document, session.index).run()  # born-digital: from the text layer, no engine
        assert final.state is ReadState.DONE


def test_offline_the_answer_is_the_passages_with_their_pages_and_checkable_citations(session, catalog, cache):
    read_all(session)
    assert session.whole_documents and session.scope is QuestionScope.DOCUMENTS  # the default, several pages
    turn = session.ask(CONTRACT_QUESTION, OFFLINE, probe(), catalog, cache).run()

    question = session.conversation.turns[0]
    assert question.pages == [] and question.extras["scope"] == "documents"
    assert question.document_label() == "contract.pdf, whole document"
    assert turn.error is None and turn.text.startswith("Offline answer (extractive)")
    assert turn.extras["method"] == AnswerMethod.EXTRACTIVE
    first = turn.citations[0]
    assert first.page == 4 and first.verified and first.document_name == "contract.pdf"
    assert "penalt" in first.text.lower() and first.boxes
    stored = session.index.page_text(first.document, 4)
    assert set(first.boxes) <= {line.box for line in stored.lines}  # the boxes are the cited lines' own
    assert "[p. 4]" in turn.text
    assert cache.loaded() == []  # no engine was loaded: the pages were read once, the index answers
    reopened = ChatSession.open(session.store, session.id)
    assert reopened.conversation.turns[-1].citations == turn.citations  # stored with the turn


def test_retry_asks_a_whole_document_question_over_the_documents_again(session, catalog, cache):
    read_all(session)
    session.ask(CONTRACT_QUESTION, OFFLINE, probe(), catalog, cache).run()
    question = session.conversation.turns[0]
    session.select_scope(QuestionScope.PAGES)  # the user went on with page 2 alone
    session.select_pages([2])

    assert session.use_pages_of(question)  # it has no pages of its own: it was asked over the documents
    assert session.scope is QuestionScope.DOCUMENTS and session.whole_documents
    again = session.ask(question.text, OFFLINE, probe(), catalog, cache).run()
    assert session.conversation.turns[-2].extras["scope"] == "documents"
    assert again.citations[0].page == 4 and again.citations[0].verified

    elsewhere = ChatSession()  # a chat without that document: the question cannot be asked about it there
    elsewhere.attach(load_document(build_pdf(filler_pages(3, seed=5)), "other.pdf"))
    elsewhere.select_scope(QuestionScope.PAGES)
    assert not elsewhere.use_pages_of(question) and elsewhere.scope is QuestionScope.PAGES  # the choice unchanged


def test_an_answer_while_the_reading_runs_says_how_much_was_read(session, catalog, cache):
    document = session.document
    lines = [TextLine(text, (72.0, 100.0 + 30 * n, 900.0, 124.0 + 30 * n)) for n, text in enumerate(ENGLISH)]
    session.index.begin_read(document.sha256, document.name, document.page_count)
    session.index.save_pages(document.sha256, [PageText(2, PageSource.TEXT_LAYER, lines, "pdf text layer")])
    turn = session.ask(CONTRACT_QUESTION, OFFLINE, probe(), catalog, cache).run()

    assert turn.text.startswith("Still reading: this answer comes from the pages read so far (1 of 6 pages")
    assert turn.citations[0].page == 2
    assert turn.extras["coverage"] == [
        {"document": "contract.pdf", "page_count": 6, "pages_read": 1, "state": "running"}
    ]
    assert unread_note(turn.extras["coverage"]) == "Answered from the pages read so far: 1 of 6 pages of contract.pdf."


@pytest.mark.slow
def test_a_vision_language_model_gets_the_retrieved_pages_labelled_and_asked_to_cite(session, catalog, cache):
    read_all(session)
    answer = session.ask(
        CONTRACT_QUESTION, AskOptions(model="tiny", max_new_tokens=8, fallback=False), probe(), catalog, cache
    )
    turn = answer.run()

    sent = answer.routed.messages[-1]
    assert "[p. 4]" in sent.text and "cite" in sent.text and CONTRACT_QUESTION in sent.text
    assert turn.model == "tiny" and turn.extras["method"] == AnswerMethod.MODEL
    assert turn.extras["pages_sent"][0] == {"document": "contract.pdf", "page": 4}  # the best page first
    assert turn.extras["images_sent"] == len(turn.extras["pages_sent"]) == len(sent.images)
    # A random tiny model cites nothing it can back: whatever it wrote, no citation is verified by accident.
    assert all(c.status is not CitationStatus.VERIFIED or c.boxes for c in turn.citations)


def test_the_history_fits_what_the_retrieved_pages_leave_of_the_context(session, catalog, cache):
    read_all(session)
    for number in range(1, 41):  # an earlier chat of short turns
        session.conversation.add(Turn("user" if number % 2 else "assistant", f"turn {number} " + "words " * 40))
    options = AskOptions(model="tiny", max_new_tokens=8, fallback=False)
    spec = catalog["tiny"]
    budget = prompt_budget(spec, plan_load(probe(), spec, options.overrides()), 8)
    answer = session.ask(CONTRACT_QUESTION, options, probe(), catalog, cache)

    *history, asked = answer.routed.messages
    images = sum(budget.image_tokens(image.width * image.height) for image in asked.images)
    assert asked.images and CONTRACT_QUESTION in asked.text
    used = images + sum(budget.text_tokens(message.text) for message in answer.routed.messages)
    assert used <= budget.max_tokens  # the earliest turns gave way to the pages
    assert history and session.conversation.dropped_turns > 0  # the latest turns that fit are still sent
    assert history[-1].text.startswith("turn 40") and history[0].role == "user"


def test_a_models_citations_are_checked_against_the_pages_it_was_sent(session):
    read_all(session)
    plan = DocumentAnswer(
        CONTRACT_QUESTION, DocumentRoute.RETRIEVED_PAGES, session.index, {session.document.sha256: "contract.pdf"}
    )
    plan.model_message(session.documents)
    from chatvlmllm.chat.conversation import Turn

    turn = Turn(
        "assistant",
        'The supplier pays "a penalty of one tenth of one percent" [p. 4]. It also owes "a bonus of '
        'fifty pounds a day" [p. 4], and the law applies [p. 6].',
        model="tiny",
    )
    routed = RoutedAnswer([], [], None, None, None, None, model="tiny")  # type: ignore[arg-type]
    plan.complete(turn, routed)
    statuses = [(c.page, c.status) for c in turn.citations]
    assert statuses == [
        (4, CitationStatus.VERIFIED),
        (4, CitationStatus.NOT_ON_PAGE),
        (6, CitationStatus.PAGE_NOT_SENT),
    ]
    assert turn.citations[0].boxes and not turn.citations[1].boxes  # only a verified one points at lines
    assert all(c.document_name == "contract.pdf" for c in turn.citations[:2])


def test_without_a_model_that_answers_the_passages_stand_in_saying_why(session, tmp_path, cache):
    read_all(session)
    catalog_file = Path(os.environ["CHATVLMLLM_MODELS_FILE"])
    write_models_file(catalog_file, {"no_model_here": {"family": "qwen2_vl", "path": str(tmp_path)}})
    catalog = load_catalog()
    turn = session.ask(
        CONTRACT_QUESTION, AskOptions(model="no_model_here", fallback=False), probe(), catalog, cache
    ).run()

    assert turn.error is None and turn.text.startswith("Offline answer (extractive)")
    assert "No vision-language model could answer" in turn.extras["note"]
    # What was tried stays with the answer: a model known not to load here is skipped, never loaded.
    assert [a["outcome"] for a in turn.attempts] == ["skipped"]
    assert turn.citations[0].page == 4 and turn.citations[0].verified


@pytest.mark.slow
def test_page_tasks_and_a_chosen_page_go_to_the_page_in_view(session, catalog, cache):
    read_all(session)
    turn = session.ask(QUICK_PROMPTS["Extract all text"], OFFLINE, probe(), catalog, cache).run()
    assert session.conversation.turns[-2].pages == [1] and not turn.citations  # read from page 1's image

    session.select_pages([4])
    session.select_scope(QuestionScope.PAGES)
    assert not session.whole_documents
    session.ask(CONTRACT_QUESTION, OFFLINE, probe(), catalog, cache).run()
    assert session.conversation.turns[-2].pages == [4] and "scope" not in session.conversation.turns[-2].extras


def test_a_single_page_chat_asks_about_its_page(tmp_path, catalog, cache):
    chat = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    chat.attach(load_document(build_pdf([PageSpec(ENGLISH)]), "one.pdf"))
    assert not chat.whole_documents  # nothing to retrieve over: the page goes with the question


def test_reading_starts_by_itself_resumes_after_a_restart_but_not_after_cancel(session):
    document = session.document
    job = keep_reading(document, session.index)
    assert job is not None and job.wait(60).state is ReadState.DONE
    assert keep_reading(document, session.index) is job  # read: nothing starts again

    session.index.forget(document.sha256)
    session.index.begin_read(document.sha256, document.name, document.page_count)
    session.index.set_state(document.sha256, ReadState.CANCELLED)
    assert keep_reading(document, session.index) is job  # cancelled by the user: stays so

    session.index.set_state(document.sha256, ReadState.RUNNING)  # what a kill -9 leaves behind...
    import chatvlmllm.documents.reading as reading

    with reading._jobs_lock:  # ...in a new process, which has no job for it
        reading._jobs.clear()
    assert job_of(document.sha256, session.index) is None
    resumed = keep_reading(document, session.index)
    assert resumed is not None and resumed is not job and resumed.wait(60).state is ReadState.DONE
