"""The OCR request policy, in one place: what a message asks for, the OCR prompts, and which
offline engine reads a document.

- `classify(text)` is the only request classifier: every engine, the task-aware chooser and the
  offline OCR answers ask it. Engines differ in what they can *do* with a task (GOT's formatted
  mode and dots.ocr write tables as Markdown; offline OCR cannot), and say so with the set of
  tasks they answer with a transcription (`OCR_TRANSCRIBES`, `FORMATTED_OCR_TRANSCRIBES`).
- `OCR_PROMPT` and `QUICK_PROMPTS` are the prompts the app, the CLI and the benchmark send; the app sends
  the quick prompts in the interface language, and the classifier knows each wording.
- The offline engines are the families declared with `backend == "classic"`; `offline_engine_for`
  and `offline_engines` choose among them by document language.
"""

from __future__ import annotations

import logging
import re

from chatvlmllm.decisions import Backend, Script, Task
from chatvlmllm.i18n import LANGUAGES, N_, translate
from chatvlmllm.models.families import families

log = logging.getLogger(__name__)

# -- prompts --------------------------------------------------------------------------------

# The CLI's `ocr` and the benchmark send it as is (English: their results stay comparable).
OCR_PROMPT = N_("Extract all text from this document, in reading order. Output only the text.")

# The common jobs, one click each: the English label (also the job's name) → the English prompt. Both are
# catalogue entries: the app shows and sends them in the interface language (ui.answer_view).
QUICK_PROMPTS: dict[str, str] = {
    N_("Extract all text"): OCR_PROMPT,
    N_("Table → Markdown"): N_(
        "Convert the table(s) in this document into Markdown tables. Keep every row and column; output only the tables."
    ),
    N_("Key fields → JSON"): N_(
        "Extract the key fields of this document (dates, names, numbers, amounts, totals) as one "
        "JSON object with descriptive keys. Output only the JSON."
    ),
    N_("Summarise"): N_(
        "Summarise this document in a few sentences: what it is, who it concerns, and the key figures."
    ),
}

# Wordings the quick prompts had before (chats saved with them are still recognised).
_FORMER_QUICK_PROMPTS = {
    "Extract all the text in this document in reading order. Keep the line breaks; add nothing else.": (
        "Extract all text"
    ),
}


def quick_prompt_label(text: str) -> str | None:
    """The quick prompt's English label ("Extract all text") when `text` is one, in any language of the
    interface (a chat asked in Russian stays recognised in English) or in a former wording."""
    stripped = text.strip()
    found = next(
        (
            label
            for label, prompt in QUICK_PROMPTS.items()
            if any(translate(prompt, language) == stripped for language in LANGUAGES)
        ),
        None,
    )
    return found or _FORMER_QUICK_PROMPTS.get(stripped)


def is_extract_all_text(text: str) -> bool:
    return quick_prompt_label(text) == "Extract all text"


# -- the request classifier -----------------------------------------------------------------

_SUMMARY = re.compile(
    r"\b(summar\w*|tl;?dr|overview|gist)\b|кратк\w*|вкратце|резюм\w*|пересказ\w*|перескаж\w*", re.IGNORECASE
)
_QUESTION_START = re.compile(
    r"^\s*(what|who|whom|whose|when|where|why|how|which|is|are|was|were|does|do|did|can|could|should|"
    r"will|would|has|have|explain|describe|translate|compare|calculate|count|"
    r"что|кто|когда|где|почему|зачем|как|какой|какая|какие|каков\w*|сколько|чей|чья|чь[её]|откуда|куда|ли|"
    r"объясни|опиши|переведи|сравни|посчитай|подсчитай)\b",
    re.IGNORECASE,
)
# Words that name a task; checked in this order (a "table formula" is a table request).
_TASK_WORDS = (
    (
        Task.LAYOUT,
        re.compile(r"\b(layout|bbox\w*|bounding box\w*|boxes|ground\w*|doctags|docling|разметк\w*|рамк\w*)\b", re.I),
    ),
    (Task.TABLE, re.compile(r"\b(tables?|otsl|csv|таблиц\w*)\b", re.I)),
    (Task.FORMULA, re.compile(r"\b(formulas?|formulae|equations?|latex|формул\w*)\b", re.I)),
    (Task.CHART, re.compile(r"\b(charts?|graphs?|plots?|диаграмм\w*|график\w*)\b", re.I)),
    (Task.KEY_FIELDS, re.compile(r"\b(json|key[- ]?fields?|fields?|key[- ]values?|пол[яе]|реквизит\w*)\b", re.I)),
)
# Requests for something a transcription does not contain (a figure, a translation, ...).
_BEYOND_TRANSCRIPTION = re.compile(
    r"\b(translat\w*|explain\w*|total|amount|date|who|what|when|where|why|how|which|"
    r"сумм\w*|итог\w*|дат[аеуы]|цен[аеуы]|перевед\w*|объясн\w*)\b",
    re.IGNORECASE,
)
_TRANSCRIBE_WORDS = re.compile(
    r"\b(ocr|extract|transcri\w*|read|text|markdown|digiti[sz]e|convert|copy|parse|write (out|down)|"
    r"текст\w*|распозна\w*|извлеки|извлечь|прочитай|перепиши|оцифр\w*|"
    r"texte?|extrai\w*|transkri\w*|abschreib\w*)\b",
    re.IGNORECASE,
)


def classify(text: str) -> Task:
    """What a message asks for: "" or "Extract all text" → TRANSCRIBE; "Convert the table to Markdown"
    → TABLE; "Key fields as JSON" → KEY_FIELDS; "Summarise" → SUMMARY; "What is the total?" → QUESTION."""
    stripped = text.strip()
    if not stripped:
        return Task.TRANSCRIBE
    if _SUMMARY.search(stripped):
        return Task.SUMMARY
    if stripped.endswith("?") or _QUESTION_START.match(stripped):
        return Task.QUESTION
    for task, words in _TASK_WORDS:
        if words.search(stripped):
            return task
    if _TRANSCRIBE_WORDS.search(stripped) and not _BEYOND_TRANSCRIPTION.search(stripped):
        return Task.TRANSCRIBE
    return Task.QUESTION


# Tasks that need a model which understands the page (a chat model), not only one that reads it.
UNDERSTANDING_TASKS = frozenset({Task.QUESTION, Task.SUMMARY, Task.KEY_FIELDS})
# What any OCR engine answers with the page's text (with line boxes, formulas as text).
OCR_TRANSCRIBES = frozenset({Task.TRANSCRIBE, Task.LAYOUT, Task.FORMULA, Task.CHART})
# OCR models with a formatted output (GOT's format mode, dots.ocr's layout JSON) also write tables.
FORMATTED_OCR_TRANSCRIBES = OCR_TRANSCRIBES | {Task.TABLE}


def needs_understanding(task: Task) -> bool:
    return task in UNDERSTANDING_TASKS


# -- offline engines ------------------------------------------------------------------------

# The offline engine used when none was chosen: it probes every page's script (Cyrillic →
# Tesseract) and layout, so the document-language selector need not be right (docs/benchmark.md).
OFFLINE_AUTO = "ocr_auto"
# The offline engine that reads each script best on its own, for orderings (fallback chains).
OFFLINE_BEST_FOR_SCRIPT = {Script.CYRILLIC: "tesseract", Script.LATIN: "rapidocr"}
# A language-specific engine goes in a fallback chain just before this one.
OFFLINE_FALLBACK = "rapidocr"
# ISO 639-1 codes whose documents need a non-Latin reader.
LANGUAGE_SCRIPTS = {
    "ru": Script.CYRILLIC,
    "uk": Script.CYRILLIC,
    "be": Script.CYRILLIC,
    "bg": Script.CYRILLIC,
    "sr": Script.CYRILLIC,
    "kk": Script.CYRILLIC,
    "zh": Script.CJK,
    "ja": Script.CJK,
    "ko": Script.CJK,
}


def offline_engine_names() -> list[str]:
    """The offline OCR engines: the families declared with `backend == "classic"`, in registry order."""
    return [name for name, info in families().items() if info.backend == Backend.CLASSIC]


def is_offline_engine(family: str) -> bool:
    """True for an offline OCR family (the built-in catalog keys of these equal their family names)."""
    return family in offline_engine_names()


def offline_engine_for(language: str | None) -> str:
    """The offline engine to use for a document language (ISO 639-1, or None for "Not set"): `ocr_auto`,
    which probes every page's script, so the language selector need not be right."""
    return OFFLINE_AUTO


def script_for(language: str | None) -> Script:
    return LANGUAGE_SCRIPTS.get((language or "").lower()[:2], Script.LATIN)


def offline_engines(language: str | None) -> list[str]:
    """The offline engines for a fallback chain: the per-page chooser first (it probes each page's
    script), then the single engines in the order that reads `language` best (Tesseract for Russian)."""
    best = OFFLINE_BEST_FOR_SCRIPT.get(script_for(language))
    return sorted(offline_engine_names(), key=lambda name: (name != OFFLINE_AUTO, name != best))
