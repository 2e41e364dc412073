"""The typed decisions the core hands around: a model's readiness, an attempt's outcome, why a
generation stopped, a family's backend, the planner's reasons, what a request asks for (`Task`) and
the scripts a model reads (`Script`).

Each enum is a `StrEnum`: a member equals (and formats, and JSON-encodes as) its string value,
so transcripts, the database, `doctor --json` and the CLI's output read the same as when these
were plain strings, and stored transcripts load unchanged. This module imports nothing of
chatvlmllm, so every layer (engines, planner, conversation, UI) can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the type: this module imports nothing of chatvlmllm at run time
    from chatvlmllm.i18n import Message


class Readiness(StrEnum):
    """Whether a model can answer on this machine now, as the picker and `doctor` show it."""

    READY = "ready"
    NEEDS_DOWNLOAD = "needs download"
    WONT_FIT = "won't fit"
    INCOMPATIBLE = "incompatible"
    UNAVAILABLE = "unavailable"  # weights missing with no way to fetch them

    @property
    def usable(self) -> bool:
        """Ready, or ready once its weights are downloaded."""
        return self in (Readiness.READY, Readiness.NEEDS_DOWNLOAD)


class AttemptOutcome(StrEnum):
    """How one model's try in the fallback chain ended."""

    ANSWERED = "answered"
    SKIPPED = "skipped"  # the planner says it cannot run here
    LOAD_FAILED = "load_failed"
    ERROR = "error"
    OOM_RETRY = "oom_retry"  # out of memory; retried with half the pixel budget
    EMPTY = "empty"
    REPETITION = "repetition"


class StopReason(StrEnum):
    """Why a generation stopped."""

    EOS = "eos"
    MAX_TOKENS = "max_tokens"
    REPETITION = "repetition"  # the repetition guard fired
    CANCELLED = "cancelled"
    ERROR = "error"


class Backend(StrEnum):
    """What runs a family's models."""

    TRANSFORMERS = "transformers"
    CLASSIC = "classic"  # CPU OCR (onnxruntime / tesseract)
    OPENAI = "openai"  # a remote OpenAI-compatible server


class ReasonKind(StrEnum):
    """What a planner reason says: a choice explained, or something that stands in the way."""

    INFO = "info"  # a choice the planner made, and why
    REFUSED = "refused"  # an override the user asked for that cannot apply
    NO_FIT = "no_fit"  # not enough memory
    NEEDS = "needs"  # a missing package the plan depends on
    CANNOT = "cannot"  # the family cannot run here (a missing binary, no usable attention)


@dataclass(frozen=True)
class Reason:
    """One line of a load plan's explanation. `text` is its English (what JSON and stored attempts
    keep); `str(reason)` reads in the current interface language."""

    kind: ReasonKind
    message: str | Message  # a Message is translated where it is shown (plans are cached across sessions)

    @classmethod
    def info(cls, message: str | Message) -> Reason:
        """A choice the planner made, and why."""
        return cls(ReasonKind.INFO, message)

    @property
    def is_problem(self) -> bool:
        return self.kind is not ReasonKind.INFO

    @property
    def text(self) -> str:
        return self.message if isinstance(self.message, str) else self.message.english

    def __str__(self) -> str:
        return str(self.message)


class Task(StrEnum):
    """What a request asks of a model (`models.tasks.classify`); adapters word a prompt per task, the
    chooser ranks per task."""

    TRANSCRIBE = "transcribe"  # the page's text (plain or Markdown)
    TABLE = "table"
    FORMULA = "formula"
    CHART = "chart"
    LAYOUT = "layout"  # text with boxes
    KEY_FIELDS = "key_fields"  # named values (dates, totals) as JSON
    SUMMARY = "summary"
    QUESTION = "question"  # questions and chat about the document


class Script(StrEnum):
    """Writing systems a model reads well enough to be chosen for them."""

    LATIN = "latin"
    CYRILLIC = "cyrillic"
    CJK = "cjk"
