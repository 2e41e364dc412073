"""Document-model output formats normalised into the layout structure (`chatvlmllm.documents.layout`).

- DocTags (granite-docling): `<doctag><text><loc_x1><loc_y1><loc_x2><loc_y2>Hello</text>...`,
  locations on a 0..500 grid of the page.
- Grounding (DeepSeek-OCR): `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>text`,
  boxes on a 0..999 grid.
- HTML tables anywhere in an answer are sanitised to structure only.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from chatvlmllm.documents.layout import LayoutElement, layout_markdown, sanitize_table_html

log = logging.getLogger(__name__)

DOCTAGS_GRID = 500
GROUNDING_GRID = 999

# DocTags element names → the layout categories the overlay colours.
_DOCTAG_CATEGORIES = {
    "title": "Title",
    "section_header_level_1": "Section-header",
    "section_header": "Section-header",
    "text": "Text",
    "paragraph": "Text",
    "list_item": "List-item",
    "caption": "Caption",
    "footnote": "Footnote",
    "formula": "Formula",
    "otsl": "Table",
    "picture": "Picture",
    "chart": "Picture",
    "page_header": "Page-header",
    "page_footer": "Page-footer",
    "code": "Text",
}
_DOCTAG_ELEMENT = re.compile(
    r"<(?P<tag>[a-z_0-9]+)>\s*<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>(?P<body>.*?)</(?P=tag)>", re.S
)
_LOC = re.compile(r"<loc_\d+>")
_OTSL_CELL = re.compile(r"<(fcel|ecel|lcel|ucel|xcel|ched|rhed|srow)>")
_TAG = re.compile(r"</?[a-z_0-9]+>")
_GROUNDING = re.compile(
    r"<\|ref\|>(?P<label>.*?)<\|/ref\|>\s*<\|det\|>(?P<boxes>.*?)<\|/det\|>(?P<body>.*?)(?=<\|ref\|>|\Z)", re.S
)
_TABLE = re.compile(r"<table\b.*?(?:</table>|\Z)", re.S | re.I)


def sanitize_tables(text: str) -> str:
    """Every HTML table in `text` reduced to its structure (scripts, handlers and links removed)."""
    return _TABLE.sub(lambda m: sanitize_table_html(m.group(0)), text)


def _scaled(coords: tuple[float, ...], grid: int, size: tuple[int, int]) -> tuple[float, float, float, float]:
    width, height = size
    x1, y1, x2, y2 = (float(c) for c in coords)
    return (
        round(min(x1, x2) / grid * width, 1),
        round(min(y1, y2) / grid * height, 1),
        round(max(x1, x2) / grid * width, 1),
        round(max(y1, y2) / grid * height, 1),
    )


def otsl_to_html(body: str) -> str:
    """An OTSL table body (DocTags) as a plain HTML table: <nl> ends a row, cell tags start cells."""
    rows = []
    for line in body.split("<nl>"):
        parts = _OTSL_CELL.split(line)
        cells = [_TAG.sub("", parts[i + 1]).strip() for i in range(1, len(parts) - 1, 2)]
        if cells:
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return sanitize_table_html("<table>" + "".join(rows) + "</table>") if rows else ""


def parse_doctags(text: str, image_size: tuple[int, int]) -> list[LayoutElement]:
    """DocTags elements with their page boxes, in the order the model wrote them."""
    elements = []
    for match in _DOCTAG_ELEMENT.finditer(text):
        tag = match.group("tag")
        category = _DOCTAG_CATEGORIES.get(tag, "Text")
        body = match.group("body")
        content = otsl_to_html(body) if category == "Table" else _TAG.sub("", _LOC.sub("", body)).strip()
        box = _scaled(tuple(float(match.group(i)) for i in range(2, 6)), DOCTAGS_GRID, image_size)
        elements.append(LayoutElement(box, category, content))
    return elements


def parse_grounding(text: str, image_size: tuple[int, int]) -> list[LayoutElement]:
    """DeepSeek-OCR grounding spans: one element per box, its label as the category."""
    elements = []
    for match in _GROUNDING.finditer(text):
        try:
            boxes = json.loads(match.group("boxes"))
        except json.JSONDecodeError:
            continue
        if boxes and not isinstance(boxes[0], list):
            boxes = [boxes]
        label = match.group("label").strip()
        category = {"title": "Title", "table": "Table", "image": "Picture", "equation": "Formula"}.get(
            label.lower(), "Text"
        )
        body = match.group("body").strip()
        for box in boxes:
            if isinstance(box, list) and len(box) == 4:
                elements.append(LayoutElement(_scaled(tuple(box), GROUNDING_GRID, image_size), category, body))
    return elements


def layout_record(elements: list[LayoutElement], image_size: tuple[int, int], source: str) -> dict[str, Any]:
    """The shape of `extras["layout"]` the app draws (as dots.ocr's answers carry)."""
    return {
        "elements": [el.to_dict() for el in elements],
        "image_size": list(image_size),
        "input_size": list(image_size),
        "truncated": False,
        "skipped": 0,
        "prompt_mode": source,
        "markdown": layout_markdown(elements),
    }
