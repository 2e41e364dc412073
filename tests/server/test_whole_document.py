"""A question about a document of several pages through the API: the answer over the whole document, with the
`citations` extension field in the response and on the last SSE chunk; the OpenAI fields otherwise as before."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from chatvlmllm.documents.citations import CitationStatus
from chatvlmllm.documents.loading import load_document
from chatvlmllm.models.catalog import get_model, load_catalog
from chatvlmllm.server import create_app
from chatvlmllm.server.protocol import ChatCompletionRequest
from chatvlmllm.server.served import plan_models
from chatvlmllm.server.whole_document import asked_document, whole_document_answer
from tests.helpers import CONTRACT_CLAUSE, CONTRACT_PAGE, CONTRACT_QUESTION, contract_pdf, write_models_file

OPENAI_FIELDS = {"id", "object", "created", "model", "choices", "usage"}


def pdf_url(data: bytes) -> str:
    return "data:application/pdf;base64," + base64.b64encode(data).decode()


def question_about(data: bytes, question: str = CONTRACT_QUESTION, **extra) -> dict:
    content = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": pdf_url(data)}}]
    return {"model": "ocr_auto", "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture
def offline_server() -> TestClient:
    return TestClient(create_app(plan_models([get_model("ocr_auto")])))


def check_citation(citation: dict) -> None:
    assert citation["page"] == CONTRACT_PAGE and citation["verified"] and citation["status"] == "verified"
    assert citation["text"] in " ".join(CONTRACT_CLAUSE) and citation["document_name"] == "image 1"
    x0, y0, x1, y1 = citation["box"]
    assert 0 <= x0 < x1 and 0 <= y0 < y1 and len(citation["boxes"]) >= 1


@pytest.mark.slow  # the offline engine checks the text layer against a quick OCR of a sample
def test_a_question_about_a_pdf_is_answered_over_every_page_with_citations(offline_server):
    response = offline_server.post("/v1/chat/completions", json=question_about(contract_pdf()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == OPENAI_FIELDS | {"metrics", "citations"}  # the OpenAI response, two extension fields
    message = body["choices"][0]["message"]
    assert message["content"].startswith("Offline answer (extractive)")
    assert body["choices"][0]["finish_reason"] == "stop"
    check_citation(body["citations"][0])
    assert "[p. 4]" in message["content"] and CONTRACT_CLAUSE[2] in message["content"]


def test_a_busy_server_refuses_a_question_about_a_document_and_a_plain_one():
    busy = TestClient(create_app(plan_models([get_model("ocr_auto")]), max_pending=0))
    plain = {"model": "ocr_auto", "messages": [{"role": "user", "content": "Extract the text"}]}
    for body in (question_about(contract_pdf()), plain):
        response = busy.post("/v1/chat/completions", json=body)
        assert response.status_code == 429 and response.json()["error"]["code"] == "server_busy"
        assert response.json()["error"]["message"] == "0 answers are already queued; try again later"


def test_the_last_sse_chunk_carries_the_citations(offline_server):
    with offline_server.stream("POST", "/v1/chat/completions", json=question_about(contract_pdf(), stream=True)) as r:
        assert r.status_code == 200
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and "metrics" in last
    check_citation(last["citations"][0])
    assert all("citations" not in chunk for chunk in chunks[:-1])  # the content chunks are OpenAI's own
    assert set(chunks[0]) == {"id", "object", "created", "model", "choices"}


def test_a_model_gets_the_retrieved_pages_and_its_citations_are_checked():
    """No model runs here: what a chat model would be sent, and how a written answer's citations are judged."""
    data = contract_pdf(pages=8)
    request = ChatCompletionRequest.model_validate(
        {**question_about(data), "model": "qwen_vl_2b"}
        | {"messages": [{"role": "system", "content": "Be brief."}, *question_about(data)["messages"]]}
    )
    whole = whole_document_answer(request, get_model("qwen_vl_2b"), asked_document(request))
    assert whole is not None and not whole.extractive
    assert whole.page_numbers()[0] == CONTRACT_PAGE and len(whole.page_numbers()) < 8  # retrieved, not every page
    system, sent = whole.messages
    assert system.role == "system" and system.text == "Be brief."
    assert f"[p. {CONTRACT_PAGE}]" in sent.text and "cite its page" in sent.text
    page = load_document(data, "contract.pdf").page(CONTRACT_PAGE - 1)
    assert sent.images[0].size == page.size

    answer = f'The penalty is "one tenth of one percent of the price" [p. {CONTRACT_PAGE}], as "the moon" [p. 8] says.'
    citations = whole.citations(answer)
    assert [(c["page"], c["status"]) for c in citations] == [
        (CONTRACT_PAGE, CitationStatus.VERIFIED.value),
        (8, CitationStatus.PAGE_NOT_SENT.value),
    ]
    assert citations[0]["box"] is not None and citations[1]["box"] is None


def test_a_page_task_or_a_single_page_is_not_a_whole_document_question():
    spec = get_model("qwen_vl_2b")
    extract = ChatCompletionRequest.model_validate(question_about(contract_pdf(), "Extract all the text"))
    assert whole_document_answer(extract, spec, asked_document(extract)) is None
    single = ChatCompletionRequest.model_validate(question_about(_one_page()))
    assert whole_document_answer(single, spec, asked_document(single)) is None


def _one_page() -> bytes:
    from chatvlmllm.devtools.pdfs import PageSpec, build_pdf

    return build_pdf([PageSpec(CONTRACT_CLAUSE)])


@pytest.mark.slow
def test_a_tiny_real_qwen2_vl_answers_over_the_retrieved_pages_with_citations(tmp_path, monkeypatch, tiny_qwen2_vl):
    """The production loader reads a tiny random Qwen2-VL back; its words mean nothing, so whatever it cites is
    checked like any model's (a random page marker would be unverified), and the field is there either way."""
    write_models_file(tmp_path / "models.toml", {"tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "models.toml"))
    client = TestClient(create_app(plan_models([load_catalog()["tiny"]])))
    body = {**question_about(contract_pdf(pages=8)), "model": "tiny", "max_tokens": 12}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == OPENAI_FIELDS | {"metrics", "citations"} and answer["model"] == "tiny"
    assert answer["metrics"]["image_tokens"] > 0 and answer["usage"]["completion_tokens"] >= 1
    assert isinstance(answer["citations"], list)
    for citation in answer["citations"]:  # each one checked: verified with its box, or said not to be
        assert citation["verified"] == (citation["status"] == CitationStatus.VERIFIED.value)
        assert citation["verified"] or citation["box"] is None
