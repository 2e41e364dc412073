"""An answer over a whole document keeps its citations in the transcript exports: Markdown (to read), JSON
(re-importable, the unverified ones still unverified) and CSV (one cell per turn)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from chatvlmllm.chat.conversation import Conversation, TranscriptError, Turn
from chatvlmllm.chat.document_reading import reading_job
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.session import AskOptions, ChatSession
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.documents.citations import Citation, CitationStatus
from chatvlmllm.documents.index import ReadState
from chatvlmllm.documents.loading import load_document
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.hardware import probe
from tests.helpers import CONTRACT_CLAUSE, CONTRACT_PAGE, CONTRACT_QUESTION, contract_pdf

UNVERIFIED_QUOTE = "a bonus of fifty pounds a day"


@pytest.fixture(scope="module")
def contract() -> bytes:
    return contract_pdf()


@pytest.fixture
def answered(tmp_path, contract) -> Conversation:
    """A real extractive answer over the whole contract, then a model's answer with an unverified citation."""
    chat = ChatSession(store=ChatStore(tmp_path / "chats.sqlite3"))
    chat.attach(load_document(contract, "contract.pdf"))
    assert reading_job(chat.document, chat.index).run().state is ReadState.DONE
    options = AskOptions(model="ocr_auto", fallback=False)
    turn = chat.ask(CONTRACT_QUESTION, options, probe(), load_catalog(), EngineCache()).run()
    assert turn.citations and turn.citations[0].page == CONTRACT_PAGE
    chat.conversation.add(Turn("user", "And the bonus?", document="contract.pdf"))
    unverified = Citation(6, UNVERIFIED_QUOTE, [], CitationStatus.PAGE_NOT_SENT, chat.document.sha256, "contract.pdf")
    chat.conversation.add(Turn("assistant", f'"{UNVERIFIED_QUOTE}" [p. 6]', model="tiny", citations=[unverified]))
    return chat.conversation


@pytest.mark.slow
def test_markdown_lists_each_answers_sources_unverified_ones_said_so(answered):
    text = answered.to_markdown()
    assert "Sources:" in text
    cited = answered.turns[1].citations[0]
    assert f"- p. {CONTRACT_PAGE} (contract.pdf): “{' '.join(cited.text.split())}”" in text
    assert cited.text.split()[0] in " ".join(CONTRACT_CLAUSE)
    assert f"- p. 6 (contract.pdf), **unverified** (page not sent): “{UNVERIFIED_QUOTE}”" in text


def test_json_carries_the_citations_and_reads_back_the_same(answered):
    data = json.loads(answered.to_json())
    first = data["turns"][1]["citations"][0]
    assert first["page"] == CONTRACT_PAGE and first["verified"] and first["status"] == "verified"
    assert first["box"] is not None and len(first["box"]) == 4 and first["boxes"]
    assert data["turns"][3]["citations"][0] | {"box": None, "verified": False} == data["turns"][3]["citations"][0]

    again = Conversation.from_json(answered.to_json())
    assert [turn.citations for turn in again.turns] == [turn.citations for turn in answered.turns]
    assert not again.turns[3].citations[0].verified  # an unverified citation stays one


def test_json_with_a_citation_marked_verified_by_hand_keeps_its_real_status(answered):
    data = json.loads(answered.to_json())
    data["turns"][3]["citations"][0]["verified"] = True  # `verified` is derived from `status`, never trusted
    assert not Conversation.from_json(json.dumps(data)).turns[3].citations[0].verified
    data["turns"][3]["citations"][0]["status"] = "trust me"
    with pytest.raises(TranscriptError, match="citations"):
        Conversation.from_json(json.dumps(data))


def test_csv_has_a_citations_cell_per_turn(answered):
    rows = list(csv.DictReader(io.StringIO(answered.to_csv())))
    assert rows[1]["citations"].startswith(f"contract.pdf p. {CONTRACT_PAGE}")
    assert rows[3]["citations"] == "contract.pdf p. 6 (unverified: page not sent)"
    assert rows[0]["citations"] == "" and rows[2]["citations"] == ""
