"""Tables from OCR line boxes only where a page is laid out as one (chatvlmllm.documents.box_table).

The synthetic cases pin the rule; the real ones run RapidOCR on receipts and table pages of
../shared/eval, the kinds of page the threshold was measured on (benchmarks/box_tables.py).
"""

from __future__ import annotations

import pytest

from chatvlmllm.documents.box_table import TABLE_LINE_SHARE, column_spans, grid_rows, read_table
from chatvlmllm.documents.reading_order import TextBox
from tests.helpers import SHARED_EVAL

LINE = 20  # line height of the synthetic boxes


def row(y: float, *cells: tuple[str, float, float]) -> list[TextBox]:
    return [TextBox(text, (x0, y, x1, y + LINE)) for text, x0, x1 in cells]


def price_list(rows: int) -> list[list[TextBox]]:
    """A left-aligned text column, a centred code column and a right-aligned number column, as a printed
    table has."""
    header = row(0, ("Item", 10, 60), ("Code", 150, 190), ("Price", 250, 300))
    body = [
        row(
            30 * (i + 1),
            (f"Item number {i}", 10, 90 + 3 * i),  # ragged right edges, as text is
            (f"C{i}", 160 - i, 180 + i),
            (f"{i}.99", 262 - 4 * i, 300),
        )
        for i in range(rows)
    ]
    return [header, *body]


def test_a_page_of_aligned_rows_is_a_table_with_its_header():
    table = read_table(price_list(5))
    assert table.found and table.line_share == 1.0 and table.columns == 3 and table.why_not() == ""
    assert table.cells[0] == ["Item", "Code", "Price"] and table.cells[3] == ["Item number 2", "C2", "2.99"]
    assert table.markdown().splitlines()[:2] == ["| Item | Code | Price |", "|---|---|---|"]


def test_a_title_above_the_table_is_not_a_row_of_it():
    rows = [row(-60, ("PRICE LIST 2026", 80, 220)), *price_list(8)]
    table = read_table(rows)
    assert table.found and table.cells[0] == ["Item", "Code", "Price"]  # the title is not forced into a cell


def test_two_columns_side_by_side_are_text_not_a_table():
    """A line-numbered transcript: every line is a number and a line of text, all perfectly aligned."""
    rows = [row(30 * i, (str(i + 1), 10, 30), (f"words of line {i + 1} of the testimony", 60, 400)) for i in range(20)]
    table = read_table(rows)
    assert not table.found and table.line_share == 1.0 and table.columns == 2
    assert "2 columns only" in table.why_not() and "at least 3" in table.why_not()


def test_a_receipt_shape_is_no_table():
    """Centred header lines, item lines, a few "label  amount" lines, a footer: mostly single lines."""
    centred = [row(30 * i, (text, 150 - 5 * len(text), 150 + 5 * len(text))) for i, text in enumerate(
        ["SHOP SDN BHD", "NO 5 JALAN SAGU", "81100 JOHOR", "CASH BILL", "KF MODELLING CLAY", "PENCIL 2B"]
    )]  # fmt: skip
    totals = [row(200 + 30 * i, (label, 20, 90), (amount, 250, 290)) for i, (label, amount) in enumerate(
        [("Total", "9.00"), ("Cash", "10.00"), ("Change", "1.00")]
    )]  # fmt: skip
    footer = [row(300, ("THANK YOU", 100, 200)), row(330, ("PLEASE COME AGAIN", 60, 240))]
    table = read_table([*centred, *totals, *footer])
    assert not table.found and table.cells == [] and table.markdown() == ""
    assert table.line_share == pytest.approx(3 / 11)  # the three total lines line up; nothing else does
    assert table.why_not().startswith("only 27% of the text lines on this page line up in columns")


def test_misaligned_cells_are_not_grid_rows():
    rows = [row(30 * i, ("a", 10 + 40 * i, 30 + 40 * i), ("b", 200 + 55 * i, 230 + 55 * i)) for i in range(6)]
    assert grid_rows(rows) == set() and not read_table(rows).found


def test_a_cell_crossing_a_gutter_does_not_merge_the_columns():
    rows = price_list(12)
    rows.append(row(400, ("A long description that runs into the price column", 10, 280)))
    rows.append(row(430, ("Total", 10, 60), ("all", 160, 180), ("99.00", 250, 300)))
    spans = column_spans([rows[i] for i in grid_rows(rows)] + [rows[-2]])
    assert len(spans) == 3  # one crossing among fourteen rows leaves the gutters gutters


def test_nothing_read_is_no_table():
    assert not read_table([]).found and read_table([]).line_share == 0.0


# -- real pages ---------------------------------------------------------------------------


def eval_rows(item: str) -> list[list[TextBox]]:
    from chatvlmllm.documents.loading import open_document
    from chatvlmllm.engines._ocr_readers import RapidReader

    found = sorted((SHARED_EVAL / "images").glob(f"{item}.*"))
    if not found:
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    return RapidReader().read(open_document(found[0]).page(0).convert("RGB"))


@pytest.mark.slow
@pytest.mark.parametrize("item", ["receipt_000", "receipt_014", "receipt_134"])
def test_real_receipts_are_not_tables(item):
    """receipt_000 is the one the offline answer once forced into three columns; 014 and 134 have the most
    lines in columns of the 20 receipts (their item lists)."""
    table = read_table(eval_rows(item))
    assert not table.found and 0 < table.line_share < TABLE_LINE_SHARE


@pytest.mark.slow
def test_a_real_line_numbered_transcript_is_not_a_table():
    """A deposition page: RapidOCR reads each line as its number and its text, aligned on every line."""
    table = read_table(eval_rows("page_deposition_02"))
    assert not table.found and table.columns == 2


@pytest.mark.slow
def test_a_real_table_page_is_a_table_with_its_columns():
    table = read_table(eval_rows("page_table_02"))  # a bank statement: 6 columns, some cells empty
    assert table.found and table.line_share >= TABLE_LINE_SHARE
    assert table.cells[0] == ["Date", "Description", "Number", "Debits", "Credits", "Balance"]
    cheque = next(cells for cells in table.cells if "4987" in cells)
    assert cheque[:4] == ["01Aug2018", "Clearing Cheque", "4987", "36.07"] and cheque[4] == ""
    assert all(len(cells) == 6 for cells in table.cells)
