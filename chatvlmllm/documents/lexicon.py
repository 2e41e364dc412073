"""Words and stems for English and Russian: real-word look-ups for the text-layer check, and the stemmed terms
the full-text index stores and queries.

- `real_word_share(text)`: the share of a text's words (4+ letters) that are real English or Russian word
  forms, from wordfreq's lists (a maintained library of word frequencies built from large corpora). A text
  layer of mojibake or of poor OCR is mostly not words.
- `terms(text)`: the tokens the index stores: case folded, `ё` read as `е`, each word stemmed by the Snowball
  stemmer of its script (PyStemmer: Russian for Cyrillic words, English for Latin ones), numbers kept. The
  same function stems the question, so "штрафа" finds "штрафы" and "penalties" finds "penalty".
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from pathlib import Path

from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

LEXICON_LANGUAGES = {"en": 60_000, "ru": 100_000}  # language → how many of its most frequent word forms
MIN_WORD_LETTERS = 4
WORD_SAMPLE = 160  # words looked up per page, spread over it
_WORD = re.compile(r"[^\W\d_]+")
_TOKEN = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
_lock = threading.Lock()


@functools.cache
def _lexicon() -> frozenset[str]:
    cached = _lexicon_file()
    try:
        return frozenset(cached.read_text(encoding="utf-8").split("\n"))
    except OSError:
        pass
    from wordfreq import top_n_list

    words: set[str] = set()
    for language, size in LEXICON_LANGUAGES.items():
        words.update(word.replace("ё", "е") for word in top_n_list(language, size, wordlist="best"))
    try:  # wordfreq takes about a second to load its lists; the plain list reads in a few milliseconds
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.write_text("\n".join(sorted(words)), encoding="utf-8")
        partial.replace(cached)
    except OSError as exc:
        log.info("word list not cached at %s (%s)", cached, exc)
    return frozenset(words)


def _lexicon_file() -> Path:
    from importlib.metadata import version

    wordfreq_version = version("wordfreq")  # importing wordfreq itself costs a third of a second
    sizes = "-".join(f"{language}{size}" for language, size in LEXICON_LANGUAGES.items())
    return settings().data_dir / "cache" / f"lexicon-{sizes}-wordfreq{wordfreq_version}.txt"


def lexicon() -> frozenset[str]:
    """The word forms counted as real (loaded once per process; cached as a plain list in the data folder)."""
    with _lock:
        return _lexicon()


def real_word_share(text: str) -> tuple[float, int]:
    """(share of the sampled words that are real word forms, how many words were sampled)."""
    words = [w for w in _WORD.findall(text.casefold().replace("ё", "е")) if len(w) >= MIN_WORD_LETTERS]
    if not words:
        return 0.0, 0
    step = max(1, len(words) // WORD_SAMPLE)
    sample = words[::step]
    known = lexicon()
    return sum(1 for word in sample if word in known) / len(sample), len(sample)


@functools.cache
def _stemmer(language: str):
    import Stemmer

    return Stemmer.Stemmer(language, 50_000)


def stem(token: str) -> str:
    """One case-folded token stemmed by its script's stemmer (mixed-script tokens and numbers unchanged)."""
    found = _stems.get(token)
    if found is None:
        found = _stem(token)
        if len(_stems) < STEM_CACHE:
            _stems[token] = found
    return found


STEM_CACHE = 500_000  # distinct tokens remembered (a 1,000-page document has tens of thousands)
_stems: dict[str, str] = {}


def _stem(token: str) -> str:
    if _CYRILLIC.search(token):
        return token if _LATIN.search(token) else _stemmer("russian").stemWord(token)
    if _LATIN.search(token) and not any(ch.isdigit() for ch in token):
        return _stemmer("english").stemWord(token)
    return token


def terms(text: str) -> list[str]:
    """The stemmed tokens of a text, in order (what the index stores and what a question is matched by)."""
    return [stem(token) for token in _TOKEN.findall(text.casefold().replace("ё", "е"))]


# Question words and function words: they match nearly every page, so a query leaves them out.
STOP_WORDS = frozenset(
    """a an and are as at be by can do does did for from has have how i in is it its me my of on or our
    page say says said tell that the their there these this those to was were what when where which who
    whom why will with would you your document about please
    а в во где да для до же за и из или как какая какие каким какой когда кто ли на над не но о об от по
    под при про с со так там то тот что чем чему это эта этот эти я мы вы он она они его ее их документ
    документе странице страница скажи сказано написано указано""".split()  # noqa: SIM905 (a list of words reads better as words)
)


@functools.cache
def _stop_stems() -> frozenset[str]:
    return frozenset(stem(word.replace("ё", "е")) for word in STOP_WORDS)


def query_terms(question: str) -> list[str]:
    """The question's stemmed terms without stop words, each once, in order."""
    seen: dict[str, None] = {}
    stops = _stop_stems()
    for term in terms(question):
        if term not in stops and term not in seen:
            seen[term] = None
    return list(seen)
