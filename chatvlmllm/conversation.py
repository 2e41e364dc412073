"""A conversation about documents: turns with their metadata, exports, and engine messages.

A turn keeps everything needed to understand an answer later: which model answered, with
which attention and timings, the fallback attempts, and the document page(s) the question
was about. Transcripts export to Markdown (to read), JSON (versioned, re-importable) and
CSV (one row per turn).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatvlmllm.engines.base import AnswerMetrics, Message
from chatvlmllm.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

TRANSCRIPT_FORMAT = "chatvlmllm.transcript"
TRANSCRIPT_VERSION = 1
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48

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
    "attempts",
    "error",
    "started_at",
    "finished_at",
)

# Looks up a page image: (document sha256, 1-based page) → image, or None when the document is gone.
PageLookup = Callable[[str, int], "Image.Image | None"]


# What each field of a stored turn must be, so a hand-edited transcript cannot poison a saved chat.
_TURN_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "model": (str, type(None)),
    "attempts": (list,),
    "metrics": (dict,),
    "document": (str, type(None)),
    "document_sha256": (str, type(None)),
    "pages": (list,),
    "started_at": (str,),
    "finished_at": (str, type(None)),
    "error": (str, type(None)),
    "settings": (dict,),
    "extras": (dict,),
}


def _check_turn_types(values: dict[str, Any]) -> None:
    if "text" not in values:
        raise UserError("A transcript turn has no text.")
    for name, value in values.items():
        expected = _TURN_TYPES.get(name)
        if expected and not isinstance(value, expected):
            raise UserError(f"A transcript turn's {name!r} has the wrong type ({type(value).__name__}).")
    if not all(isinstance(a, dict) for a in values.get("attempts", [])):
        raise UserError("A transcript turn's attempts must be objects.")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in values.get("pages", [])):
        raise UserError("A transcript turn's pages must be whole numbers.")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        if not isinstance(data, dict) or data.get("role") not in ("user", "assistant", "system"):
            raise UserError("A transcript turn needs a role of user, assistant or system.")
        known = {f.name for f in fields(cls)}
        # Unknown keys (a newer writer) are dropped rather than refused: the text still reads.
        values = {k: v for k, v in data.items() if k in known}
        _check_turn_types(values)
        return cls(**values)

    @property
    def stopped_by(self) -> str | None:
        return self.metrics.get("stopped_by")

    @property
    def fell_back(self) -> bool:
        return any(a.get("outcome") != "answered" for a in self.attempts)

    def caption(self) -> str:
        """model · attention · time · tokens/s (AnswerMetrics.caption) for assistant turns."""
        if not self.metrics:
            return self.model or ""
        try:
            return AnswerMetrics(**self.metrics).caption()
        except TypeError:  # metrics written by another version: show what is there
            parts = [str(self.metrics.get(k)) for k in ("model", "attention", "total_s") if self.metrics.get(k)]
            return " · ".join(parts)

    def document_label(self) -> str:
        if not self.document:
            return ""
        if not self.pages:
            return self.document
        word = "page" if len(self.pages) == 1 else "pages"
        return f"{self.document}, {word} {_page_ranges(self.pages)}"


@dataclass
class Conversation:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    title: str = DEFAULT_TITLE
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    turns: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> Turn:
        if self.title == DEFAULT_TITLE and turn.role == "user" and turn.text.strip():
            self.title = title_from(turn.text)
        self.turns.append(turn)
        self.updated_at = now_iso()
        return turn

    @property
    def last_answer(self) -> Turn | None:
        return next((t for t in reversed(self.turns) if t.role == "assistant"), None)

    # -- engine messages -------------------------------------------------
    def engine_messages(self, page_image: PageLookup | None = None) -> list[Message]:
        """The whole conversation as engine messages, so earlier turns reach the model.

        Each document page is attached once, to the user turn that first asked about it:
        repeating it on every turn would multiply the image tokens. Assistant turns that
        produced no text (failures) are left out.
        """
        messages: list[Message] = []
        sent: set[tuple[str, int]] = set()
        for turn in self.turns:
            if turn.role == "assistant":
                if turn.text.strip():
                    messages.append(Message("assistant", turn.text))
                continue
            images = []
            if turn.document_sha256 and page_image is not None:
                for page in turn.pages:
                    if (turn.document_sha256, page) in sent:
                        continue
                    image = page_image(turn.document_sha256, page)
                    if image is not None:
                        sent.add((turn.document_sha256, page))
                        images.append(image)
            messages.append(Message(turn.role, turn.text, images))
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
        if not isinstance(data, dict) or data.get("format") != TRANSCRIPT_FORMAT:
            raise UserError("This JSON is not a chatvlmllm transcript (download one with the JSON button).")
        version = data.get("version")
        if not isinstance(version, int) or version > TRANSCRIPT_VERSION:
            raise UserError(
                f"This transcript has version {version!r}; this app reads versions up to {TRANSCRIPT_VERSION}."
            )
        turns = data.get("turns")
        if not isinstance(turns, list):
            raise UserError("This transcript has no list of turns.")
        return cls(
            id=str(data.get("id") or uuid.uuid4().hex),
            title=str(data.get("title") or DEFAULT_TITLE),
            created_at=str(data.get("created_at") or now_iso()),
            updated_at=str(data.get("updated_at") or now_iso()),
            turns=[Turn.from_dict(t) for t in turns],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Conversation:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"The transcript is not valid JSON: {exc}.") from None
        return cls.from_dict(data)

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", f"_Exported from chatvlmllm on {now_iso()}_", ""]
        for turn in self.turns:
            if turn.role == "user":
                where = f" — {turn.document_label()}" if turn.document else ""
                lines += [f"## You{where}", "", turn.text, ""]
                continue
            lines += [f"## Assistant ({turn.model or 'no model'})", "", turn.text or "_(no answer)_", ""]
            if turn.error:
                lines += [f"> **Error:** {turn.error}", ""]
            if turn.metrics:
                lines += [f"_{turn.caption()}_", ""]
            if turn.fell_back:
                lines.append("Attempts:")
                lines += [
                    f"- {a.get('model')}: {a.get('outcome')} {a.get('reason') or ''}".rstrip() for a in turn.attempts
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
                    "attempts": "; ".join(f"{a.get('model')}: {a.get('outcome')}" for a in turn.attempts),
                    "error": turn.error,
                    "started_at": turn.started_at,
                    "finished_at": turn.finished_at,
                }
            )
        return pd.DataFrame(rows, columns=list(CSV_COLUMNS))

    def to_csv(self) -> str:
        return self.to_dataframe().to_csv(index=False)


def title_from(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


def _page_ranges(pages: list[int]) -> str:
    """[1, 2, 3, 5] → "1–3, 5"."""
    ranges: list[str] = []
    start = prev = None
    for page in sorted(set(pages)):
        if start is None:
            start = prev = page
        elif page == prev + 1:
            prev = page
        else:
            ranges.append(f"{start}–{prev}" if start != prev else str(start))
            start = prev = page
    if start is not None:
        ranges.append(f"{start}–{prev}" if start != prev else str(start))
    return ", ".join(ranges)
