"""What an offline OCR engine answers, by kind of request (`ocr_policy.classify`).

OCR reads text and where it is; it understands nothing. So each request gets the most an OCR can
honestly give, labelled as such:

- a transcription request → the text in reading order;
- "table → Markdown" → a Markdown table per page laid out as one (chatvlmllm.documents.box_table), else
  a plain "no table found";
- "key fields → JSON" → the fields a pattern can find (totals, dates, ...), labelled heuristic;
- "summarise" → plainly: summaries need a vision-language model; here is the text;
- any other question → the same plain statement, the lines that contain the question's words, then the text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from chatvlmllm.decisions import Task
from chatvlmllm.documents.box_table import BoxTable, read_table
from chatvlmllm.documents.reading_order import TextBox
from chatvlmllm.i18n import _

log = logging.getLogger(__name__)


Page = tuple[int, Sequence[Sequence[TextBox]]]  # (page number, its rows in reading order)


def preface(request: Task, engine: str) -> str:
    """The sentence that opens a non-transcription answer, in the language of the session asking (the answer
    is stored in the language it was written in)."""
    if request is Task.TABLE:
        text = _(
            "{engine} is an offline OCR engine: it does not understand tables. A table is built only where most "
            "of a page's text lines line up in columns; check it against the page."
        )
    elif request is Task.KEY_FIELDS:
        text = _(
            "{engine} is an offline OCR engine: it does not understand fields. These were found by pattern matching "
            "in the OCR text (heuristic; a vision-language model reads fields properly)."
        )
    elif request is Task.SUMMARY:
        text = _(
            "{engine} is an offline OCR engine and cannot summarise: a summary needs a vision-language model. "
            "Here is the text it read:"
        )
    else:
        return (
            _(
                "{engine} is an offline OCR engine and cannot answer questions; a vision-language model is needed "
                "for Q&A."
            ).format(engine=engine)
            + " "
        )
    return text.format(engine=engine) + "\n\n"


def compose(request: Task, engine: str, pages: Sequence[Page], text: str, question: str) -> str:
    """The whole answer for a non-transcription request (the engine has read every page first)."""
    if request is Task.TABLE:
        return preface(request, engine) + tables_answer(pages)
    if request is Task.KEY_FIELDS:
        fields = key_fields(text)
        found = json.dumps(fields, indent=2, ensure_ascii=False) if fields else "{}"
        note = (
            ""
            if fields
            else "\n\n" + _("No totals, dates, amounts, phone numbers or e-mail addresses were found by pattern.")
        )
        return preface(request, engine) + f"```json\n{found}\n```" + note
    if request is Task.SUMMARY:
        return preface(request, engine) + text
    hits = lines_with_words([row for _page, rows in pages for row in rows], question)
    found = (
        _("Lines with your question's words:")
        + "\n"
        + "\n".join(f"- {line}" for line in hits)
        + "\n\n"
        + _("The whole text:")
        + "\n\n"
        if hits
        else _("Here is the text it read:") + "\n\n"
    )
    return preface(request, engine) + found + text


# -- tables from boxes ----------------------------------------------------------------------


def tables_answer(pages: Sequence[Page]) -> str:
    """One Markdown table per page that is laid out as one; the others say plainly that they are not."""
    tables = [(number, read_table(rows)) for number, rows in pages]
    if len(tables) == 1:
        return _page_table(tables[0][1])
    return "\n\n".join(
        "**{}**\n\n{}".format(_("Page {number}").format(number=number), _page_table(table)) for number, table in tables
    )


def _page_table(table: BoxTable) -> str:
    if table.found:
        return table.markdown()
    return _("No table found: {why}. Use {button} for its text.").format(why=table.why_not(), button=_("Extract text"))


# -- key fields by pattern ------------------------------------------------------------------

_AMOUNT = r"(?:RM|USD|EUR|\$|€|£|₽)?\s?-?\d{1,3}(?:[ ,]\d{3})*(?:[.,]\d{2})"
_FIELD_PATTERNS: dict[str, re.Pattern[str]] = {
    "total": re.compile(rf"\b(?:grand\s+)?total\b[^\n\d]{{0,30}}?({_AMOUNT})", re.IGNORECASE),
    "date": re.compile(
        r"\b(\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
        r"[a-z]*\.?\s+\d{2,4})\b",
        re.IGNORECASE,
    ),
    "time": re.compile(r"\b(\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AP]M)?)\b", re.IGNORECASE),
    "tax": re.compile(
        rf"\b(?:gst|vat|tax|sst)\b[^\n\d]{{0,30}}?(?:\d{{1,2}}(?:[.,]\d+)?\s?%[^\n\d]{{0,10}})?({_AMOUNT})",
        re.IGNORECASE,
    ),
    "phone": re.compile(r"\b(?:tel|phone|ph)\b\.?:?\s*([+\d][\d ()-]{6,}\d)", re.IGNORECASE),
    "email": re.compile(r"\b([\w.+-]+@[\w-]+\.[\w.-]+)\b"),
}


def key_fields(text: str) -> dict[str, str]:
    """The first match of each pattern (a total, a date, ...): heuristics, not understanding."""
    found = {}
    for name, pattern in _FIELD_PATTERNS.items():
        match = pattern.search(text)
        if match:
            found[name] = match.group(1).strip()
    amounts = re.findall(_AMOUNT, text)
    if "total" not in found and amounts:
        # No "total" label read: the largest amount is a guess, named as such.
        found["largest_amount (guess for the total)"] = max(amounts, key=_amount_value).strip()
    return found


def _amount_value(amount: str) -> float:
    digits = re.sub(r"[^\d.,-]", "", amount).replace(" ", "")
    digits = digits.replace(",", "") if re.search(r"[.]\d{2}$", digits) else digits.replace(".", "").replace(",", ".")
    try:
        return float(digits)
    except ValueError:
        return 0.0


def lines_with_words(rows: Sequence[Sequence[TextBox]], question: str, limit: int = 5) -> list[str]:
    """Lines containing a word of the question (3+ letters, not a stop word): where the answer may be."""
    words = {w for w in re.findall(r"\w{3,}", question.casefold()) if w not in _STOP_WORDS}
    if not words:
        return []
    hits = []
    for row in rows:
        line = " ".join(b.text.strip() for b in row)
        if words & set(re.findall(r"\w{3,}", line.casefold())):
            hits.append(line)
    return hits[:limit]


_STOP_WORDS = frozenset(
    {
        "the",
        "what",
        "which",
        "who",
        "whom",
        "where",
        "when",
        "why",
        "how",
        "this",
        "that",
        "these",
        "those",
        "and",
        "for",
        "with",
        "from",
        "are",
        "was",
        "were",
        "is",
        "does",
        "did",
        "document",
        "page",
        "there",
        "their",
        "about",
        "into",
    }
)
