"""dots.ocr layout answers in the page: box overlay, text, formulas, tables with CSV.

`render_layout(layout, image)` takes what the dots.ocr engine put in
`answer.extras["layout"]` (the dict, or just its "elements" list) and the page image the
question was about. Parsing, rescaling, sanitising and CSV conversion live in
`chatvlmllm.documents.layout`; this module only places things on the page.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import streamlit as st

from chatvlmllm.documents.layout import (
    PAGE_FURNITURE,
    LayoutElement,
    draw_layout,
    element_markdown,
    elements_from_dicts,
    rescale_elements,
    sanitize_table_html,
    strip_math_delimiters,
    table_csv,
)
from chatvlmllm.i18n import _, ngettext

if TYPE_CHECKING:
    from PIL import Image


def render_layout(elements: list[dict] | dict[str, Any], image: Image.Image | None, key: str | None = None) -> None:
    """Overlay, then every element in reading order.

    `elements` is extras["layout"] (whose boxes are on `image_size`) or a bare list of
    elements already in `image`'s pixels. `key` tells apart two renderings of the same
    layout in one run (their CSV buttons would otherwise clash).
    """
    layout = elements if isinstance(elements, dict) else {"elements": elements}
    parsed = elements_from_dicts(layout.get("elements") or [])
    if image is not None and layout.get("image_size") and tuple(layout["image_size"]) != image.size:
        # The page was rendered again at another size: move the boxes with it.
        parsed = rescale_elements(parsed, tuple(layout["image_size"]), image.size)
    if not parsed:
        st.info(_("The layout answer had no complete element to show."))
        return
    if layout.get("truncated"):
        st.warning(
            ngettext(
                "The model stopped before the end of the page (token limit): showing its {count} complete element.",
                "The model stopped before the end of the page (token limit): showing its {count} complete elements.",
                len(parsed),
            ).format(count=len(parsed))
        )
    if image is not None:
        st.image(
            draw_layout(image, parsed),
            caption=ngettext("Layout: {count} element", "Layout: {count} elements", len(parsed)).format(
                count=len(parsed)
            ),
            width="stretch",
        )
    else:
        st.caption(_("The page image is not available here, so the boxes cannot be drawn."))
    base_key = key or _digest(parsed)
    for index, element in enumerate(parsed, start=1):
        _render_element(element, index, image, base_key)


def _render_element(element: LayoutElement, index: int, image: Image.Image | None, base_key: str) -> None:
    text = element.text.strip()
    if element.category == "Formula" and text:
        st.latex(strip_math_delimiters(text))
    elif element.category == "Table" and text:
        _render_table(text, index, base_key)
    elif element.category == "Picture":
        left, top, right, bottom = (round(v) for v in element.bbox)
        box = (left, top, right, bottom)
        # A box clamped to the page edge can have no area; PIL cannot encode an empty crop.
        if image is not None and box[2] > box[0] and box[3] > box[1]:
            st.image(image.crop(box), caption=_("Picture {number}").format(number=index))
    elif element.category in PAGE_FURNITURE:
        if text:
            st.caption(text)
    elif text:
        st.markdown(element_markdown(element))


def _render_table(html: str, index: int, base_key: str) -> None:
    st.html(sanitize_table_html(html))
    csv = table_csv(html)
    if csv is None:
        st.caption(_("This table could not be read into rows and columns (it may be cut off)."))
        return
    st.download_button(
        _("Download table as CSV"),
        csv,
        file_name=f"table-{index}.csv",
        mime="text/csv",
        key=f"layout-{base_key}-table-{index}",
        on_click="ignore",
        icon=":material/download:",
    )


def _digest(elements: list[LayoutElement]) -> str:
    payload = json.dumps([el.to_dict() for el in elements], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:12]
