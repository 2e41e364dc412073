"""Text metrics for the benchmark: CER, order-insensitive word F1, QA exact match and ANLS.

Edit distances come from rapidfuzz (C++), not a hand-written Levenshtein.

- CER: character edit distance / reference length, on whitespace-normalised text (runs of
  whitespace, newlines included, become one space). Case and punctuation count. It can exceed 1
  when the hypothesis is much longer than the reference.
- Word F1: precision/recall over multisets of case-folded words (letters and digits; punctuation
  dropped), so an engine that reads columns in another order than the annotator, or prints
  "Total:" where the transcript says "TOTAL", is not punished for it: this measures what was read.
- QA: exact match after normalisation (case, punctuation, spacing), and ANLS (average normalised
  Levenshtein similarity, with the usual 0.5 threshold) against the best accepted answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

ANLS_THRESHOLD = 0.5
_WHITESPACE = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate on whitespace-normalised text."""
    hyp, ref = normalize_whitespace(hypothesis), normalize_whitespace(reference)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(hyp, ref) / len(ref)


def words(text: str) -> list[str]:
    """Case-folded word tokens (runs of letters and digits); punctuation and spacing dropped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def word_f1(hypothesis: str, reference: str) -> float:
    """F1 over multisets of words (order-insensitive; case and punctuation ignored)."""
    hyp = Counter(words(hypothesis))
    ref = Counter(words(reference))
    if not hyp and not ref:
        return 1.0
    common = sum((hyp & ref).values())
    if common == 0:
        return 0.0
    precision = common / sum(hyp.values())
    recall = common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, single spaces: "25/12/2018." and "25 12 2018" compare equal."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return normalize_whitespace(_PUNCTUATION.sub(" ", text))


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised accepted answer."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(a) for a in answers))


def anls(prediction: str, answers: Iterable[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Best normalised Levenshtein similarity over the accepted answers; 0 below the threshold."""
    predicted = normalize_whitespace(prediction).casefold()
    best = 0.0
    for answer in answers:
        expected = normalize_whitespace(answer).casefold()
        if not predicted and not expected:
            return 1.0
        distance = Levenshtein.normalized_distance(predicted, expected)
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100, numpy's linear interpolation); None for no values."""
    import numpy as np

    present = list(values)
    return float(np.percentile(present, q)) if present else None
