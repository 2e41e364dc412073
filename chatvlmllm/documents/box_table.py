"""A table from OCR line boxes, only where the page really is one.

An OCR engine sees text lines and where they sit, not tables. Many pages have some lines with
several cells (a receipt's "Total  9.00", a form's "Date: 12/03"), so "find columns, fill them" turns a
whole receipt into a three-column table. The signal used here is column alignment across rows:

- a row is a *grid row* when it has two or more cells and every cell has an edge (left, right or
  centre: text columns are left-aligned, numbers right-aligned, headings centred) within
  `ALIGN_TOLERANCE_HEIGHTS` line heights of the same edge of cells in at least `COLUMN_MIN_ROWS` rows;
- a page is a table when most of its lines are grid rows (`TABLE_LINE_SHARE`) and those rows make at
  least `MIN_COLUMNS` columns: two columns of text side by side (a line-numbered transcript, prose in
  two columns, a list of labels and values) read as text, not as a table.

Measured with RapidOCR's rows on ../shared/eval (benchmarks/box_tables.py prints the figures): the four
table pages and a financial statement have 0.87-1.00 of their lines on the grid, in 4 to 7 columns; the
20 receipts 0.15-0.73 (their address, item names and footers are single lines); prose, chart, slide
and filing pages 0.67 or less, except a line-numbered deposition page (0.83, in two columns: the line
numbers and the text). The threshold sits between the two groups. A page that is half prose, half table
reads as no table: the answer says so, and a vision-language model reads such pages.
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chatvlmllm.documents.reading_order import TextBox
from chatvlmllm.i18n import _, ngettext

log = logging.getLogger(__name__)

TABLE_LINE_SHARE = 0.8
ALIGN_TOLERANCE_HEIGHTS = 0.75
COLUMN_MIN_ROWS = 3
MIN_COLUMNS = 3
# A gap between two columns may be crossed by the cells of at most this share of the grid rows.
GUTTER_CROSSINGS = 0.1

Row = Sequence[TextBox]
_EDGES: tuple[Callable[[TextBox], float], ...] = (
    lambda box: box.x0,
    lambda box: box.x1,
    lambda box: (box.x0 + box.x1) / 2,
)


@dataclass(frozen=True)
class BoxTable:
    """What the boxes of one page say about a table: the share of lines on a grid, and the cells if it is one."""

    line_share: float  # share of the page's text lines that are grid rows
    columns: int  # columns the grid rows make (0: no grid)
    cells: list[list[str]]  # rows of cells, header first; empty when the page is not a table

    @property
    def found(self) -> bool:
        return bool(self.cells)

    def why_not(self) -> str:
        """Why this page is not read as a table, in words for the answer ("" when it is one)."""
        if self.found:
            return ""
        if self.line_share < TABLE_LINE_SHARE:
            return _(
                "only {share} of the text lines on this page line up in columns (a table page has at least {least})"
            ).format(share=f"{self.line_share:.0%}", least=f"{TABLE_LINE_SHARE:.0%}")
        return ngettext(
            "its lines line up in {count} column only (numbered lines or text side by side); a table has at least "
            "{least}",
            "its lines line up in {count} columns only (numbered lines or text side by side); a table has at least "
            "{least}",
            self.columns,
        ).format(count=self.columns, least=MIN_COLUMNS)

    def markdown(self) -> str:
        """A GitHub pipe table (pipes in cells escaped); empty when no table was found."""
        if not self.cells:
            return ""
        header, *body = self.cells

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        return "\n".join([line(header), "|" + "---|" * len(header), *(line(cells) for cells in body)])


def read_table(rows: Sequence[Row]) -> BoxTable:
    """The table of one page's rows (reading order, left to right), or why there is none."""
    lines = [row for row in rows if any(box.text.strip() for box in row)]
    on_grid = grid_rows(lines)
    share = len(on_grid) / len(lines) if lines else 0.0
    columns = column_spans([lines[i] for i in sorted(on_grid)]) if on_grid else []
    if share < TABLE_LINE_SHARE or len(columns) < MIN_COLUMNS:
        return BoxTable(share, len(columns), [])
    first, last = min(on_grid), max(on_grid)
    span = lines[first : last + 1]  # the table: a title above or a footer below is not part of it
    return BoxTable(share, len(columns), [_cells(row, columns) for row in span])


def grid_rows(rows: Sequence[Row]) -> set[int]:
    """Indices of the rows whose cells all line up with cells of other rows (see the module doc)."""
    multi = [index for index, row in enumerate(rows) if len(row) > 1]
    if len(multi) < 2:
        return set()
    tolerance = ALIGN_TOLERANCE_HEIGHTS * statistics.median(box.height for i in multi for box in rows[i])
    aligned: set[tuple[int, int]] = set()
    for edge in _EDGES:
        positions = sorted((edge(box), (i, j)) for i in multi for j, box in enumerate(rows[i]))
        for group in _runs(positions, tolerance):
            if len({i for _position, (i, _j) in group}) >= COLUMN_MIN_ROWS:
                aligned.update(cell for _position, cell in group)
    return {i for i in multi if all((i, j) in aligned for j in range(len(rows[i])))}


def _runs(
    positions: Sequence[tuple[float, tuple[int, int]]], tolerance: float
) -> list[list[tuple[float, tuple[int, int]]]]:
    """Sorted positions split where the gap to the previous one is wider than `tolerance`."""
    groups: list[list[tuple[float, tuple[int, int]]]] = []
    for item in positions:
        if groups and item[0] - groups[-1][-1][0] <= tolerance:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def column_spans(rows: Sequence[Row]) -> list[tuple[float, float]]:
    """The columns, left to right: the x ranges covered by the cells of more than a few of the rows.

    The gutters between columns are what is left. A few cells may cross a gutter (a long name, a
    heading over two columns: `GUTTER_CROSSINGS`) without joining the columns on either side.
    """
    cells = [(box.x0, box.x1) for row in rows for box in row]
    allowed = GUTTER_CROSSINGS * len(rows)
    edges = sorted({x for cell in cells for x in cell})
    spans: list[tuple[float, float]] = []
    for left, right in itertools.pairwise(edges):
        middle = (left + right) / 2
        if sum(1 for x0, x1 in cells if x0 <= middle <= x1) <= allowed:
            continue  # a gutter
        if spans and spans[-1][1] == left:
            spans[-1] = (spans[-1][0], right)
        else:
            spans.append((left, right))
    return spans


def _cells(row: Row, columns: Sequence[tuple[float, float]]) -> list[str]:
    """One row's text per column: each box goes to the column it overlaps most (or is nearest to)."""
    cells = [""] * len(columns)
    for box in row:
        index = max(range(len(columns)), key=lambda i: _overlap(box, columns[i]))
        cells[index] = (cells[index] + " " + box.text.strip()).strip()
    return cells


def _overlap(box: TextBox, column: tuple[float, float]) -> float:
    """How much of the box lies in the column; negative (the distance) when it lies outside."""
    return min(box.x1, column[1]) - max(box.x0, column[0])
