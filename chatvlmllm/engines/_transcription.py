"""Shared by the OCR-specialist adapters (GOT-OCR, dots.ocr, a served dots.ocr): the transcription
budget, and the one-line note shown before a transcription when the user asked for something else."""

from __future__ import annotations

from collections.abc import Generator

from chatvlmllm.engines.base import GenerationSettings, GenerationStats


def transcription_note(model_name: str, question: str) -> str:
    shown = question.strip().replace("\n", " ")
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return (
        f"*{model_name} only transcribes documents; it cannot answer “{shown}”. "
        "Here is the text of the page; choose a chat model (e.g. Qwen2-VL) to ask questions about it.*\n\n"
    )


def transcription_budget(settings: GenerationSettings, explicit: int | None, default: int) -> int:
    """max_new_tokens for a transcription: the `max_new_tokens` option (typed: a positive whole number)
    when set, else the user's setting, else `default`."""
    return explicit if explicit is not None else settings.budget(default)


def with_note_before_text(
    chunks: Generator[str, None, GenerationStats], note: str
) -> Generator[str, None, GenerationStats]:
    """Yield `note` just before the first non-blank chunk; no text, no note (an empty answer stays empty).

    Records in the stats' extras whether the note was shown.
    """
    pending = ""
    shown = False
    try:
        while True:
            chunk = next(chunks)
            if shown or not note:
                yield chunk
                continue
            pending += chunk
            if pending.strip():
                shown = True
                yield note + pending
    except StopIteration as stop:
        stats = stop.value or GenerationStats()
        stats.extras["transcription_only_note"] = shown
        return stats
    finally:
        chunks.close()
