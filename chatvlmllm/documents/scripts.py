"""Latin and Cyrillic letters in OCR text: counting them, and repairing words whose scripts got mixed.

A reader that knows both alphabets (Tesseract with `rus+eng`) chooses, letter by letter, between
look-alikes: Latin `E` and Cyrillic `Е`, `P` and `Р`, `A` and `А` are the same shapes. On an
English page it then writes "ЕРЅ" for "EPS" and "2012А" for "2012A", and a search for "EPS" misses
them; on a Russian page it writes "TOBAP" for "ТОВАР". The repair has no tuned parameter: each word
takes the script its distinctive letters (those with no look-alike in the other alphabet) show, and
a word made only of look-alikes and digits takes the page's. Only look-alike letters are ever
changed, and only into their twin in the word's script.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from chatvlmllm.decisions import Script

# Latin letter → its Cyrillic look-alike in Russian (same shape in print; Tesseract confuses them both ways).
_LATIN_TO_CYRILLIC = dict(zip("ABCEHKMOPTXYaceopxyk", "АВСЕНКМОРТХУасеорхук", strict=True))
# The other way also maps the Cyrillic letters of other alphabets that a mixed read writes for Latin
# I, J, S (Ukrainian І, Serbian Ј, Macedonian Ѕ); a Russian word never needs them.
_CYRILLIC_TO_LATIN = {
    **{cyrillic: latin for latin, cyrillic in _LATIN_TO_CYRILLIC.items()},
    **dict(zip("ІЈЅіјѕ", "IJSijs", strict=True)),
}
_TWIN = {Script.CYRILLIC: _LATIN_TO_CYRILLIC, Script.LATIN: _CYRILLIC_TO_LATIN}
_WORD = re.compile(r"\w+", re.UNICODE)


def script_of_letter(char: str) -> Script | None:
    """LATIN or CYRILLIC for a letter of those alphabets; None for anything else (digits, CJK, ...)."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    if name.startswith("LATIN"):
        return Script.LATIN
    if name.startswith("CYRILLIC"):
        return Script.CYRILLIC
    return None


def letter_scripts(text: str) -> tuple[int, int]:
    """(Cyrillic letters, Latin letters) in a text."""
    counts = Counter(script_of_letter(char) for char in text)
    return counts[Script.CYRILLIC], counts[Script.LATIN]


def distinctive_letters(text: str) -> Counter[Script]:
    """Letters that can only be read as one script (no look-alike in the other), counted by script."""
    return Counter(
        script
        for char in text
        if (script := script_of_letter(char)) is not None
        and char not in _LATIN_TO_CYRILLIC
        and char not in _CYRILLIC_TO_LATIN
    )


def dominant_script(counts: Counter[Script]) -> Script | None:
    """The script with more distinctive letters; None on a tie (or none at all)."""
    latin, cyrillic = counts[Script.LATIN], counts[Script.CYRILLIC]
    if latin == cyrillic:
        return None
    return Script.LATIN if latin > cyrillic else Script.CYRILLIC


def is_mixed_word(word: str) -> bool:
    """A word holding letters of both alphabets (what the repair removes)."""
    cyrillic, latin = letter_scripts(word)
    return cyrillic > 0 and latin > 0


def mixed_words(text: str) -> list[str]:
    """The words of a text that mix Latin and Cyrillic letters."""
    return [word for word in _WORD.findall(text) if is_mixed_word(word)]


def words_with_letters_of(text: str, script: Script) -> list[str]:
    """The words of a text holding any letter of `script` (on an English page, Cyrillic ones are misreads)."""
    return [word for word in _WORD.findall(text) if any(script_of_letter(char) == script for char in word)]


# A document language → the alphabet whose letters, in its text, are misreads.
FOREIGN_SCRIPT = {"en": Script.CYRILLIC, "ru": Script.LATIN}


def wrong_script_words(text: str, language: str) -> int:
    """Words of a page in `language` (ISO 639-1) holding letters of the other alphabet: 0 for other languages."""
    foreign = FOREIGN_SCRIPT.get(language[:2].lower())
    return len(words_with_letters_of(text, foreign)) if foreign else 0


def repair_word(word: str, context: Script | None) -> str:
    """The word with its look-alike letters in its own script: its distinctive letters', else `context`'s."""
    script = dominant_script(distinctive_letters(word)) or context
    if script is None:
        return word
    twins = _TWIN[script]
    return "".join(twins.get(char, char) for char in word)


def repair_lines(lines: Iterable[str]) -> list[str]:
    """The lines of one page repaired: a word with no distinctive letter takes the page's script.

    The page's script, not the line's: on an English receipt a line Tesseract misread as Cyrillic
    garbage must not turn the line's real Latin words Cyrillic.
    """
    lines = list(lines)
    page = dominant_script(distinctive_letters("\n".join(lines)))
    return [_WORD.sub(lambda match: repair_word(match.group(0), page), line) for line in lines]
