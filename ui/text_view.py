"""How answer text is shown: transcriptions exactly as read, a model's prose as Markdown.

A transcription (offline OCR, or any model asked to extract the text) goes into a plain-text
block per page: line breaks kept, `$` and `*` left alone, a copy button and a .txt download.
A model's own words render as Markdown with dollar signs escaped (no LaTeX surprises) and
raw HTML still escaped by st.markdown's default. Tables in an answer are drawn as tables (CSV
download, Markdown to copy) and JSON once, formatted, with a copy button
(chatvlmllm.chat.answer_parts cuts the text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from chatvlmllm.chat.answer_parts import PartKind, Table, has_structure, split_answer
from chatvlmllm.chat.conversation import Turn
from chatvlmllm.decisions import StopReason, Task
from chatvlmllm.i18n import N_, _, format_number
from chatvlmllm.models.tasks import classify, is_extract_all_text

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

# The offline engines separate pages with this line (chatvlmllm.engines.classic_ocr).
PAGE_MARKER = re.compile(r"^--- page (\d+) ---$", re.MULTILINE)
STOP_REASONS: dict[str, str] = {
    StopReason.EOS: N_("finished"),
    StopReason.MAX_TOKENS: N_("reached the length limit"),
    StopReason.REPETITION: N_("ended a repeating loop"),
    StopReason.CANCELLED: N_("stopped by you"),
    StopReason.ERROR: N_("failed"),
}
LINE_COLOUR = (0, 120, 255)
HIGHLIGHT_COLOUR = (255, 80, 0)

PageLookup = Callable[[int], "Image.Image | None"]


class TextStyle(StrEnum):
    VERBATIM = "verbatim"  # a transcription: every character and line break as read
    PROSE = "prose"  # a model's own words: Markdown


@dataclass(frozen=True)
class PageText:
    page: int | None  # the document's page number; None when the answer does not say
    text: str


# Requests whose answer is a table or JSON: drawn as such, not as the text of a page.
STRUCTURED_TASKS = frozenset({Task.TABLE, Task.KEY_FIELDS})


def style_of(answer: Turn, question: Turn | None) -> TextStyle:
    """Verbatim for OCR engines' output and for answers to "Extract all text"; prose (tables drawn as
    tables, JSON as JSON) for answers to a table or key-fields request."""
    if _structured(answer, question):
        return TextStyle.PROSE
    if "lines" in answer.extras or answer.extras.get("qa_supported") is False:
        return TextStyle.VERBATIM
    if question is not None and is_extract_all_text(question.text):
        return TextStyle.VERBATIM
    return TextStyle.PROSE


def _structured(answer: Turn, question: Turn | None) -> bool:
    """The offline engines name the request they answered (and write those answers as Markdown); another
    engine's answer to a table or key-fields question counts when it holds a table or JSON."""
    request = answer.extras.get("request")
    if isinstance(request, str) and request:
        return request in STRUCTURED_TASKS
    return question is not None and classify(question.text) in STRUCTURED_TASKS and has_structure(answer.text)


def escape_math(text: str) -> str:
    """Markdown without LaTeX: `$50.86 … $650` stays two amounts, not a formula."""
    return text.replace("$", "\\$")


def split_pages(text: str, asked: list[int]) -> tuple[str, list[PageText]]:
    """(text before the first page, one PageText per page section) of an answer."""
    parts = PAGE_MARKER.split(text)
    if len(parts) == 1:
        page = asked[0] if len(asked) == 1 else None
        return "", [PageText(page, text.strip("\n"))]
    sections = [PageText(int(parts[i]), parts[i + 1].strip("\n")) for i in range(1, len(parts), 2)]
    return parts[0].strip(), sections


def missing_pages(asked: list[int], sections: list[PageText]) -> list[int]:
    found = {section.page for section in sections}
    if len(asked) < 2 or None in found:
        return []
    return [page for page in asked if page not in found]


def render_prose(text: str, key: str | None = None) -> None:
    """Markdown, with its tables drawn as tables and its JSON formatted once; `key` names the widgets
    (CSV download, none without a key: a live answer is redrawn many times a second)."""
    for index, part in enumerate(split_answer(text)):
        if part.kind is PartKind.TABLE and part.table is not None:
            render_table(part.table, f"{key}_table_{index}" if key else None)
        elif part.kind is PartKind.JSON:
            st.code(part.pretty_json(), language="json")
        elif part.kind is PartKind.CODE:
            st.code(part.text, language=part.language, wrap_lines=True)
            if part.problem:
                error = part.problem.removeprefix("not valid JSON: ")  # the only problem: the parser's words stay
                st.caption(":material/warning: " + _("This block is not valid JSON ({error}).").format(error=error))
        else:
            st.markdown(escape_math(part.text))


def render_table(table: Table, key: str | None) -> None:
    """A real table (cells as text, never markup), then its CSV and its Markdown to copy."""
    st.table(pd.DataFrame(list(table.rows), columns=table.column_names()), hide_index=True)
    if key is None:
        return
    with st.container(horizontal=True, key=key):
        st.download_button(
            _("Download CSV"),
            table.to_csv(),
            file_name="table.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
            key=f"{key}_csv",
        )
        with st.popover(_("Copy as Markdown"), icon=":material/content_copy:"):
            st.code(table.markdown, language="markdown")


def render_verbatim(
    answer: Turn, asked: list[int], key: str, page_image: PageLookup, document: str | None = None
) -> None:
    """One block per page, labelled with its page number, with copy, .txt download and line boxes."""
    preamble, sections = split_pages(answer.text, asked)
    if preamble:
        render_prose(preamble)
    stem = (document or "text").rsplit(".", 1)[0]
    lines = [line for line in answer.extras.get("lines") or [] if isinstance(line, Mapping)]
    for section in sections:
        with st.container(key=f"{key}_page_{section.page or 0}"):
            if section.page is not None:
                st.markdown("**{}**".format(_("Page {page}").format(page=section.page)))
            st.code(section.text or _("(no text found)"), language=None, wrap_lines=True)
            name = f"{stem}-page-{section.page}.txt" if section.page else f"{stem}.txt"
            page_lines = _lines_of(lines, section.page, single=len(sections) == 1)
            with st.container(horizontal=True):
                st.download_button(
                    _("Download .txt"),
                    section.text,
                    file_name=name,
                    mime="text/plain",
                    on_click="ignore",
                    icon=":material/download:",
                    key=f"{key}_txt_{section.page or 0}",
                )
                show = bool(page_lines) and st.toggle(
                    _("Show the lines on the page"), key=f"{key}_boxes_{section.page or 0}"
                )
            if show and section.page is not None:
                _draw_lines(page_lines, page_image(section.page), f"{key}_pick_{section.page}")
    missing = missing_pages(asked, sections)
    if missing:
        listed = ", ".join(str(page) for page in missing)
        if answer.stopped_by == StopReason.CANCELLED:
            st.warning(_("Stopped before page {pages}: not read.").format(pages=listed))
        else:
            st.warning(_("Page {pages} is not in the answer: the engine returned nothing for it.").format(pages=listed))


def render_live_verbatim(text: str) -> None:
    """A transcription still being read: the pages so far, labelled (no widgets: it is redrawn often)."""
    preamble, sections = split_pages(text, [])
    if preamble:
        render_prose(preamble)
    for section in sections:
        if section.page is not None:
            st.markdown("**{}**".format(_("Page {page}").format(page=section.page)))
        st.code(section.text, language=None, wrap_lines=True)


def _lines_of(lines: list[Mapping[str, Any]], page: int | None, single: bool) -> list[Mapping[str, Any]]:
    """The OCR lines of one page (boxes saved by the engine); an answer about one page owns them all."""
    boxed = [line for line in lines if _box(line) is not None]
    return boxed if single else [line for line in boxed if line.get("page") == page]


def _box(line: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    box = line.get("box")
    if not isinstance(box, list | tuple) or len(box) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _draw_lines(lines: list[Mapping[str, Any]], image: Image.Image | None, key: str) -> None:
    if image is None:
        st.caption(_("The page is not available here (upload the document again to see the boxes)."))
        return
    labels = [str(line.get("text", ""))[:80] for line in lines]
    picked = st.selectbox(
        _("Highlight a line"),
        range(len(lines)),
        index=None,
        format_func=lambda i: f"{i + 1}. {labels[i]}",
        placeholder=_("Pick a line to see where it was read"),
        key=key,
    )
    with st.container(key=f"line_boxes_{key}"):  # room above for the image's full-screen button (ui.style)
        st.image(draw_boxes(image, [_box(line) for line in lines], picked), width="stretch")


def draw_boxes(
    image: Image.Image, boxes: list[tuple[float, float, float, float] | None], highlight: int | None = None
) -> Image.Image:
    """The page with a translucent box over every line read; the highlighted one filled."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    base = image.convert("RGBA")
    overlay = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = max(1, round(min(base.size) / 400))
    for index, box in enumerate(boxes):
        if box is None:
            continue
        colour = HIGHLIGHT_COLOUR if index == highlight else LINE_COLOUR
        fill = (*colour, 90) if index == highlight else (*colour, 25)
        draw.rectangle(box, outline=(*colour, 230), fill=fill, width=width)
    return PILImage.alpha_composite(base, overlay).convert("RGB")


# -- captions in words -------------------------------------------------------
def number(value: object) -> float | None:
    """A metric as a number; anything else (a hand-edited transcript) as None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def caption(turn: Turn, details: bool) -> str:
    """ "model · 7.7 s · reached the length limit · <notes>": the time is the user's wait (question to answer,
    a failed load and a fallback included), not the engine's; with details, the figures developers compare."""
    metrics = turn.metrics if isinstance(turn.metrics, Mapping) else {}
    parts = [str(turn.model or metrics.get("model") or "")]
    total = number(metrics.get("total_s"))
    waited = turn.waited_s()
    if waited is not None or total is not None:
        parts.append(_("{seconds} s").format(seconds=format_number(waited if waited is not None else total or 0.0, 1)))
    stopped_by = metrics.get("stopped_by")
    if isinstance(stopped_by, str) and stopped_by != StopReason.EOS:
        parts.append(_(STOP_REASONS.get(stopped_by, stopped_by)))
    parts.extend(turn.notes())  # incomplete (the app stopped), turns left out of the prompt
    if details:
        parts.extend(_details(metrics, engine_s=total if waited is not None else None))
    return " · ".join(part for part in parts if part)


def _details(metrics: Mapping[str, Any], engine_s: float | None = None) -> list[str]:
    out = []
    if engine_s is not None:
        out.append(_("the engine's own time {seconds} s").format(seconds=format_number(engine_s, 2)))
    ttft, speed, load = (number(metrics.get(k)) for k in ("ttft_s", "tokens_per_s", "load_s"))
    if ttft is not None:
        out.append(_("time to first word {seconds} s").format(seconds=format_number(ttft, 2)))
    if speed:
        out.append(_("{speed} tokens/s").format(speed=format_number(speed, 1)))
    attention = metrics.get("attention")
    if isinstance(attention, str) and attention != "n/a":
        out.append(_("attention {attention}").format(attention=attention))
    if load:
        out.append(_("model loaded in {seconds} s").format(seconds=format_number(load, 1)))
    return out
