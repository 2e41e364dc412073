"""Helpers the tests share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from chatvlmllm.devtools.hub_tiny import shared_dir

SHARED = shared_dir()
SHARED_EVAL = SHARED / "eval"
HUBFILES = SHARED / "hubfiles"
# Built-in models whose hub files are not in ../shared/hubfiles, and why (hubfiles/SOURCES.md).
NO_REAL_FILES = {"qwen25_vl_3b": "no public copy of Qwen2.5-VL-3B-Instruct's hub files was found"}
TESSERACT_REQUIRED = os.environ.get("CHATVLMLLM_REQUIRE_TESSERACT") == "1"


def require_tesseract() -> None:
    """Skip without the tesseract binary, except in CI (CHATVLMLLM_REQUIRE_TESSERACT=1), where it must run."""
    if shutil.which("tesseract") is None:
        if TESSERACT_REQUIRED:
            pytest.fail("CHATVLMLLM_REQUIRE_TESSERACT=1 but the tesseract binary is missing")
        pytest.skip("tesseract binary not installed (apt-get install tesseract-ocr tesseract-ocr-rus)")


def require_hubfiles() -> Path:
    """The real hub files of the built-in models (../shared/hubfiles); their absence is a failure."""
    if not (HUBFILES / "SOURCES.md").is_file():
        pytest.fail(f"the real hub files are not at {HUBFILES} (../shared/hubfiles beside the checkout)")
    return HUBFILES


def text_image(lines: list[str], size: tuple[int, int] = (640, 360)) -> Image.Image:
    """A white page with black text, for OCR and upload tests."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((20, 20 + 40 * i), line, fill="black", font_size=28)
    return image


def image_bytes(image: Image.Image, fmt: str = "PNG", **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def pdf_of(images: list[Image.Image]) -> bytes:
    """A PDF with one page per image (Pillow's PDF writer)."""
    buffer = io.BytesIO()
    first, *rest = [image.convert("RGB") for image in images]
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=100)
    return buffer.getvalue()


def write_models_file(path: Path, entries: dict[str, dict]) -> Path:
    """Write a user catalog TOML (the same file format users write)."""
    lines = []
    for key, entry in entries.items():
        lines.append(f"[models.{key}]")
        for field, value in entry.items():
            rendered = (
                f'"{value}"'
                if isinstance(value, str)
                else repr(value).lower()
                if isinstance(value, bool)
                else repr(value)
            )
            lines.append(f"{field} = {rendered}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def engine_for(cache, key: str):
    """A catalog model loaded the production way: planned for this machine, held by `cache`."""
    from chatvlmllm.models.catalog import load_catalog
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    spec = load_catalog()[key]
    return cache.get(spec, plan_load(probe(), spec))


# -- the interface language (docs/i18n.md): which texts a page shows, and which of them are English ---------

# Latin-script words a Russian page may show: brand, model, format and unit names, and each language's own
# name in the language switch. Compared in lower case. The sweep adds names here, never sentences.
KNOWN_ENGLISH = frozenset(
    {
        # brands and programs
        "chatvlmllm", "streamlit", "hugging", "face", "tesseract", "rapidocr", "onnxruntime", "pytorch", "torch",
        "transformers", "flash-attn", "docling", "openai",
        # model families and names
        "qwen", "got-ocr", "glm-ocr", "paddleocr-vl", "lightonocr", "deepseek-ocr", "granite-docling", "granite",
        # formats, standards and hardware
        "png", "jpeg", "jpg", "webp", "bmp", "tiff", "pdf", "json", "csv", "markdown", "txt", "html", "latex", "zip",
        "ocr", "vlm", "gpu", "cpu", "cuda", "vram", "ram", "api", "url", "sqlite", "toml", "doctags", "otsl",
        "rtx", "ti",  # a GPU's name (GeForce RTX 5070 Ti)
        "cer",  # a metric's name (character error rate), as ANLS and F1
        "bitsandbytes", "sdpa", "eager",  # a package, and transformers' attention implementations (their names)
        # each language in its own name (the switch lists them so)
        "english",
    }
)  # fmt: skip
# Text fields of Streamlit's element protos that a person reads (the labels, help, options and bodies).
_TEXT_FIELDS = ("body", "label", "placeholder", "help", "options", "caption")
_NOT_PROSE = ("html", "code", "json", "dataframe", "arrow_data_frame", "table")  # markup, data, model text
_MARKUP = re.compile(
    r":material/[a-z_]+:"  # icons
    r"|:[a-z]+-badge\[|:[a-z]+\[|\]"  # badges and coloured text: keep what is inside
    r"|`[^`]*`"  # code spans: model keys, commands, file names
    r"|https?://\S+"
    r"|\{[a-z_]+\}"  # a placeholder left unformatted
    r"|[*#>]+|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])"  # emphasis and headings, not an identifier's underscores
)
# A Latin word; one with a digit, an underscore or an inner dot is an identifier or a file name (qwen_vl_2b,
# sm_86, receipt.png, dots.ocr), never a sentence's word.
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.'’-]*[A-Za-z0-9]")
_IDENTIFIER = re.compile(r"[0-9_]|[A-Za-z]\.[A-Za-z]|^[A-Z0-9_]{4,}$")


@dataclass(frozen=True)
class ShownText:
    """A text the page shows: the kind of element, its key (a widget's), the keys of the containers around
    it (outermost first), and the text itself."""

    kind: str
    key: str | None
    within: tuple[str, ...]
    text: str


def shown_texts(node, within: tuple[str, ...] = ()) -> list[ShownText]:
    """Every text a person reads under an AppTest node (`at.main`, `at.sidebar`, a container): element
    bodies, labels, help texts, placeholders, options as displayed, expander and tab labels."""
    proto = getattr(node, "proto", None)
    if hasattr(node, "children"):  # a block: a container, column, expander, tab, chat message, ...
        found: list[ShownText] = []
        if proto is not None:  # the block's own label (an expander's, a tab's); a Block proto or its part
            kind = proto.WhichOneof("type") if "type" in proto.DESCRIPTOR.oneofs_by_name else None
            found += _proto_texts(getattr(proto, kind) if kind else proto, kind or node.type, None, within)
        inner = (*within, node.key) if node.key else within
        for child in node.children.values():
            found += shown_texts(child, inner)
        return found
    if proto is None or node.type in _NOT_PROSE:
        return []
    key = getattr(node, "key", None)
    return _proto_texts(proto, node.type, key if isinstance(key, str) else None, within)


def _proto_texts(proto, kind: str, key: str | None, within: tuple[str, ...]) -> list[ShownText]:
    texts: list[ShownText] = []
    for field, value in proto.ListFields():
        if field.name not in _TEXT_FIELDS:
            continue
        values = [value] if isinstance(value, str) else list(value)  # a repeated field: the options
        texts += [ShownText(kind, key, within, v) for v in values if isinstance(v, str) and v.strip()]
    return texts


def english_words(text: str) -> list[str]:
    """The words of `text` that are English prose: Latin words that are not known names or identifiers."""
    prose = _MARKUP.sub(" ", text)
    return [
        word
        for word in _LATIN_WORD.findall(prose)
        if not _IDENTIFIER.search(word) and word.lower().strip(".'’-") not in KNOWN_ENGLISH
    ]


def english_texts(texts: list[ShownText]) -> list[ShownText]:
    """The texts with English prose in them: on a page in another language, each is a string that was not
    translated (or a name missing from KNOWN_ENGLISH)."""
    return [shown for shown in texts if english_words(shown.text)]


# A clause on one page of a born-digital PDF among filler pages: the whole-document tests' contract.
CONTRACT_CLAUSE = [
    "Section 27. Penalties for late delivery of the goods",
    "If the supplier fails to deliver the goods on the agreed date, it shall",
    "pay the buyer a penalty of one tenth of one percent of the price of the",
    "goods not delivered for each day of delay, up to ten percent in total.",
    "Payment of the penalty does not release either party from its duties.",
]
CONTRACT_QUESTION = "What is the penalty for late delivery?"
CONTRACT_PAGE = 4


def contract_pdf(pages: int = 6) -> bytes:
    """A born-digital PDF of `pages` filler pages, the penalty clause atop page `CONTRACT_PAGE`."""
    from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages

    specs = filler_pages(pages + 1, seed=11, lines_per_page=20)
    specs[CONTRACT_PAGE - 1] = PageSpec(CONTRACT_CLAUSE + specs[-1].lines)  # the clause, then running text
    specs = specs[:pages]
    return build_pdf(specs)
