"""`chatvlmllm index FILE`: read every page once (text layer, else OCR) and index it, with a progress bar.

A later `chatvlmllm ask FILE QUESTION` (or the app, with the same data folder) answers from the index at
once. An interrupted run (Ctrl-C, a crash, `kill -9`) resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from chatvlmllm.chat.document_reading import reading_job
from chatvlmllm.documents.index import DocumentIndex
from chatvlmllm.documents.loading import Document, open_document
from chatvlmllm.documents.reading import ReadProgress
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import _, format_number, ngettext
from chatvlmllm.models.catalog import ModelSpec, get_model


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("index", help="read and index a document ahead of questions")
    add_reading_options(p)
    p.add_argument("--again", action="store_true", help="forget what was read and read every page again")
    p.add_argument("--json", action="store_true", help="print one JSON object with the per-page sources")
    p.set_defaults(run=run)


def add_reading_options(p: argparse.ArgumentParser, with_file: bool = True) -> None:
    if with_file:
        p.add_argument("file", help="image (PNG, JPEG, WebP, BMP, TIFF) or PDF")
        p.add_argument("--lang", metavar="CODE", help="document language (ISO 639-1, e.g. en, ru)")
    p.add_argument(
        "--ocr-model",
        metavar="KEY",
        help="the model that reads pages without a usable text layer (default: the offline engine, ocr_auto)",
    )


def run(args: argparse.Namespace) -> int:
    document = open_document(args.file)
    index = DocumentIndex()
    if args.again:
        index.forget(document.sha256)
    final = read_with_progress(document, index, ocr_model(args), args.lang, quiet=False)
    if args.json:
        print(json.dumps(reading_record(final, index, document), indent=2, ensure_ascii=False))
    else:
        print(reading_summary(document.name, final))
    return 0


def ocr_model(args: argparse.Namespace) -> ModelSpec | None:
    return get_model(args.ocr_model) if getattr(args, "ocr_model", None) else None


def read_with_progress(
    document: Document, index: DocumentIndex, model: ModelSpec | None, language: str | None, quiet: bool
) -> ReadProgress:
    """Read the document's unread pages in this thread, with a tqdm bar on stderr; Ctrl-C cancels cleanly
    (the pages read so far stay stored)."""
    update, close = (lambda progress: None, lambda: None) if quiet else _progress_bar(document)
    job = reading_job(document, index, model, language, update)
    try:
        final = job.run()
    except KeyboardInterrupt:
        job.cancel()
        raise
    finally:
        close()
    if final.error:
        raise UserError(_("reading {name} failed: {error}").format(name=document.name, error=final.error))
    return final


def _progress_bar(document: Document) -> tuple[Callable[[ReadProgress], None], Callable[[], None]]:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log or a pipe gets no carriage-return noise)
    bar = tqdm(
        total=document.page_count,
        unit=_("page"),
        desc=_("reading {name}").format(name=document.name),
        file=sys.stderr,
        leave=False,
        disable=None,
    )

    def update(progress: ReadProgress) -> None:
        bar.n = progress.pages_read
        bar.set_postfix_str(", ".join(f"{source}: {n}" for source, n in sorted(progress.sources.items())))
        bar.refresh()

    return update, bar.close


def reading_summary(name: str, final: ReadProgress) -> str:
    """ "scan.pdf: 3 of 5 pages read (2 from text layer, 1 from ocr_auto)." in the interface language."""
    sources = ", ".join(
        _("{count} from {source}").format(count=format_number(count), source=source)
        for source, count in sorted(final.sources.items())
    )
    if final.resumed_from:
        sources = _("{sources}, {count} read before").format(
            sources=sources or _("none new"), count=format_number(final.resumed_from)
        )
    return ngettext(
        "{name}: {read} of {count} page read ({sources}).",
        "{name}: {read} of {count} pages read ({sources}).",
        final.page_count,
    ).format(
        name=name,
        read=format_number(final.pages_read),
        count=format_number(final.page_count),
        sources=sources or _("none new"),
    )


def reading_record(final: ReadProgress, index: DocumentIndex, document: Document) -> dict[str, Any]:
    pages = []
    for number in range(1, document.page_count + 1):
        page = index.page_text(document.sha256, number)
        if page is not None:
            pages.append({"page": number, "source": page.source.value, "reader": page.reader, "why": page.why()})
    return {
        "document": document.name,
        "sha256": document.sha256,
        "page_count": final.page_count,
        "pages_read": final.pages_read,
        "resumed_from": final.resumed_from,
        "state": final.state.value,
        "seconds": round(final.elapsed_s, 3),
        "pages": pages,
    }
