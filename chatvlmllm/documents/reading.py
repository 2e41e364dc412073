"""Read every page of a document once, in the background: progress, Cancel, resume after a restart.

For each page not yet stored in the `DocumentIndex`:

1. a PDF page's own text layer (`text_layer.read_layer`), checked by `layer_check` (text signals on every
   page; on a scan, ink coverage and agreement with a quick OCR of a sample);
2. otherwise (an image, a page without a usable layer) the injected `PageOcr`: this module needs no engine,
   the chat layer passes one (`chatvlmllm.chat.document_reading`).

Pages render one at a time and only when needed (a scan to check, a page to OCR); pages are stored in small
batches, each in one transaction, so a stopped job (Cancel, a crash, `kill -9`) loses at most the batch in
hand and a new job for the same document continues after the last stored page. Memory stays bounded by one
page image and one batch of lines, whatever the page count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chatvlmllm.documents.index import DocumentIndex, PageSource, PageText, ReadState, ReadStatus
from chatvlmllm.documents.layer_check import LineSampler, judge_scan, judge_text
from chatvlmllm.documents.loading import Document, DocumentKind
from chatvlmllm.documents.text_layer import TextLine, read_layer
from chatvlmllm.errors import ChatVlmError, DocumentError
from chatvlmllm.i18n import lazy_message
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

BATCH_PAGES = 24  # pages stored per transaction, at most
BATCH_SECONDS = 1.0  # ... or after this long, so slow OCR'd pages are stored one by one
LAYER_READER = "pdf text layer"


@dataclass(frozen=True)
class OcrResult:
    lines: list[TextLine]
    reader: str  # "ocr_auto: tesseract", for the page's record


class PageOcr(Protocol):
    """OCR one rendered page (1-based `page`); stop early when `cancel` is set."""

    def __call__(self, image: Image.Image, page: int, cancel: threading.Event) -> OcrResult: ...


@dataclass(frozen=True)
class ReadProgress:
    """A snapshot of a reading job, for a progress bar."""

    document: str
    name: str
    page_count: int
    pages_read: int  # stored, including pages stored by an earlier job
    state: ReadState
    elapsed_s: float
    seconds_left: float | None  # None until a page has been read in this job
    sources: dict[str, int] = field(default_factory=dict)  # pages read by this job, per PageSource value
    error: str | None = None
    resumed_from: int = 0  # pages already stored when this job started (read by an earlier one)

    @property
    def fraction(self) -> float:
        return self.pages_read / self.page_count if self.page_count else 1.0

    @property
    def finished(self) -> bool:
        return self.state is not ReadState.RUNNING


class ReadingJob:
    """Reads one document's pages into the index. `run()` reads in the caller's thread; `start()` in a
    background thread; `cancel()` stops between pages (and inside an OCR'd page, if the engine can)."""

    def __init__(
        self,
        document: Document,
        index: DocumentIndex,
        ocr: PageOcr | None = None,
        sampler: LineSampler | None = None,
        on_progress: Callable[[ReadProgress], None] | None = None,
    ):
        self.document = document
        self.index = index
        self.ocr = ocr
        self.sampler = sampler
        self.on_progress = on_progress
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = ReadState.RUNNING
        self._error: str | None = None
        self._read_before = 0
        self._read_now = 0
        self._sources: dict[str, int] = {}
        self._started = time.perf_counter()
        self._reading_started: float | None = None

    # -- control --------------------------------------------------------------------------------
    def start(self) -> ReadingJob:
        self._thread = threading.Thread(target=self._run_logged, name=f"read {self.document.name}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> ReadProgress:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.progress()

    def progress(self) -> ReadProgress:
        with self._lock:
            done = self._read_before + self._read_now
            elapsed = time.perf_counter() - self._started
            left = None
            if self._read_now and self._reading_started is not None:
                per_page = (time.perf_counter() - self._reading_started) / self._read_now
                left = per_page * max(0, self.document.page_count - done)
            return ReadProgress(
                self.document.sha256,
                self.document.name,
                self.document.page_count,
                done,
                self._state,
                elapsed,
                left,
                dict(self._sources),
                self._error,
                self._read_before,
            )

    # -- the work -------------------------------------------------------------------------------
    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:  # the state says FAILED with the message; the traceback goes to the log
            log.exception("reading %s failed", self.document.name)

    def run(self) -> ReadProgress:
        """Read every page not stored yet; returns the final progress (DONE, CANCELLED or FAILED)."""
        sha = self.document.sha256
        done = self.index.begin_read(sha, self.document.name, self.document.page_count)
        with self._lock:
            self._read_before = len(done)
            self._reading_started = time.perf_counter()
        self._report()
        try:
            self._read_pages(done)
        except KeyboardInterrupt:  # Ctrl-C in the CLI: a cancel, the pages stored so far stay
            self._finish(ReadState.CANCELLED)
            raise
        except (ChatVlmError, OSError) as exc:
            self._finish(ReadState.FAILED, str(exc))
            raise
        except BaseException as exc:
            self._finish(ReadState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        self._finish(ReadState.CANCELLED if self._cancel.is_set() else ReadState.DONE)
        return self.progress()

    def _read_pages(self, done: set[int]) -> None:
        batch: list[PageText] = []
        batch_started = time.perf_counter()
        with _PageSource(self.document) as pages:
            for number in range(1, self.document.page_count + 1):
                if self._cancel.is_set():
                    break
                if number in done:
                    continue
                page = pages.read(number, self.ocr, self.sampler, self._cancel)
                if page is None:  # cancelled inside the OCR
                    break
                batch.append(page)
                if len(batch) >= BATCH_PAGES or time.perf_counter() - batch_started >= BATCH_SECONDS:
                    self._store(batch)
                    batch, batch_started = [], time.perf_counter()
        if batch:
            self._store(batch)

    def _store(self, batch: list[PageText]) -> None:
        self.index.save_pages(self.document.sha256, batch)
        with self._lock:
            self._read_now += len(batch)
            for page in batch:
                self._sources[page.source.value] = self._sources.get(page.source.value, 0) + 1
        self._report()

    def _finish(self, state: ReadState, error: str | None = None) -> None:
        with self._lock:
            self._state, self._error = state, error
        try:
            self.index.set_state(self.document.sha256, state)
        finally:
            self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())


class _PageSource:
    """Opens a PDF once for the whole job (PDFium parses it once), renders one page at a time."""

    def __init__(self, document: Document):
        self.document = document
        self.pdf = None
        self.max_page_pixels = settings().max_page_pixels

    def __enter__(self) -> _PageSource:
        if self.document.kind == DocumentKind.PDF:
            import pypdfium2 as pdfium

            self.pdf = pdfium.PdfDocument(self.document.data)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pdf is not None:
            self.pdf.close()

    def read(self, number: int, ocr: PageOcr | None, sampler: LineSampler | None, cancel: threading.Event):
        """Page `number` as text, from its layer when the check trusts it, else from OCR (None: cancelled)."""
        if self.pdf is None:
            image = self.document.page(number - 1)
            return _ocr_page(number, image, ocr, None, cancel, image.size)
        import pypdfium2 as pdfium

        try:
            return self._read_pdf_page(number, ocr, sampler, cancel)
        except pdfium.PdfiumError as exc:  # the job stops with one line; the pages stored so far stay
            raise DocumentError(
                lazy_message(
                    "Page {page} of {name} cannot be read ({error}).", page=number, name=self.document.name, error=exc
                )
            ) from None

    def _read_pdf_page(self, number: int, ocr: PageOcr | None, sampler: LineSampler | None, cancel: threading.Event):
        assert self.pdf is not None
        page = self.pdf[number - 1]
        try:
            reading = read_layer(page, self.max_page_pixels)
            verdict = judge_text(reading)
            image = None
            if verdict.trusted and reading.is_scan:
                image = _render(page, reading.scale)
                verdict = judge_scan(verdict, image, reading.lines, sampler)
            if verdict.trusted:
                return PageText(number, PageSource.TEXT_LAYER, reading.lines, LAYER_READER, verdict, reading.size_px)
            if ocr is None:
                return PageText(number, PageSource.NONE, [], "no OCR engine", verdict, reading.size_px)
            image = image if image is not None else _render(page, reading.scale)
            return _ocr_page(number, image, ocr, verdict, cancel, reading.size_px)
        finally:
            page.close()


def _render(page, scale: float) -> Image.Image:
    return page.render(scale=scale).to_pil().convert("RGB")


def _ocr_page(number, image, ocr, verdict, cancel, size_px) -> PageText | None:
    if ocr is None:
        return PageText(number, PageSource.NONE, [], "no OCR engine", verdict, size_px)
    result = ocr(image, number, cancel)
    if cancel.is_set():
        return None
    return PageText(number, PageSource.OCR, result.lines, result.reader, verdict, size_px)


# -- one job per document and database, shared by every caller ------------------------------------
_jobs: dict[tuple[str, str], ReadingJob] = {}
_jobs_lock = threading.Lock()


def start_reading(
    document: Document, index: DocumentIndex, ocr: PageOcr | None = None, sampler: LineSampler | None = None
) -> ReadingJob:
    """The running job for this document and database, or a new one started in the background (it resumes
    after the pages already stored)."""
    key = (str(index.path), document.sha256)
    with _jobs_lock:
        job = _jobs.get(key)
        if job is not None and not job.progress().finished:
            return job
        job = ReadingJob(document, index, ocr, sampler).start()
        _jobs[key] = job
        return job


def job_of(document: str, index: DocumentIndex) -> ReadingJob | None:
    """This process's latest job for `document` (sha256) and this database: running or finished; None if none."""
    with _jobs_lock:
        return _jobs.get((str(index.path), document))


def reads_by_itself(status: ReadStatus | None, job: ReadingJob | None) -> bool:
    """Whether a document should be read (or its reading resumed) without anyone asking: never read, or stopped
    by a crash or a restart (its stored state still says running, and no job of this process runs it). Never
    after Cancel or a failure: the user resumes those."""
    if job is not None and not job.progress().finished:
        return False  # already being read
    if status is None:
        return True
    return not status.complete and status.state is ReadState.RUNNING and job is None


def cancel_all(timeout_s: float = 30.0) -> None:
    """Cancel every job of this process and wait for each to stop (at the end of a process, or of a test)."""
    with _jobs_lock:
        jobs = list(_jobs.values())
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(timeout_s)
