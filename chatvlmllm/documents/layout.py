"""dots.ocr layout output: parse it, map it onto the original image, render it.

dots.ocr answers its layout prompts with a JSON list of elements
`{"bbox": [x1, y1, x2, y2], "category": "...", "text": "..."}` in reading order. The
boxes are in pixels of the image the model saw, which its processor resized
(`smart_resize`: both sides multiples of 28, pixel count within [min_pixels, max_pixels]),
so they must be scaled back before they are drawn on the page the user uploaded.
Tables come as HTML, formulas as LaTeX, everything else as Markdown.

No streamlit here: `ui/layout_view.py` renders what this module produces.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

# The 11 categories of dots.ocr's layout prompts.
CATEGORIES = (
    "Caption",
    "Footnote",
    "Formula",
    "List-item",
    "Page-footer",
    "Page-header",
    "Picture",
    "Section-header",
    "Table",
    "Text",
    "Title",
)
PAGE_FURNITURE = frozenset({"Page-header", "Page-footer"})

# dots.ocr's processor defaults (preprocessor_config.json): 14 px patches merged 2×2.
DOTS_FACTOR = 28
DOTS_MIN_PIXELS = 3136
DOTS_MAX_PIXELS = 11_289_600

# Box colours per category (RGB), close to the ones dots.ocr's own demo uses.
CATEGORY_COLORS: dict[str, tuple[int, int, int]] = {
    "Caption": (255, 165, 0),
    "Footnote": (0, 128, 0),
    "Formula": (128, 128, 128),
    "List-item": (0, 0, 255),
    "Page-footer": (128, 0, 128),
    "Page-header": (0, 128, 0),
    "Picture": (255, 0, 255),
    "Section-header": (0, 170, 170),
    "Table": (230, 110, 140),
    "Text": (0, 128, 0),
    "Title": (255, 0, 0),
}
OTHER_COLOR = (165, 42, 42)

# What a table may keep after sanitising: structure and light inline formatting only.
TABLE_TAGS = frozenset(
    {"table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td"}
    | {"br", "b", "strong", "i", "em", "u", "sub", "sup", "span", "p", "div"}
)
TABLE_ATTRIBUTES = {
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
}

_ELEMENT_START = re.compile(r'\{\s*"bbox"')
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n?|\n?\s*```\s*$")
_MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


@dataclass(frozen=True)
class LayoutElement:
    """One block of the page: where it is, what kind it is, and its text."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    category: str
    text: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayoutElement:
        """An element from dots.ocr's JSON; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"not a layout element: {data!r:.80}")
        bbox = data.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"bbox must be [x1, y1, x2, y2], got {bbox!r:.80}")
        x1, y1, x2, y2 = (float(v) for v in bbox)
        text = data.get("text")
        return cls(
            bbox=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)),
            category=str(data.get("category") or "Text"),
            text="" if text is None else str(text),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly, in dots.ocr's own shape (integer pixel boxes)."""
        return {"bbox": [round(v) for v in self.bbox], "category": self.category, "text": self.text}


@dataclass
class ParsedLayout:
    elements: list[LayoutElement] = field(default_factory=list)
    # The output stopped inside the JSON (max tokens): the unfinished element was dropped.
    truncated: bool = False
    # Items that were not layout elements: invalid JSON, no bbox, bad numbers.
    skipped: int = 0

    @property
    def found(self) -> bool:
        return bool(self.elements)


def parse_layout(text: str) -> ParsedLayout:
    """Every complete element of a dots.ocr layout answer, even one cut off at max tokens.

    Accepts the bare JSON list, the list inside a ```json fence, or a single element
    object. Items are decoded one at a time, so a truncated answer keeps every element
    that was finished before the cut, and one malformed element costs only itself.
    """
    body = _FENCE.sub("", text.strip())
    start = _first_json_start(body)
    if start is None:
        return ParsedLayout()
    if body[start] == "{":
        items, truncated, malformed = _decode_sequence(body, start, closing=None)
    else:
        items, truncated, malformed = _decode_sequence(body, start + 1, closing="]")
    parsed = ParsedLayout(truncated=truncated, skipped=malformed)
    for item in items:
        try:
            parsed.elements.append(LayoutElement.from_dict(item))
        except (ValueError, TypeError):
            parsed.skipped += 1
    return parsed


def _first_json_start(body: str) -> int | None:
    positions = [p for p in (body.find("["), body.find("{")) if p >= 0]
    return min(positions) if positions else None


def _decode_sequence(body: str, pos: int, closing: str | None) -> tuple[list[Any], bool, int]:
    """Decode JSON values separated by commas from `pos`: (values, stopped_early, malformed).

    A value that does not decode (an unescaped quote in a cell, say) is skipped up to the
    next element start; one that runs to the end of the text is the unfinished last one.
    """
    decoder = json.JSONDecoder()
    items: list[Any] = []
    malformed = 0
    while True:
        while pos < len(body) and body[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(body):
            return items, closing is not None, malformed  # the list never closed
        if closing is not None and body[pos] == closing:
            return items, False, malformed
        try:
            value, pos = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            resume = _ELEMENT_START.search(body, pos + 1)
            if resume is None:
                return items, True, malformed  # the unfinished last element
            malformed += 1
            pos = resume.start()
            continue
        items.append(value)
        if closing is None:
            return items, False, malformed


# -- coordinates --------------------------------------------------------------------


def model_input_size(
    width: int,
    height: int,
    min_pixels: int = DOTS_MIN_PIXELS,
    max_pixels: int = DOTS_MAX_PIXELS,
    factor: int = DOTS_FACTOR,
) -> tuple[int, int]:
    """(width, height) of the image the model saw, by the processor's own smart_resize."""
    # The PIL module of the Qwen2-VL image processor: same math, no torchvision needed.
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    resized_height, resized_width = smart_resize(
        height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return resized_width, resized_height


def rescale_elements(
    elements: list[LayoutElement], input_size: tuple[int, int], original_size: tuple[int, int]
) -> list[LayoutElement]:
    """Boxes from the model's input pixels to the original image's, clamped to the page."""
    in_w, in_h = input_size
    out_w, out_h = original_size
    sx, sy = out_w / in_w, out_h / in_h
    rescaled = []
    for el in elements:
        x1, y1, x2, y2 = el.bbox
        box = (
            _clamp(x1 * sx, out_w),
            _clamp(y1 * sy, out_h),
            _clamp(x2 * sx, out_w),
            _clamp(y2 * sy, out_h),
        )
        rescaled.append(LayoutElement(box, el.category, el.text))
    return rescaled


def to_model_coordinates(
    bbox: tuple[float, float, float, float] | list[float],
    original_size: tuple[int, int],
    input_size: tuple[int, int],
) -> list[int]:
    """A box on the original image in the model's input pixels (for grounding prompts)."""
    sx, sy = input_size[0] / original_size[0], input_size[1] / original_size[1]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]


def _clamp(value: float, upper: int) -> float:
    return round(min(max(value, 0.0), float(upper)), 1)


# -- drawing ----------------------------------------------------------------------


def draw_layout(image: Image.Image, elements: list[LayoutElement], line_width: int | None = None) -> Image.Image:
    """A copy of `image` (same size) with a translucent, labelled box per element."""
    from PIL import Image, ImageDraw

    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = line_width or max(2, round(max(base.size) / 400))
    font_size = max(12, round(max(base.size) / 70))
    for index, el in enumerate(elements, start=1):
        color = CATEGORY_COLORS.get(el.category, OTHER_COLOR)
        x1, y1, x2, y2 = el.bbox
        draw.rectangle((x1, y1, x2, y2), fill=(*color, 48), outline=(*color, 255), width=width)
        label = f"{index} {el.category}"
        text_box = draw.textbbox((x1, y1), label, font_size=font_size)
        label_y = y1 - (text_box[3] - text_box[1]) - 4 if y1 > font_size + 4 else y1
        draw.rectangle(
            (x1, label_y, x1 + text_box[2] - text_box[0] + 6, label_y + text_box[3] - text_box[1] + 4),
            fill=(*color, 200),
        )
        draw.text((x1 + 3, label_y), label, fill=(255, 255, 255, 255), font_size=font_size)
    return Image.alpha_composite(base, overlay).convert("RGB")


# -- text, formulas and tables ---------------------------------------------------------


def strip_math_delimiters(latex: str) -> str:
    """LaTeX without the $$ / \\[ \\] / $ wrapper (st.latex adds its own)."""
    text = latex.strip()
    for left, right in _MATH_DELIMITERS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left) : len(text) - len(right)].strip()
    return text


def sanitize_table_html(html: str) -> str:
    """The table's structure only: scripts, styles, event handlers and links are removed."""
    import nh3

    return nh3.clean(html, tags=set(TABLE_TAGS), attributes=TABLE_ATTRIBUTES, link_rel=None).strip()


def table_frames(html: str) -> list[pd.DataFrame]:
    """The tables of an HTML fragment as DataFrames, cell text kept exactly (no number parsing)."""
    import pandas as pd

    clean = sanitize_table_html(html)
    if "<table" not in clean:
        return []
    try:
        first = pd.read_html(io.StringIO(clean))
    except (ValueError, IndexError):  # no parsable table (e.g. cut off before its first row)
        return []
    frames = []
    for index, frame in enumerate(first):
        # Second pass with every column read as text: "0070" and "2.50" stay as printed.
        as_text = pd.read_html(
            io.StringIO(clean),
            thousands=None,
            keep_default_na=False,
            converters={column: str for column in frame.columns},
        )[index]
        frames.append(as_text)
    return frames


def has_header(frame: pd.DataFrame) -> bool:
    """False when pandas numbered the columns itself (the table had no <th> row)."""
    return not all(isinstance(c, int) for c in frame.columns)


def table_csv(html: str) -> str | None:
    """The first table of `html` as CSV text, or None when there is no readable table."""
    frames = table_frames(html)
    if not frames:
        return None
    frame = frames[0]
    return frame.to_csv(index=False, header=has_header(frame))


def element_markdown(el: LayoutElement) -> str:
    """One element as Markdown: formulas as $$ blocks, tables as sanitised HTML."""
    text = el.text.strip()
    if el.category == "Picture":
        return ""
    if el.category == "Formula":
        return f"$$\n{strip_math_delimiters(text)}\n$$" if text else ""
    if el.category == "Table":
        return sanitize_table_html(text)
    if el.category == "Title" and text and not text.startswith("#"):
        return f"# {text}"
    if el.category == "Section-header" and text and not text.startswith("#"):
        return f"## {text}"
    return text


def layout_markdown(elements: list[LayoutElement], include_page_furniture: bool = True) -> str:
    """The page as one Markdown document in reading order."""
    blocks = []
    for el in elements:
        if not include_page_furniture and el.category in PAGE_FURNITURE:
            continue
        block = element_markdown(el)
        if block:
            blocks.append(block)
    return "\n\n".join(blocks)


def layout_extras(
    text: str, original_size: tuple[int, int], input_size: tuple[int, int], prompt_mode: str
) -> dict[str, Any]:
    """What an answer's extras["layout"] carries: elements on the original image, and more."""
    parsed = parse_layout(text)
    elements = rescale_elements(parsed.elements, input_size, original_size)
    return {
        "elements": [el.to_dict() for el in elements],
        "image_size": list(original_size),
        "input_size": list(input_size),
        "truncated": parsed.truncated,
        "skipped": parsed.skipped,
        "prompt_mode": prompt_mode,
        "markdown": layout_markdown(elements),
    }


def elements_from_dicts(items: list[dict[str, Any]]) -> list[LayoutElement]:
    """Elements back from extras["layout"]["elements"] (skipping anything malformed)."""
    elements = []
    for item in items:
        try:
            elements.append(LayoutElement.from_dict(item))
        except (ValueError, TypeError):
            continue
    return elements
