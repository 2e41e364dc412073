"""Answers over whole documents with citations a person can check: the offline extractive answer, and the
checker for a model's citations.

- `Citation`: a page, the supporting text, its box(es) on the page image, and whether it was verified.
- `extractive_answer(question, index, documents)`: the honest offline answer: the best-matching passages,
  ranked, each with its page. No sentence is made up; the answer says it is extractive, and says so when the
  documents are still being read.
- `parse_citations(text)` + `check_citations(...)`: a model asked to cite pages writes "[p. 27]" (or "(p. 27)",
  "[стр. 27]"), optionally after a quote. A cited page must be one that was sent; the quote (or, without one,
  the sentence before the marker) must fuzzy-match that page's text. A citation that fails is kept and marked
  (`CitationStatus`), never shown as fact.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chatvlmllm.documents.index import DocumentIndex, Passage, ReadStatus, union
from chatvlmllm.documents.search import LineMatch
from chatvlmllm.documents.text_layer import Box, TextLine
from chatvlmllm.i18n import N_, _, ngettext

log = logging.getLogger(__name__)

ANSWER_PASSAGES = 5
MIN_QUOTE_SIMILARITY = 80.0  # rapidfuzz partial_ratio (0-100) of a quote against a page line window
MIN_QUOTE_CHARS = 12  # shorter quotes are matched exactly only
SUPPORT_LINES = 3  # a quote may span up to this many consecutive lines


class CitationStatus(StrEnum):
    VERIFIED = "verified"  # the text is on that page (retrieved there, or a quote that matches it)
    PAGE_NOT_SENT = "page not sent"  # the model cites a page it was not given
    NOT_ON_PAGE = "not found on the page"  # the quoted text does not match the cited page
    NO_TEXT = "page text unknown"  # the cited page has not been read yet


# Why a citation is not verified, in words for a reader (marked here, translated where shown).
UNVERIFIED_WORDS = {
    CitationStatus.PAGE_NOT_SENT: N_("page not sent"),
    CitationStatus.NOT_ON_PAGE: N_("not found on the page"),
    CitationStatus.NO_TEXT: N_("page text unknown"),
}


@dataclass(frozen=True)
class Citation:
    page: int
    text: str
    boxes: list[Box]
    status: CitationStatus = CitationStatus.VERIFIED
    document: str | None = None  # sha256
    document_name: str | None = None
    similarity: float | None = None  # 0-100 for a checked quote

    @property
    def box(self) -> Box | None:
        return union(self.boxes) if self.boxes else None

    @property
    def verified(self) -> bool:
        return self.status is CitationStatus.VERIFIED

    def label(self) -> str:
        """ "p. 27": the chip's text."""
        return f"p. {self.page}"

    def matches(self) -> list[LineMatch]:
        """The supporting lines as `search.LineMatch`es, so `search.highlight(page_image, citation.matches(),
        page=citation.page)` draws them on the page (an unverified citation has no boxes: nothing is drawn)."""
        return [LineMatch(self.page, self.text, box, 100.0 if self.verified else 0.0) for box in self.boxes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "text": self.text,
            "box": list(self.box) if self.box else None,
            "boxes": [list(box) for box in self.boxes],
            "status": self.status.value,
            "verified": self.verified,
            "document": self.document,
            "document_name": self.document_name,
            "similarity": self.similarity,
        }


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    citations: list[Citation]
    coverage: list[ReadStatus] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(status.complete for status in self.coverage)


def passage_citation(passage: Passage, names: Mapping[str, str] | None = None) -> Citation:
    return Citation(
        passage.page,
        passage.text,
        list(passage.boxes),
        CitationStatus.VERIFIED,
        passage.document,
        (names or {}).get(passage.document),
    )


def extractive_answer(
    question: str, index: DocumentIndex, documents: Sequence[str], limit: int = ANSWER_PASSAGES
) -> ExtractiveAnswer:
    """The best-matching passages of `documents` (sha256s), each with its page, as an answer that says what it is."""
    coverage = [status for document in documents if (status := index.status(document)) is not None]
    names = {status.document: status.name for status in coverage}
    passages = index.search(question, documents, limit)
    citations = [passage_citation(passage, names) for passage in passages]
    return ExtractiveAnswer(_extractive_text(citations, coverage, len(documents) > 1), citations, coverage)


def _extractive_text(citations: Sequence[Citation], coverage: Sequence[ReadStatus], several: bool) -> str:
    lines = []
    unread = [status for status in coverage if not status.complete]
    if unread:
        read = ", ".join(
            ngettext("{read} of {count} page of {name}", "{read} of {count} pages of {name}", status.page_count).format(
                read=status.pages_read, count=status.page_count, name=status.name
            )
            for status in unread
        )
        lines.append(_("Still reading: this answer comes from the pages read so far ({read}).").format(read=read))
    if not citations:
        lines.append(_("No passage of the document matches the question's words."))
        return "\n\n".join(lines)
    lines.append(
        _(
            "Offline answer (extractive): the passages that best match your question, best first. No model read "
            "them; check the page."
        )
    )
    for number, citation in enumerate(citations, start=1):
        page = _("p. {page}").format(page=citation.page)  # "с. 27": the citation reader knows both (_MARKER)
        where = f"{citation.document_name}, {page}" if several else page
        lines.append(f"{number}. [{where}] {citation.text}")
    return "\n\n".join(lines)


# -- a model's citations ------------------------------------------------------------------------
_MARKER = re.compile(r"[\[(]\s*(?:p|pp|page|стр|с)\.?\s*(\d{1,5})\s*[\])]", re.IGNORECASE)
_QUOTE = re.compile(r"[\"“«]([^\"”»]{4,400})[\"”»]\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


@dataclass(frozen=True)
class CitationClaim:
    """What a model's answer says: page `page` supports `text` (its quote, or the sentence before the marker)."""

    page: int
    text: str
    quoted: bool


def parse_citations(answer: str) -> list[CitationClaim]:
    """Every "[p. N]" marker of an answer, with the quote just before it or else the sentence it ends."""
    claims = []
    previous_end = 0
    for match in _MARKER.finditer(answer):
        before = answer[previous_end : match.start()].rstrip()
        previous_end = match.end()
        quote = _QUOTE.search(before)
        if quote:
            claims.append(CitationClaim(int(match.group(1)), quote.group(1).strip(), True))
            continue
        sentence = _SENTENCE_END.split(before)[-1].strip() if before else ""
        claims.append(CitationClaim(int(match.group(1)), sentence, False))
    return claims


PageLines = Callable[[int], Sequence[TextLine] | None]  # a sent page's lines (None: not read)


def check_citations(
    claims: Sequence[CitationClaim], sent_pages: Collection[int], page_lines: PageLines, document: str | None = None
) -> list[Citation]:
    """Each claim checked: the page must be one that was sent, and its text must fuzzy-match that page."""
    checked = []
    for claim in claims:
        if claim.page not in sent_pages:
            checked.append(Citation(claim.page, claim.text, [], CitationStatus.PAGE_NOT_SENT, document))
            continue
        lines = page_lines(claim.page)
        if lines is None:
            checked.append(Citation(claim.page, claim.text, [], CitationStatus.NO_TEXT, document))
            continue
        similarity, support = best_support(claim.text, lines)
        status = CitationStatus.VERIFIED if similarity >= MIN_QUOTE_SIMILARITY else CitationStatus.NOT_ON_PAGE
        boxes = [line.box for line in support] if status is CitationStatus.VERIFIED else []
        checked.append(Citation(claim.page, claim.text, boxes, status, document, similarity=round(similarity, 1)))
    return checked


def best_support(text: str, lines: Sequence[TextLine]) -> tuple[float, list[TextLine]]:
    """The window of up to SUPPORT_LINES consecutive lines that best contains `text` (rapidfuzz partial ratio,
    case and spacing ignored), and its similarity 0-100."""
    from rapidfuzz import fuzz

    needle = _normal(text)
    if not needle or not lines:
        return 0.0, []
    best: tuple[float, list[TextLine]] = (0.0, [])
    for start in range(len(lines)):
        for size in range(1, SUPPORT_LINES + 1):
            window = list(lines[start : start + size])
            if len(window) < size:
                break
            haystack = _normal(" ".join(line.text for line in window))
            if needle in haystack:
                score = 100.0
            elif len(needle) >= MIN_QUOTE_CHARS:
                score = float(fuzz.partial_ratio(needle, haystack))
            else:
                score = 0.0
            if score > best[0] or (score == best[0] and score > 0 and len(window) < len(best[1])):
                best = (score, window)
    return best


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
