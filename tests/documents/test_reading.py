"""The background reading job: progress (pages done, time left), Cancel, and resume after a restart (a new index
object on the same file, as after the process died), on born-digital pages (no OCR involved)."""

from __future__ import annotations

import pytest

from chatvlmllm.devtools.pdfs import PageKind, PageSpec, build_pdf, filler_pages
from chatvlmllm.documents.index import DocumentIndex, PageSource, ReadState
from chatvlmllm.documents.loading import load_document
from chatvlmllm.documents.reading import ReadingJob, ReadProgress, start_reading

PAGES = 60


@pytest.fixture(scope="module")
def long_pdf() -> bytes:
    return build_pdf(filler_pages(PAGES, seed=7, lines_per_page=20))


def test_a_background_job_reports_progress_and_finishes(tmp_path, long_pdf):
    document = load_document(long_pdf, "long.pdf")
    reports: list[ReadProgress] = []
    job = ReadingJob(document, DocumentIndex(tmp_path / "db.sqlite3"), on_progress=reports.append).start()
    final = job.wait(timeout=120)
    assert final.state is ReadState.DONE and final.pages_read == PAGES and final.fraction == 1.0
    assert final.sources == {PageSource.TEXT_LAYER.value: PAGES}
    counts = [r.pages_read for r in reports]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == PAGES
    assert any(r.seconds_left is not None for r in reports[1:])
    assert reports[-1].seconds_left == 0 and reports[-1].finished


def test_cancel_stops_between_pages_and_a_restart_resumes_after_the_stored_pages(tmp_path, long_pdf):
    path = tmp_path / "db.sqlite3"
    document = load_document(long_pdf, "long.pdf")
    first: ReadingJob

    def cancel_after_first_batch(progress: ReadProgress) -> None:
        if progress.pages_read > 0:
            first.cancel()

    first = ReadingJob(document, DocumentIndex(path), on_progress=cancel_after_first_batch)
    stopped = first.run()
    assert stopped.state is ReadState.CANCELLED and 0 < stopped.pages_read < PAGES
    restarted = DocumentIndex(path)  # what a new process sees
    (unfinished,) = restarted.unfinished()
    assert unfinished.document == document.sha256 and unfinished.pages_read == stopped.pages_read

    reports: list[ReadProgress] = []
    again = load_document(long_pdf, "long.pdf")
    final = ReadingJob(again, restarted, on_progress=reports.append).run()
    assert reports[0].pages_read == stopped.pages_read  # the stored pages were not read again
    assert final.state is ReadState.DONE and final.pages_read == PAGES and restarted.unfinished() == []
    assert restarted.page_text(document.sha256, PAGES) is not None


def test_one_job_per_document_and_without_ocr_a_scan_page_is_marked_unread(tmp_path):
    pages = [PageSpec(["Clause one: the buyer pays within thirty days of delivery."] * 3)]
    pages.append(PageSpec(["A scanned page without any text layer at all."], PageKind.SCAN))
    document = load_document(build_pdf(pages), "mixed.pdf")
    index = DocumentIndex(tmp_path / "db.sqlite3")
    job = start_reading(document, index)
    assert start_reading(document, index) is job or job.progress().finished
    final = job.wait(timeout=60)
    assert final.state is ReadState.DONE
    scan = index.page_text(document.sha256, 2)
    assert scan is not None and scan.source is PageSource.NONE and scan.lines == []
    assert "no text layer" in scan.why()
