"""dots.ocr layout answers: parsing (truncated too), rescaling, overlay, Markdown, tables, UI.

The answers below are written in dots.ocr's documented output format: a JSON list of
{"bbox": [x1, y1, x2, y2], "category": one of 11, "text": ...} in reading order, tables as
HTML, formulas as LaTeX, Picture without text.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from chatvlmllm.documents.layout import (
    CATEGORIES,
    LayoutElement,
    draw_layout,
    element_markdown,
    layout_extras,
    layout_markdown,
    model_input_size,
    parse_layout,
    rescale_elements,
    sanitize_table_html,
    strip_math_delimiters,
    table_csv,
    table_frames,
    to_model_coordinates,
)

TABLE_HTML = (
    "<table><thead><tr><th>Item</th><th>Qty</th><th>Price</th></tr></thead>"
    "<tbody><tr><td>Tea</td><td>2</td><td>2.50</td></tr>"
    "<tr><td>Milk</td><td>1</td><td>0070</td></tr>"
    '<tr><td colspan="2">Total</td><td>1,234.00</td></tr></tbody></table>'
)

PAGE = [
    {"bbox": [60, 28, 980, 84], "category": "Page-header", "text": "Annual report 2026"},
    {"bbox": [70, 112, 960, 170], "category": "Title", "text": "# Results"},
    {"bbox": [70, 190, 960, 260], "category": "Section-header", "text": "Revenue"},
    {"bbox": [70, 280, 960, 400], "category": "Text", "text": "Revenue **grew** by 12% over the year."},
    {"bbox": [70, 420, 960, 480], "category": "Formula", "text": "$$E = mc^2$$"},
    {"bbox": [70, 500, 960, 760], "category": "Table", "text": TABLE_HTML},
    {"bbox": [70, 780, 500, 1000], "category": "Picture"},
    {"bbox": [70, 1010, 500, 1040], "category": "Caption", "text": "Figure 1: growth"},
    {"bbox": [70, 1050, 960, 1080], "category": "List-item", "text": "- first point"},
    {"bbox": [70, 1090, 960, 1110], "category": "Footnote", "text": "1. Unaudited."},
    {"bbox": [60, 1330, 980, 1370], "category": "Page-footer", "text": "Page 1"},
]
ANSWER = json.dumps(PAGE, ensure_ascii=False)


def test_parses_every_element_in_reading_order():
    parsed = parse_layout(ANSWER)
    assert not parsed.truncated and parsed.skipped == 0
    assert [el.category for el in parsed.elements] == [item["category"] for item in PAGE]
    assert parsed.elements[6].text == ""  # Picture: text omitted by the prompt's rules
    assert parsed.elements[0].bbox == (60.0, 28.0, 980.0, 84.0)
    assert {el.category for el in parsed.elements} <= set(CATEGORIES)


def test_truncated_answer_keeps_every_complete_element():
    cut = ANSWER[: ANSWER.index('"Figure 1') + 5]  # stopped by max tokens inside the Caption's text
    parsed = parse_layout(cut)
    assert parsed.truncated
    assert [el.category for el in parsed.elements] == [item["category"] for item in PAGE[:7]]
    # Cut between two elements (after a comma): nothing lost, still flagged as unfinished.
    between = ANSWER[: ANSWER.index('{"bbox": [70, 1010')]
    parsed = parse_layout(between)
    assert parsed.truncated and len(parsed.elements) == 7
    # Cut inside the first element: nothing to show, but no exception either.
    assert parse_layout(ANSWER[:30]).elements == []


def test_fenced_single_and_malformed_answers():
    fenced = "```json\n" + ANSWER + "\n```"
    assert len(parse_layout(fenced).elements) == len(PAGE)
    single = parse_layout('{"bbox": [1, 2, 3, 4], "category": "Text", "text": "one"}')
    assert [el.text for el in single.elements] == ["one"]
    mixed = parse_layout('[{"bbox": [1, 2, 3, 4], "category": "Text", "text": "ok"}, {"category": "Text"}, 7]')
    assert len(mixed.elements) == 1 and mixed.skipped == 2
    assert parse_layout("The page shows a receipt.").elements == []
    # An unescaped quote breaks one element's JSON: only that element is lost.
    broken = ANSWER.replace('"Revenue **grew** by', '"Revenue "grew" by')
    parsed = parse_layout(broken)
    assert len(parsed.elements) == len(PAGE) - 1 and parsed.skipped == 1 and not parsed.truncated
    assert "Text" not in [el.category for el in parsed.elements]
    swapped = LayoutElement.from_dict({"bbox": [30, 40, 10, 20], "category": "Text"})
    assert swapped.bbox == (10.0, 20.0, 30.0, 40.0)


def test_model_input_size_is_the_processors_smart_resize():
    # 28-px multiples within the pixel budget, aspect ratio kept.
    w, h = model_input_size(1000, 1414)
    assert (w, h) == (1008, 1400)  # round(1000/28)=36, round(1414/28)=50 (half to even)
    w, h = model_input_size(2480, 3508, max_pixels=1_003_520)  # A4 at 300 dpi, the sdpa cap
    assert w * h <= 1_003_520 and w % 28 == 0 and h % 28 == 0
    assert abs(w / h - 2480 / 3508) < 0.03


def test_boxes_are_rescaled_to_the_original_image():
    original = (2480, 3508)
    input_size = model_input_size(*original, max_pixels=1_003_520)
    elements = [
        LayoutElement((0, 0, input_size[0], input_size[1]), "Text", "all"),
        LayoutElement((84, 56, 168, 112), "Title"),
    ]
    rescaled = rescale_elements(elements, input_size, original)
    assert rescaled[0].bbox == (0.0, 0.0, 2480.0, 3508.0)
    sx, sy = original[0] / input_size[0], original[1] / input_size[1]
    assert rescaled[1].bbox == pytest.approx((84 * sx, 56 * sy, 168 * sx, 112 * sy), abs=0.1)
    # Out-of-page coordinates are clamped to the page.
    wild = rescale_elements([LayoutElement((-5, -5, 9999, 9999), "Text")], input_size, original)
    assert wild[0].bbox == (0.0, 0.0, 2480.0, 3508.0)
    # And back, for grounding prompts.
    assert to_model_coordinates(rescaled[1].bbox, original, input_size) == [84, 56, 168, 112]


def test_overlay_is_drawn_on_the_original_image_size():
    page = Image.new("RGB", (1240, 1754), "white")
    input_size = model_input_size(*page.size, max_pixels=1_003_520)
    elements = rescale_elements(parse_layout(ANSWER).elements, (1000, 1400), page.size)
    overlay = draw_layout(page, elements)
    assert overlay.size == page.size and overlay.mode == "RGB"
    x1, y1, x2, y2 = (round(v) for v in elements[3].bbox)  # the Text block
    inside = overlay.getpixel(((x1 + x2) // 2, (y1 + y2) // 2))
    assert inside != (255, 255, 255)  # tinted box
    assert overlay.getpixel((5, page.size[1] - 5)) == (255, 255, 255)  # outside every box
    assert page.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (255, 255, 255)  # the original is untouched
    assert input_size != page.size


def test_markdown_latex_and_tables():
    elements = parse_layout(ANSWER).elements
    md = layout_markdown(elements)
    assert md.startswith("Annual report 2026\n\n# Results\n\n## Revenue")
    assert "$$\nE = mc^2\n$$" in md
    assert "<table>" in md and "<td>Tea</td>" in md
    assert "Figure 1: growth" in md
    without_furniture = layout_markdown(elements, include_page_furniture=False)
    assert "Annual report 2026" not in without_furniture and "Page 1" not in without_furniture
    assert element_markdown(LayoutElement((0, 0, 1, 1), "Picture")) == ""
    assert strip_math_delimiters("\\[ \\frac{a}{b} \\]") == "\\frac{a}{b}"
    assert strip_math_delimiters("$x^2$") == "x^2"
    assert strip_math_delimiters("x^2") == "x^2"


def test_sanitiser_strips_scripts_handlers_and_links():
    hostile = (
        '<table onclick="steal()"><tr><th style="color:red" onmouseover="x()">A</th></tr>'
        '<tr><td colspan="2"><script>alert(1)</script><a href="javascript:alert(2)">click</a>'
        '<img src=x onerror="alert(3)">ok</td></tr></table><iframe src="https://evil"></iframe>'
    )
    clean = sanitize_table_html(hostile)
    for forbidden in (
        "<script",
        "alert",
        "onclick",
        "onmouseover",
        "onerror",
        "<a",
        "javascript",
        "<img",
        "<iframe",
        "style=",
    ):
        assert forbidden not in clean, forbidden
    assert '<td colspan="2">' in clean and "ok" in clean and "<th>A</th>" in clean


def test_tables_become_dataframes_and_csv_with_text_kept_exactly():
    frames = table_frames(TABLE_HTML)
    assert len(frames) == 1
    assert list(frames[0].columns) == ["Item", "Qty", "Price"]
    assert frames[0]["Price"].tolist() == ["2.50", "0070", "1,234.00"]  # no number parsing
    csv = table_csv(TABLE_HTML)
    lines = csv.strip().splitlines()
    assert lines[0] == "Item,Qty,Price"
    assert lines[1] == "Tea,2,2.50"
    assert lines[3] == 'Total,Total,"1,234.00"'  # colspan fills both columns
    headerless = table_csv("<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>")
    assert headerless.strip().splitlines() == ["a,b", "1,2"]
    assert table_csv("<p>no table</p>") is None
    assert table_csv("<table><tr><td>Tea</td><td>2.5") == "Tea,2.5\n"  # cut off: lxml closes the cells


def test_layout_extras_for_the_answer():
    extras = layout_extras(ANSWER[:-40], (2000, 2800), (1000, 1400), "prompt_layout_all_en")
    assert extras["truncated"] and extras["image_size"] == [2000, 2800] and extras["input_size"] == [1000, 1400]
    assert extras["elements"][0] == {
        "bbox": [120, 56, 1960, 168],
        "category": "Page-header",
        "text": "Annual report 2026",
    }
    assert "# Results" in extras["markdown"]
    json.dumps(extras)  # transcripts store it as JSON


def _layout_page(elements_json: str, image_size: tuple[int, int], truncated: bool, key: str | None) -> None:
    import json

    from PIL import Image

    from ui.layout_view import render_layout

    layout = {"elements": json.loads(elements_json), "image_size": list(image_size), "truncated": truncated}
    render_layout(layout, Image.new("RGB", image_size, "white"), key=key)
    render_layout(layout["elements"][:3], None)


def test_render_layout_in_streamlit():
    from streamlit.testing.v1 import AppTest

    extras = layout_extras(
        ANSWER[: ANSWER.index('{"bbox": [60, 1330')], (1240, 1754), (1000, 1400), "prompt_layout_all_en"
    )
    app = AppTest.from_function(
        _layout_page,
        kwargs={
            "elements_json": json.dumps(extras["elements"]),
            "image_size": (1240, 1754),
            "truncated": True,
            "key": "a",
        },
    )
    app.run(timeout=30)
    assert not app.exception, app.exception
    assert len(app.warning) == 1  # truncated
    assert [latex.value for latex in app.latex] == ["$$\nE = mc^2\n$$"]  # st.latex adds its own $$, once
    markdown = " ".join(m.value for m in app.markdown)
    assert "# Results" in markdown and "Revenue **grew**" in markdown
    assert any("Annual report 2026" in c.value for c in app.caption)  # page header as a caption
    assert any("not available" in c.value for c in app.caption)  # second call: no image
    buttons = app.get("download_button")
    assert [b.key for b in buttons] == ["layout-a-table-6"]  # one CSV button per table, keyed by the caller's key
    tables = [h.proto.body for h in app.get("html")]
    assert len(tables) == 1 and tables[0].startswith("<table>") and "<td>Tea</td>" in tables[0]
    assert len(app.get("image")) == 2  # the overlay and the Picture's crop


def test_a_picture_box_without_area_does_not_break_the_page():
    """A box clamped to the page edge can have no width; the page must still render (it is in the history)."""
    from streamlit.testing.v1 import AppTest

    elements = [
        {"bbox": [1240, 10, 1240, 400], "category": "Picture", "text": ""},
        {"bbox": [10, 10, 300, 60], "category": "Text", "text": "Still here"},
    ]
    app = AppTest.from_function(
        _layout_page,
        kwargs={"elements_json": json.dumps(elements), "image_size": (1240, 1754), "truncated": False, "key": "z"},
    )
    app.run(timeout=30)
    assert not app.exception, app.exception
    assert "Still here" in " ".join(m.value for m in app.markdown)
    assert len(app.get("image")) == 1  # the overlay only: no crop of an empty box
