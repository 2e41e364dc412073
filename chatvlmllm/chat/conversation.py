"""A conversation about documents: turns with their metadata, exports, and engine messages.

A turn keeps everything needed to understand an answer later: which model answered, with
which attention and timings, the fallback attempts, the document page(s) the question
was about and, for an answer over whole documents, its citations (page, supporting text,
boxes, checked or not). Transcripts export to Markdown (to read), JSON (versioned,
re-importable) and CSV (one row per turn).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
)

from chatvlmllm.chat.context import Fit, PlannedTurn, PromptBudget, fit_turns
from chatvlmllm.decisions import AttemptOutcome
from chatvlmllm.documents.citations import UNVERIFIED_WORDS, Citation, CitationStatus
from chatvlmllm.engines.base import AnswerMetrics, Message, reader_summary
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_, _, format_datetime, ngettext
from chatvlmllm.i18n import Message as I18nMessage

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

log = logging.getLogger(__name__)

TRANSCRIPT_FORMAT = "chatvlmllm.transcript"
TRANSCRIPT_VERSION = 1
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48
# extras key: how many of the earliest turns were left out of the prompt to fit the context.
TURNS_NOT_SENT = "turns_not_sent"
# extras key of a question over whole documents: its `QuestionScope`, and the names of the documents it covers.
SCOPE = "scope"
SCOPE_DOCUMENTS = "documents"
# The keys of one page's record in an offline answer's extras["pages"] (which engine read it, and why).
PAGE_RECORD = {"page", "engine", "reason", "cached"}
# What a reader is told about an answer the app did not finish, or a question it never answered (a crash).
INCOMPLETE_NOTE = N_("incomplete: the app stopped while this answer was being written")
NOT_ANSWERED_NOTE = N_("Not answered: the app stopped before answering.")

# Answer metrics copied into the CSV export (AnswerMetrics field names).
METRIC_COLUMNS = (
    "attention",
    "dtype",
    "device",
    "load_s",
    "ttft_s",
    "total_s",
    "prompt_tokens",
    "new_tokens",
    "tokens_per_s",
    "stopped_by",
)
# Columns of the CSV export, in order.
CSV_COLUMNS = (
    "index",
    "role",
    "text",
    "model",
    *METRIC_COLUMNS,
    "document",
    "pages",
    "citations",
    "attempts",
    "error",
    "started_at",
    "finished_at",
)

# Looks up a page image: (document sha256, 1-based page) → image, or None when the document is gone.
PageLookup = Callable[[str, int], "Image.Image | None"]
# The pixel count of a page before it is rendered: (document sha256, 1-based page) → pixels (0 if unknown).
PagePixels = Callable[[str, int], int]


# Bounds of an imported transcript (a saved chat is read through the same schema).
MAX_TRANSCRIPT_BYTES = 20_000_000
MAX_TURNS = 2_000
MAX_TEXT_CHARS = 1_000_000
MAX_SHORT_CHARS = 1_000  # model keys, file names, timestamps, reasons
MAX_ATTEMPTS = 50
MAX_PAGES_PER_TURN = 500
MAX_CITATIONS = 200  # per answer
MAX_CITATION_BOXES = 200  # line boxes of one citation
MAX_EXTRA_DEPTH = 8  # settings and extras: JSON nested at most this deep
MAX_EXTRA_ITEMS = 20_000  # values in a turn's settings or extras, all levels together


class QuestionScope(StrEnum):
    """What a question is about."""

    DOCUMENTS = "documents"  # every page of every document of the chat, through retrieval (the default)
    PAGES = "pages"  # the page(s) chosen in the picker: their images go with the question


class TranscriptError(UserError):
    """A transcript (or a stored turn) that does not match the schema; the message names the field."""


def _bounded_json(value: Any) -> Any:
    """Free-form JSON (settings, extras) may not nest deeper than MAX_EXTRA_DEPTH or hold too many values."""
    stack = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_EXTRA_DEPTH:
            raise ValueError(f"nested more than {MAX_EXTRA_DEPTH} levels deep")
        if count > MAX_EXTRA_ITEMS:
            raise ValueError(f"more than {MAX_EXTRA_ITEMS:,} values")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


ShortText = Annotated[str, StringConstraints(max_length=MAX_SHORT_CHARS)]
FreeJson = Annotated[dict[str, JsonValue], AfterValidator(_bounded_json)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Record(BaseModel):
    # Unknown keys (a newer writer) are dropped rather than refused: the text still reads.
    # Strict: "1" is not a page number and "slow" is not a duration.
    model_config = ConfigDict(extra="ignore", strict=True)


class AttemptRecord(_Record):
    model: ShortText | None = None
    outcome: ShortText = "error"
    reason: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""
    seconds: Seconds = 0.0
    # The reason as a message of ours (`i18n.Message.to_dict`), so it reads in the language of whoever opens the
    # chat; absent where the reason is a library's own words.
    reason_message: dict[str, Any] | None = None


class MetricsRecord(_Record):
    """AnswerMetrics' fields, each with its type, so a caption or a sidebar can format them."""

    model: ShortText | None = None
    family: ShortText | None = None
    attention: ShortText | None = None
    dtype: ShortText | None = None
    device: ShortText | None = None
    quantization: ShortText | None = None
    load_s: Seconds | None = None
    ttft_s: Seconds | None = None
    total_s: Seconds | None = None
    prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    new_tokens: Annotated[int, Field(ge=0)] | None = None
    tokens_per_s: Seconds | None = None
    peak_vram_mb: Seconds | None = None
    stopped_by: ShortText | None = None


class LayoutElementRecord(_Record):
    bbox: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=4, max_length=4)]
    category: ShortText = "Text"
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""


class LayoutRecord(_Record):
    elements: Annotated[list[LayoutElementRecord], Field(max_length=5_000)] = []
    image_size: Annotated[list[Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=2, max_length=2)] | None = (
        None
    )
    truncated: bool = False


Coordinate = Annotated[float, Field(allow_inf_nan=False)]


class CitationRecord(_Record):
    """A citation as `Citation.to_dict()` writes it (`box` and `verified` are derived: read back from the rest)."""

    page: Annotated[int, Field(ge=1, le=100_000)]
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""
    boxes: Annotated[
        list[Annotated[list[Coordinate], Field(min_length=4, max_length=4)]], Field(max_length=MAX_CITATION_BOXES)
    ] = []
    # Not strict: the status arrives as its JSON string. An unknown one is refused (never shown as verified).
    status: Annotated[CitationStatus, Field(strict=False)] = CitationStatus.NO_TEXT
    document: Annotated[str, StringConstraints(max_length=128)] | None = None
    document_name: ShortText | None = None
    similarity: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None

    def citation(self) -> Citation:
        boxes = [(box[0], box[1], box[2], box[3]) for box in self.boxes]
        return Citation(self.page, self.text, boxes, self.status, self.document, self.document_name, self.similarity)


class TurnRecord(_Record):
    role: Literal["user", "assistant", "system"]
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    model: ShortText | None = None
    attempts: Annotated[list[AttemptRecord], Field(max_length=MAX_ATTEMPTS)] = []
    metrics: MetricsRecord = MetricsRecord()
    document: ShortText | None = None
    document_sha256: Annotated[str, StringConstraints(max_length=128)] | None = None
    pages: Annotated[list[Annotated[int, Field(ge=1, le=100_000)]], Field(max_length=MAX_PAGES_PER_TURN)] = []
    started_at: ShortText | None = None
    finished_at: ShortText | None = None
    error: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    settings: FreeJson = {}
    extras: FreeJson = {}
    incomplete: bool = False
    citations: Annotated[list[CitationRecord], Field(max_length=MAX_CITATIONS)] = []

    @field_validator("extras")
    @classmethod
    def _layout_shape(cls, extras: dict[str, Any]) -> dict[str, Any]:
        """The layout view draws extras["layout"]: it must have the layout's shape."""
        layout = extras.get("layout")
        if layout is None:
            return extras
        record = LayoutRecord(elements=layout) if isinstance(layout, list) else LayoutRecord.model_validate(layout)
        return {**extras, "layout": record.model_dump()}


class TranscriptRecord(_Record):
    format: Literal["chatvlmllm.transcript"]
    version: Annotated[int, Field(ge=1, le=TRANSCRIPT_VERSION)]
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    title: Annotated[str, StringConstraints(max_length=MAX_SHORT_CHARS)] | None = None
    created_at: ShortText | None = None
    updated_at: ShortText | None = None
    turns: Annotated[list[TurnRecord], Field(max_length=MAX_TURNS)]


def schema_error(exc: ValidationError, what: str) -> TranscriptError:
    """The first schema problem, with its field path (turns[3].attempts[0].seconds)."""
    first = exc.errors()[0]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first.get("loc", ()))
    path = path.lstrip(".") or "(the whole file)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return TranscriptError(f"{what}: {path}: {first.get('msg', 'invalid value')}{more}.")


def _turn_values(record: TurnRecord) -> dict[str, Any]:
    values = record.model_dump(exclude_unset=True)
    values["metrics"] = record.metrics.model_dump(exclude_unset=True)
    values["attempts"] = [
        a.model_dump(exclude={"reason_message"} if a.reason_message is None else None) for a in record.attempts
    ]
    values["citations"] = [c.citation() for c in record.citations]
    for stamp in ("started_at", "finished_at"):
        if values.get(stamp) is not None:
            values[stamp] = _iso_or_none(values[stamp]) or now_iso()
    if values.get("started_at") is None:
        values.pop("started_at", None)
    return values


def _not_future(stamp: str | None) -> str:
    """A timestamp from a file, no later than now (a date in 2099 must not pin a chat to the top)."""
    now = now_iso()
    if stamp is None:
        return now
    try:
        parsed = datetime.fromisoformat(stamp)
        return stamp if parsed.tzinfo is not None and parsed <= datetime.now(UTC) else now
    except ValueError:
        return now


def _iso_or_none(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).isoformat(timespec="milliseconds")
    except ValueError:
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Turn:
    """One message of the conversation with what is needed to reproduce and judge it."""

    role: str  # "user" | "assistant"
    text: str
    model: str | None = None  # the model that answered (assistant turns)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # router attempts, in order
    metrics: dict[str, Any] = field(default_factory=dict)  # AnswerMetrics.to_dict()
    document: str | None = None  # file name of the document the question was about
    document_sha256: str | None = None
    pages: list[int] = field(default_factory=list)  # 1-based
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # generation settings and overrides asked for
    extras: dict[str, Any] = field(default_factory=dict)  # engine extras (image_tokens, layout, ...)
    # An answer still streaming when it was last saved; after a crash it stays marked so.
    incomplete: bool = False
    # An answer over whole documents: where each fact comes from (verified or not).
    citations: list[Citation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["citations"] = [citation.to_dict() for citation in self.citations]  # with `box` and `verified`
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Turn:
        """A turn checked against the schema (TranscriptError names the bad field)."""
        try:
            record = TurnRecord.model_validate(data)
        except ValidationError as exc:
            raise schema_error(exc, "A transcript turn") from None
        return cls(**_turn_values(record))

    @classmethod
    def unreadable(cls, why: str) -> Turn:
        """Stands in for a stored turn that no longer matches the schema, so the rest of the chat opens."""
        return cls("assistant", "", error=f"This saved message could not be read ({why}).")

    @property
    def stopped_by(self) -> str | None:
        return self.metrics.get("stopped_by")

    def waited_s(self) -> float | None:
        """How long the user waited for this answer: from the question to the answer saved (its
        timestamps), whatever the engine's own time; None when either time is not known."""
        started, finished = _iso_or_none(self.started_at), _iso_or_none(self.finished_at)
        if started is None or finished is None:
            return None
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
        return seconds if seconds >= 0 else None

    @property
    def read_by(self) -> str | None:
        """Which offline engine read the page(s), in words and in the interface language (said beside the
        text, never inside it); the stored English words when the turn has no per-page record."""
        pages = self.extras.get("pages")
        if isinstance(pages, list) and pages and all(isinstance(p, dict) and p.keys() >= PAGE_RECORD for p in pages):
            return reader_summary(pages) or None
        read_by = self.extras.get("read_by")
        return read_by if isinstance(read_by, str) and read_by else None

    @property
    def fell_back(self) -> bool:
        return any(a.get("outcome") != AttemptOutcome.ANSWERED for a in self.attempts)

    def caption(self) -> str:
        """model · attention · time · tokens/s (AnswerMetrics.caption) for assistant turns, then any notes."""
        return " · ".join(part for part in (self._metrics_caption(), *self.notes()) if part)

    def _metrics_caption(self) -> str:
        if not self.metrics:
            return self.model or ""
        try:
            return AnswerMetrics(**self.metrics).caption()
        except (TypeError, ValueError):  # metrics written by another version: show what is there
            parts = [str(self.metrics.get(k)) for k in ("model", "attention", "total_s") if self.metrics.get(k)]
            return " · ".join(parts)

    def notes(self) -> list[str]:
        """What the reader of this answer should know about how it was made."""
        notes = []
        dropped = self.extras.get(TURNS_NOT_SENT)
        if isinstance(dropped, int) and not isinstance(dropped, bool) and dropped > 0:
            notes.append(
                ngettext(
                    "the first turn was not sent (context limit)",
                    "the first {count} turns were not sent (context limit)",
                    dropped,
                ).format(count=dropped)
            )
        if self.incomplete:
            notes.append(_(INCOMPLETE_NOTE))
        return notes

    def document_label(self) -> str:
        if not self.document:
            return ""
        if self.extras.get(SCOPE) == QuestionScope.DOCUMENTS:
            others = len(self.extras.get(SCOPE_DOCUMENTS) or []) - 1
            if others > 0:
                return ngettext(
                    "whole documents: {document} and {count} more",
                    "whole documents: {document} and {count} more",
                    others,
                ).format(document=self.document, count=others)
            return _("{document}, whole document").format(document=self.document)
        if not self.pages:
            return self.document
        return ngettext("{document}, page {pages}", "{document}, pages {pages}", len(self.pages)).format(
            document=self.document, pages=_page_ranges(self.pages)
        )


@dataclass
class Conversation:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    title: str = DEFAULT_TITLE
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    turns: list[Turn] = field(default_factory=list)
    # Turns dropped by the last `engine_messages(..., budget=...)` to fit the model's context.
    dropped_turns: int = field(default=0, compare=False)

    def add(self, turn: Turn) -> Turn:
        if self.title == DEFAULT_TITLE and turn.role == "user" and turn.text.strip():
            self.title = title_from(turn.text)
        self.turns.append(turn)
        self.updated_at = now_iso()
        return turn

    @property
    def last_answer(self) -> Turn | None:
        return next((t for t in reversed(self.turns) if t.role == "assistant"), None)

    def unanswered(self, answering: bool = False) -> set[int]:
        return unanswered_questions(self.turns, answering)

    # -- engine messages -------------------------------------------------
    def engine_messages(
        self,
        page_image: PageLookup | None = None,
        budget: PromptBudget | None = None,
        page_pixels: PagePixels | None = None,
    ) -> list[Message]:
        """The conversation as engine messages, so earlier turns reach the model.

        Each document page is attached once, to the user turn that first asked about it:
        repeating it on every turn would multiply the image tokens. Assistant turns that
        produced no text (failures) are left out. With a `budget`, the earliest turns are
        left out to fit the model's context (their images first), `dropped_turns` says how
        many, and only the pages that are sent are rendered.
        """
        planned: list[PlannedTurn] = []
        refs: list[list[tuple[str, int]]] = []
        sent: set[tuple[str, int]] = set()
        for turn in self.turns:
            if turn.role == "assistant":
                if turn.text.strip():
                    planned.append(PlannedTurn("assistant", turn.text))
                    refs.append([])
                continue
            pages: list[tuple[str, int]] = []
            if turn.document_sha256 and page_image is not None:
                for page in turn.pages:
                    ref = (turn.document_sha256, page)
                    if ref not in sent:
                        sent.add(ref)
                        pages.append(ref)
            sizes = [page_pixels(*ref) if page_pixels else 0 for ref in pages]
            planned.append(PlannedTurn(turn.role, turn.text, sizes))
            refs.append(pages)
        fit = fit_turns(planned, budget) if budget is not None else Fit(0, 0)
        self.dropped_turns = fit.dropped_turns
        messages: list[Message] = []
        for plan, pages in zip(planned, refs, strict=True):
            if not plan.keep:
                continue
            images = [] if not plan.keep_images or page_image is None else [page_image(*ref) for ref in pages]
            messages.append(Message(plan.role, plan.text, [image for image in images if image is not None]))
        return messages

    # -- exports -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRANSCRIPT_FORMAT,
            "version": TRANSCRIPT_VERSION,
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "turns": [turn.to_dict() for turn in self.turns],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str)

    @classmethod
    def from_dict(cls, data: Any) -> Conversation:
        """A transcript checked field by field; TranscriptError names the first bad field."""
        if not isinstance(data, dict) or data.get("format") != TRANSCRIPT_FORMAT:
            raise TranscriptError(_("This JSON is not a chatvlmllm transcript (download one with the JSON button)."))
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version > TRANSCRIPT_VERSION:
            raise TranscriptError(
                f"This transcript has version {version!r}; this app reads versions up to {TRANSCRIPT_VERSION}."
            )
        try:
            record = TranscriptRecord.model_validate(data)
        except ValidationError as exc:
            raise schema_error(exc, "This transcript does not match the format") from None
        return cls(
            id=record.id or uuid.uuid4().hex,
            title=" ".join((record.title or "").split()) or DEFAULT_TITLE,
            created_at=_iso_or_none(record.created_at) or now_iso(),
            updated_at=_not_future(_iso_or_none(record.updated_at)),
            turns=[Turn(**_turn_values(turn)) for turn in record.turns],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Conversation:
        if len(text) > MAX_TRANSCRIPT_BYTES:
            raise TranscriptError(
                f"The transcript is {len(text) / 1e6:.0f} MB; the limit is {MAX_TRANSCRIPT_BYTES / 1e6:.0f} MB."
            )
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TranscriptError(_("The transcript is not valid JSON: {error}.").format(error=exc)) from None
        except RecursionError:
            raise TranscriptError(_("The transcript is nested too deeply to be a chatvlmllm transcript.")) from None
        return cls.from_dict(data)

    def to_markdown(self, answering: bool = False) -> str:
        """The chat for a person to read, its headings and labels in the interface language (the JSON export
        is the language-neutral one): each answer's text as it is, and beside it (never inside it) which engine
        read the page, the figures and the notes (incomplete, not answered). `answering`: the last question's
        answer is still being written (it is not marked as not answered)."""
        exported = _("Exported from chatvlmllm on {date}").format(date=format_datetime(datetime.now(UTC)))
        lines = [f"# {self.title}", "", f"_{exported}_", ""]
        unanswered = self.unanswered(answering)
        for index, turn in enumerate(self.turns):
            if turn.role == "user":
                heading = _("You — {document}").format(document=turn.document_label()) if turn.document else _("You")
                lines += [f"## {heading}", "", turn.text, ""]
                if index in unanswered:
                    lines += [f"> {_(NOT_ANSWERED_NOTE)}", ""]
                continue
            heading = _("Assistant ({model})").format(model=turn.model or _("no model"))
            lines += [f"## {heading}", "", turn.text or "_{}_".format(_("(no answer)")), ""]
            if turn.error:
                lines += ["> **{}** {}".format(_("Error:"), turn.error), ""]
            if turn.read_by:
                lines += [f"_{turn.read_by}_", ""]
            if turn.metrics or turn.notes():  # the notes too when there are no figures (a crash)
                lines += [f"_{turn.caption()}_", ""]
            if turn.citations:
                lines += [_("Sources:"), *(f"- {citation_line(c)}" for c in turn.citations), ""]
            if turn.fell_back:
                lines.append(_("Attempts:"))
                lines += [
                    f"- {a.get('model')}: {outcome_words(a.get('outcome'))}"
                    + (f" ({attempt_reason(a)})" if a.get("reason") else "")
                    for a in turn.attempts
                ]
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for index, turn in enumerate(self.turns):
            m = turn.metrics
            rows.append(
                {
                    "index": index,
                    "role": turn.role,
                    "text": turn.text,
                    "model": turn.model,
                    **{k: m.get(k) for k in METRIC_COLUMNS},
                    "document": turn.document,
                    "pages": " ".join(str(p) for p in turn.pages),
                    "citations": "; ".join(citation_cell(c) for c in turn.citations),
                    "attempts": "; ".join(f"{a.get('model')}: {a.get('outcome')}" for a in turn.attempts),
                    "error": turn.error,
                    "started_at": turn.started_at,
                    "finished_at": turn.finished_at,
                }
            )
        return pd.DataFrame(rows, columns=list(CSV_COLUMNS))

    def to_csv(self) -> str:
        return self.to_dataframe().to_csv(index=False)


def citation_line(citation: Citation) -> str:
    """A Markdown source line in the interface language: "p. 27 (contract.pdf): “the quoted text”", an
    unverified one said so."""
    where = _("p. {page}").format(page=citation.page)
    if citation.document_name:
        where += f" ({citation.document_name})"
    if not citation.verified:
        why = _(UNVERIFIED_WORDS.get(citation.status, N_("not checked")))
        where = _("{where}, **unverified** ({why})").format(where=where, why=why)
    return f"{where}: “{' '.join(citation.text.split())}”"


def citation_cell(citation: Citation) -> str:
    """ "p. 27", or "p. 31 (unverified: page not sent)", for the CSV's citations column."""
    where = f"{citation.document_name} p. {citation.page}" if citation.document_name else f"p. {citation.page}"
    return where if citation.verified else f"{where} (unverified: {citation.status.value})"


# How a model's try ended, in words (marked here, translated where shown; the JSON keeps the enum's value).
OUTCOME_WORDS = {
    AttemptOutcome.ANSWERED: N_("answered"),
    AttemptOutcome.SKIPPED: N_("skipped"),
    AttemptOutcome.LOAD_FAILED: N_("failed to load"),
    AttemptOutcome.ERROR: N_("failed"),
    AttemptOutcome.OOM_RETRY: N_("out of memory, retried"),
    AttemptOutcome.EMPTY: N_("empty answer"),
    AttemptOutcome.REPETITION: N_("repeated itself"),
}


def outcome_words(outcome: Any) -> str:
    """An attempt's outcome in the interface language; a value this version does not know, as stored."""
    return _(OUTCOME_WORDS[AttemptOutcome(outcome)]) if outcome in set(AttemptOutcome) else str(outcome)


def attempt_reason(attempt: Mapping[str, Any]) -> str:
    """A stored attempt's reason in the current language: its message translated where one is stored (a
    planner's reason, missing weights), a marked reason translated, else the English as stored."""
    stored = attempt.get("reason_message")
    if isinstance(stored, Mapping):
        try:
            return I18nMessage.from_dict(stored).render()
        except (KeyError, ValueError, TypeError, IndexError):  # a transcript's stored message that does not fit
            log.warning("attempt reason message not shown: %r", stored)
    reason = attempt.get("reason")
    return _(reason) if isinstance(reason, str) and reason else ""


def unanswered_questions(turns: Sequence[Turn], answering: bool = False) -> set[int]:
    """The positions of the questions no answer follows: the app stopped (a crash, kill -9) before it
    saved anything of the answer. The last question counts only when no answer is `answering` it now."""
    positions = set()
    for index, turn in enumerate(turns):
        if turn.role != "user":
            continue
        following = turns[index + 1] if index + 1 < len(turns) else None
        if (following is None and not answering) or (following is not None and following.role == "user"):
            positions.add(index)
    return positions


def title_from(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


def _page_ranges(pages: list[int]) -> str:
    """[1, 2, 3, 5] → "1–3, 5"."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive pages
    for page in sorted(set(pages)):
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    return ", ".join(f"{first}–{last}" if first != last else str(first) for first, last in runs)
