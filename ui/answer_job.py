"""An answer generated on a worker thread, followed by the page while it is made.

The run that asks starts the job; every run while it goes on follows it, redrawing the
progress and the text a few times a second. A click (Stop, a sidebar setting) interrupts
that run at its next redraw and the next run follows the same job again, so Stop acts at
once, the sidebar stays usable, and no answer is lost when Streamlit stops a run. The chat
input stays disabled until the job has saved its answer: one answer at a time per chat, and
the history keeps strict You/Assistant order.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

import streamlit as st

from chatvlmllm.chat.conversation import Turn
from chatvlmllm.chat.session import PendingAnswer
from chatvlmllm.engines import AnswerStream, Progress

log = logging.getLogger(__name__)

REDRAW_S = 0.1  # how often the page looks at the job (it redraws only on a change)
# After Stop, how long the engine gets to end on its own (real metrics) before the answer is
# recorded as stopped without it (an OCR page can take seconds; the page should not wait).
STOP_GRACE_S = 0.5


class Phase(StrEnum):
    STARTING = "starting"
    LOADING = "loading"
    ANSWERING = "answering"
    RETRYING = "retrying"  # the answer was not usable; the next model is being tried
    DONE = "done"


@dataclass
class AnswerJob:
    """One answer on its way; `turn` is set (and saved) when it is done."""

    pending: PendingAnswer
    chat_id: str
    started: float = field(default_factory=time.perf_counter)
    phase: Phase = Phase.STARTING
    stream: AnswerStream | None = None
    stream_started: float = 0.0
    text: str = ""
    stop_requested: bool = False
    stop_requested_at: float = 0.0
    abandoned: bool = False  # recorded as stopped while the engine was still finishing its step
    turn: Turn | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE or self.abandoned

    @property
    def progress(self) -> Progress | None:
        return self.stream.progress if self.stream is not None else None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def start(self) -> None:
        self.phase = Phase.STARTING if self.pending.first_model_loaded() else Phase.LOADING
        self._thread = threading.Thread(target=self._run, name=f"answer-{self.chat_id[:8]}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the engine to stop (it ends at its next token, page or batch); safe from any thread."""
        if not self.stop_requested:
            self.stop_requested, self.stop_requested_at = True, time.perf_counter()
        self.pending.cancel()

    def settle_stop(self) -> None:
        """Once the grace is over, record the stopped answer without waiting for the engine."""
        if self.stop_requested and not self.done and time.perf_counter() - self.stop_requested_at > STOP_GRACE_S:
            turn = self.pending.abandon()
            if turn is not None:
                self.turn, self.abandoned = turn, True
                log.info(
                    "answer in chat %s recorded as stopped; the engine ends its step in the background", self.chat_id
                )

    def wait(self, timeout_s: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.done

    def _run(self) -> None:
        error = None
        try:
            for stream in self.pending:
                self.stream, self.text, self.phase = stream, "", Phase.ANSWERING
                self.stream_started = time.perf_counter()
                for chunk in self.pending.chunks(stream):
                    self.text += chunk
                self.phase = Phase.RETRYING  # until the router says whether another model follows
        except Exception as exc:  # an engine failing outside the router: keep the app and the history
            log.exception("answer failed")
            error = f"The answer failed: {type(exc).__name__}: {exc}"
        finally:
            try:
                self.turn = self.pending.finish(error)
            finally:
                self.phase = Phase.DONE


@st.cache_resource(show_spinner=False)
def _registry() -> dict[str, AnswerJob]:
    """Jobs by chat id, shared by every browser session: two tabs on one chat see one answer."""
    return {}


def running(chat_id: str) -> AnswerJob | None:
    """The job still answering in this chat, if any."""
    job = _registry().get(chat_id)
    return job if job is not None and not job.done else None


def start(pending: PendingAnswer, chat_id: str) -> AnswerJob:
    job = AnswerJob(pending, chat_id)
    _registry()[chat_id] = job
    job.start()
    return job


def status_line(job: AnswerJob, now: float | None = None) -> str:
    """What the user waits for, in words: "Reading page 2 of 3… 14 s, about 20 s left"."""
    now = time.perf_counter() if now is None else now
    elapsed = f"{now - job.started:.0f} s"
    if job.stop_requested:
        return f"Stopping… the engine ends at its next step ({elapsed})"
    model = job.pending.spec.key
    if job.phase is Phase.LOADING:
        return f"Loading {model}… first use only ({elapsed})"
    if job.phase is Phase.STARTING:
        return f"Starting {model}… ({elapsed})"
    if job.phase is Phase.RETRYING:
        return f"That answer was not usable; trying the next model… ({elapsed})"
    progress = job.progress
    if progress is None or progress.total < 2:
        return f"{model} is answering… ({elapsed})"
    line = f"Reading {progress.unit} {progress.done + 1} of {progress.total}… ({elapsed}"
    if progress.done > 0 and job.stream is not None:
        per_step = (progress.at - job.stream_started) / progress.done
        left = max(0.0, per_step * (progress.total - progress.done) - (now - progress.at))
        line += f", about {left:.0f} s left"
    return line + ")"


def fraction(job: AnswerJob) -> float | None:
    progress = job.progress
    if progress is None or progress.total < 1:
        return None
    return min(1.0, progress.done / progress.total)
