"""What an offline OCR engine answers, by kind of request (`ocr_policy.classify`).

OCR reads text and where it is; it understands nothing. So each request gets the most an OCR can
honestly give, labelled as such:

- a transcription request → the text in reading order;
- "table → Markdown" → a Markdown table built from the line boxes' columns, where they line up;
- "key fields → JSON" → the fields a pattern can find (totals, dates, ...), labelled heuristic;
- "summarise" → plainly: summaries need a vision-language model; here is the text;
- any other question → the same plain statement, the lines that contain the question's words, then the text.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from chatvlmllm.decisions import Task
from chatvlmllm.documents.reading_order import TextBox

log = logging.getLogger(__name__)


def preface(request: Task, engine: str) -> str:
    """The sentence that opens a non-transcription answer."""
    if request is Task.TABLE:
        return (
            f"{engine} is an offline OCR engine: it does not understand tables. Below is a Markdown table built from "
            "where the text lines sit on the page (columns where the boxes line up); check it against the page.\n\n"
        )
    if request is Task.KEY_FIELDS:
        return (
            f"{engine} is an offline OCR engine: it does not understand fields. These were found by pattern matching "
            "in the OCR text (heuristic; a vision-language model reads fields properly).\n\n"
        )
    if request is Task.SUMMARY:
        return (
            f"{engine} is an offline OCR engine and cannot summarise: a summary needs a vision-language model. "
            "Here is the text it read:\n\n"
        )
    return f"{engine} is an offline OCR engine and cannot answer questions; a vision-language model is needed for Q&A. "


def compose(request: Task, engine: str, rows: Sequence[Sequence[TextBox]], text: str, question: str) -> str:
    """The whole answer for a non-transcription request (the engine has read every page first)."""
    if request is Task.TABLE:
        table = markdown_table(rows)
        body = (
            table if table else "No columns line up on this page, so there is no table to build. The text:\n\n" + text
        )
        return preface(request, engine) + body
    if request is Task.KEY_FIELDS:
        fields = key_fields(text)
        found = json.dumps(fields, indent=2, ensure_ascii=False) if fields else "{}"
        note = (
            "" if fields else "\n\nNo totals, dates, amounts, phone numbers or e-mail addresses were found by pattern."
        )
        return preface(request, engine) + f"```json\n{found}\n```" + note
    if request is Task.SUMMARY:
        return preface(request, engine) + text
    hits = lines_with_words(rows, question)
    found = (
        "Lines with your question's words:\n" + "\n".join(f"- {line}" for line in hits) + "\n\nThe whole text:\n\n"
        if hits
        else "Here is the text it read:\n\n"
    )
    return preface(request, engine) + found + text


# -- table from boxes -----------------------------------------------------------------------

# Column starts closer than this many line heights are one column.
COLUMN_TOLERANCE_HEIGHTS = 1.5
# A column must start boxes in at least this share of the multi-cell rows.
COLUMN_SUPPORT = 0.3


@dataclass(frozen=True)
class _Column:
    x0: float
    support: int


def table_columns(rows: Sequence[Sequence[TextBox]]) -> list[float]:
    """Left edges of the columns that several rows share, left to right (empty: no table)."""
    multi = [row for row in rows if len(row) > 1]
    if len(multi) < 2:
        return []
    height = statistics.median(b.height for row in multi for b in row)
    tolerance = COLUMN_TOLERANCE_HEIGHTS * height
    starts = sorted(b.x0 for row in multi for b in row)
    clusters: list[list[float]] = []
    for x in starts:
        if clusters and x - clusters[-1][-1] <= tolerance:
            clusters[-1].append(x)
        else:
            clusters.append([x])
    columns = [_Column(statistics.median(c), len(c)) for c in clusters if len(c) >= max(2, COLUMN_SUPPORT * len(multi))]
    return [c.x0 for c in columns] if len(columns) > 1 else []


def markdown_table(rows: Sequence[Sequence[TextBox]]) -> str:
    """A Markdown table of the rows, each box in the column whose left edge is nearest its own."""
    columns = table_columns(rows)
    if not columns:
        return ""
    cells_per_row = []
    for row in rows:
        cells = [""] * len(columns)
        for box in row:
            index = min(range(len(columns)), key=lambda i: abs(columns[i] - box.x0))
            cells[index] = (cells[index] + " " + box.text.strip()).strip()
        cells_per_row.append(cells)
    header, *body = cells_per_row

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(columns), *(line(cells) for cells in body)])


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
