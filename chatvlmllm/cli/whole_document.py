"""`chatvlmllm ask FILE QUESTION` over a whole document: read and index every page once (resuming), retrieve, and
answer with citations.

- The offline engines understand nothing, so with one of them chosen the answer is extractive: the best-matching
  passages, ranked, each with its page (`documents.citations.extractive_answer`).
- A vision-language model gets the retrieved pages' images and passages, labelled with page numbers, and is asked
  to cite pages; its citations are checked (`chat.document_reading.answer_citations`). Should the fallback chain
  end on an offline engine, the extractive answer replaces its transcription.

`--json` prints one object whose `citations` list holds `page`, `text`, `box` (and `boxes`, `status`) each.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chatvlmllm.chat.document_answer import coverage_record
from chatvlmllm.chat.document_reading import answer_citations, page_request
from chatvlmllm.chat.router import RoutedAnswer, answer
from chatvlmllm.cli.ask_cmd import answer_record, generation_settings, model_chain, stream_answer
from chatvlmllm.cli.index_cmd import ocr_model, read_with_progress
from chatvlmllm.decisions import Backend
from chatvlmllm.documents.citations import UNVERIFIED_WORDS, Citation, ExtractiveAnswer, extractive_answer
from chatvlmllm.documents.index import DocumentIndex, ReadStatus
from chatvlmllm.documents.loading import Document
from chatvlmllm.i18n import _
from chatvlmllm.models.catalog import get_model, load_catalog
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.tasks import is_offline_engine

RETRIEVED_PASSAGES = 12


def ask_whole_document(args: argparse.Namespace, document: Document, question: str) -> int:
    index = DocumentIndex()
    read_with_progress(document, index, ocr_model(args), args.lang, quiet=False)
    if _offline_engine_named(args):  # no model to plan for: skip the hardware probe (it imports torch, seconds)
        return _print_extractive(args, extractive_answer(question, index, [document.sha256]), document)
    hw = probe()
    catalog = load_catalog()
    first, chain, overrides = model_chain(args, question, hw, catalog)
    if first.family_info().backend is Backend.CLASSIC:
        return _print_extractive(args, extractive_answer(question, index, [document.sha256]), document)
    passages = index.search(question, [document.sha256], RETRIEVED_PASSAGES)
    request = page_request(question, passages, {document.sha256: document})  # the opening pages if nothing matched
    routed = answer([request.message], chain, hw, generation_settings(args, request.page_numbers()), overrides)
    stream_answer(args, routed)
    if routed.model is not None and is_offline_engine(catalog[routed.model].family if routed.model in catalog else ""):
        said = _("the fallback was an offline engine: here is the extractive answer instead")
        print(f"\n[{said}]", file=sys.stderr)
        return _print_extractive(args, extractive_answer(question, index, [document.sha256]), document)
    citations = answer_citations(routed.text, request, index)
    _print_model_answer(args, routed, document, [page for _document, page in request.pages], citations, index)
    return 0


def _offline_engine_named(args: argparse.Namespace) -> bool:
    return bool(args.model) and not args.model_path and get_model(args.model).family_info().backend is Backend.CLASSIC


def _print_extractive(args: argparse.Namespace, result: ExtractiveAnswer, document: Document) -> int:
    if args.json:
        record: dict[str, Any] = {
            "answer": result.text,
            "model": None,
            "method": "extractive",
            "document": document.name,
            "pages": sorted({citation.page for citation in result.citations}),
            "scope": "document",
            "coverage": [_coverage(status) for status in result.coverage],
            "citations": [citation.to_dict() for citation in result.citations],
        }
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(result.text)
    return 0


def _print_model_answer(
    args: argparse.Namespace,
    routed: RoutedAnswer,
    document: Document,
    pages: list[int],
    citations: list[Citation],
    index: DocumentIndex,
) -> None:
    if args.json:
        record = answer_record(routed, document.name, pages)
        status = index.status(document.sha256)
        record.update(
            method="model",
            scope="document",
            coverage=[_coverage(status)] if status else [],
            citations=[citation.to_dict() for citation in citations],
        )
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return
    print()
    for citation in citations:
        why = _(UNVERIFIED_WORDS.get(citation.status, citation.status.value))
        mark = "✓" if citation.verified else _("unverified: {status}").format(status=why)
        where = _("p. {page} ({mark})").format(page=citation.page, mark=mark)
        print(f"[{where}] {citation.text}", file=sys.stderr)
    if routed.metrics:
        sent = _("pages sent: {pages}").format(pages=", ".join(map(str, pages)))
        print(f"[{routed.metrics.caption()} · {sent}]", file=sys.stderr)


def _coverage(status: ReadStatus) -> dict[str, Any]:
    return {**coverage_record(status), "sources": status.sources}
