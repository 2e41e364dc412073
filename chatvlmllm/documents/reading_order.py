"""Reading order for OCR line boxes: columns of prose top to bottom, tables and receipts row by row.

Detectors return boxes in no useful order, and reading order is where most of the character
error rate of a classic OCR engine is lost. This is a recursive XY-cut with two twists:

- a vertical whitespace gutter splits a region into columns only when the two sides read as
  independent columns: their lines do not line up, or both sides are prose (several words per
  line, each side a good part of the width). Receipts and tables have gutters too (labels on the
  left, amounts on the right), but their boxes line up in rows, and a person reads them row by row;
- otherwise the region is cut into horizontal bands at full-width gaps, and consecutive bands that
  share a gutter (two columns whose lines happen to align) are regrouped, so that the column test
  sees the whole column block, not one line at a time. When one such block is the whole region
  (a heading spanning columns, or a table), it is cut at its widest horizontal gap instead;
- what cannot be cut further is read as rows: boxes chained left to right by vertical overlap.

Measured on ../shared/eval with RapidOCR's boxes (docs/benchmark.md): pages CER 0.438 in the
detector's own order → 0.363; receipts unchanged (0.309), as their order was already row by row.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A box joins a row when it overlaps the row's last box by this share of the smaller height.
ROW_OVERLAP = 0.5
# Two sides of a gutter are "aligned" (a table) when this share of the smaller side's boxes has a
# partner at the same height across the gutter.
ALIGNED_SHARE = 0.5
# Prose: this many words per line (median) and this share of the region's width on each side.
PROSE_WORDS = 3
PROSE_WIDTH_SHARE = 0.2
# The narrowest gutter, in median line heights (word gaps are about a third of one).
MIN_GUTTER_LINE_HEIGHTS = 0.8


@dataclass(frozen=True)
class TextBox:
    """One detected piece of text with its axis-aligned box (x0, y0, x1, y1) in pixels."""

    text: str
    box: tuple[float, float, float, float]
    score: float = 1.0

    @property
    def x0(self) -> float:
        return self.box[0]

    @property
    def y0(self) -> float:
        return self.box[1]

    @property
    def x1(self) -> float:
        return self.box[2]

    @property
    def y1(self) -> float:
        return self.box[3]

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)

    @property
    def width(self) -> float:
        return max(self.x1 - self.x0, 1.0)


def box_from_points(points: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The axis-aligned box around a polygon (detectors return four corner points)."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def reading_order(boxes: Sequence[TextBox]) -> list[list[TextBox]]:
    """Text lines in reading order; each line is a row of boxes, left to right."""
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return []
    line_height = statistics.median(b.height for b in boxes)
    return _order(boxes, line_height)


def lines_text(lines: Sequence[Sequence[TextBox]]) -> str:
    """One text line per row, boxes of a row joined by a space."""
    return "\n".join(" ".join(b.text.strip() for b in row) for row in lines)


# -- the recursion -------------------------------------------------------------------------


def _order(boxes: list[TextBox], line_height: float) -> list[list[TextBox]]:
    if len(boxes) <= 1:
        return [boxes] if boxes else []
    cut = _column_cut(boxes, line_height)
    if cut is not None:
        left = [b for b in boxes if b.x1 <= cut]
        right = [b for b in boxes if b.x1 > cut]
        return _order(left, line_height) + _order(right, line_height)
    bands = _bands(boxes)
    if len(bands) == 1:
        return _rows(boxes)
    groups = _group_bands_sharing_a_gutter(bands, line_height)
    if len(groups) > 1:
        return [row for group in groups for row in _order([b for band in group for b in band], line_height)]
    # One block shares a gutter the column test refused: a table, a receipt, or columns under a
    # heading that spans them. Cut at the widest horizontal gap (classic XY-cut) and look again.
    split = _widest_horizontal_gap(boxes)
    if split is None:  # every line overlaps another vertically: no gap to cut at
        return _rows(boxes)
    above = [b for b in boxes if (b.y0 + b.y1) / 2 <= split]
    below = [b for b in boxes if (b.y0 + b.y1) / 2 > split]
    return _order(above, line_height) + _order(below, line_height)


def _widest_horizontal_gap(boxes: list[TextBox]) -> float | None:
    """The middle of the widest full-width horizontal gap (a header above columns, say), if any."""
    gaps = _free_intervals([(b.y0, b.y1) for b in boxes])
    if not gaps:
        return None
    top, bottom = max(gaps, key=lambda g: g[1] - g[0])
    return (top + bottom) / 2


def _overlap_share(a: TextBox, b: TextBox) -> float:
    """Vertical overlap as a share of the smaller height."""
    return (min(a.y1, b.y1) - max(a.y0, b.y0)) / min(a.height, b.height)


def _rows(boxes: list[TextBox]) -> list[list[TextBox]]:
    """Chain boxes into rows left to right, each joining the row whose last box it overlaps most.

    Comparing with the row's last box (not the row's whole span) follows the slight tilt of a
    photographed receipt without swallowing the next line.
    """
    rows: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.x0):
        best, best_share = None, ROW_OVERLAP
        for row in rows:
            last = row[-1]
            share = _overlap_share(last, box)
            if last.x0 < box.x0 and share >= best_share:
                best, best_share = row, share
        if best is None:
            rows.append([box])
        else:
            best.append(box)
    return sorted(rows, key=lambda row: (row[0].y0 + row[0].y1) / 2)


def _free_intervals(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Gaps between the union of the given intervals, inside their overall extent."""
    gaps = []
    spans = sorted(spans)
    reach = spans[0][1]
    for start, end in spans[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def _bands(boxes: list[TextBox]) -> list[list[TextBox]]:
    """Split at every full-width horizontal gap, top to bottom."""
    gaps = _free_intervals([(b.y0, b.y1) for b in boxes])
    cuts = [(top + bottom) / 2 for top, bottom in gaps]
    bands: list[list[TextBox]] = [[] for _ in range(len(cuts) + 1)]
    for box in boxes:
        bands[sum(1 for c in cuts if (box.y0 + box.y1) / 2 > c)].append(box)
    return [band for band in bands if band]


def _column_cut(boxes: list[TextBox], line_height: float) -> float | None:
    """The x of the widest gutter that separates two independent columns, if any."""
    min_gutter = MIN_GUTTER_LINE_HEIGHTS * line_height
    gaps = [g for g in _free_intervals([(b.x0, b.x1) for b in boxes]) if g[1] - g[0] >= min_gutter]
    for start, end in sorted(gaps, key=lambda g: g[0] - g[1]):  # widest first
        cut = (start + end) / 2
        left = [b for b in boxes if b.x1 <= cut]
        right = [b for b in boxes if b.x1 > cut]
        if _independent_columns(left, right, boxes):
            return cut
    return None


def _independent_columns(left: list[TextBox], right: list[TextBox], region: list[TextBox]) -> bool:
    if not _aligned(left, right):
        return True
    region_width = max(b.x1 for b in region) - min(b.x0 for b in region)
    return _prose(left, region_width) and _prose(right, region_width)


def _aligned(left: list[TextBox], right: list[TextBox]) -> bool:
    """Do the boxes of the smaller side have partners at the same height on the other side?"""
    fewer, more = (left, right) if len(left) <= len(right) else (right, left)
    partnered = sum(
        1
        for a in fewer
        if any(min(a.y1, b.y1) - max(a.y0, b.y0) >= ROW_OVERLAP * min(a.height, b.height) for b in more)
    )
    return partnered >= ALIGNED_SHARE * len(fewer)


def _prose(side: list[TextBox], region_width: float) -> bool:
    side_width = max(b.x1 for b in side) - min(b.x0 for b in side)
    words = statistics.median(len(b.text.split()) for b in side)
    return words >= PROSE_WORDS and side_width >= PROSE_WIDTH_SHARE * region_width


def _group_bands_sharing_a_gutter(bands: list[list[TextBox]], line_height: float) -> list[list[list[TextBox]]]:
    """Consecutive bands whose free x-intervals keep a common gutter form one group."""
    x0 = min(b.x0 for band in bands for b in band)
    x1 = max(b.x1 for band in bands for b in band)
    min_gutter = MIN_GUTTER_LINE_HEIGHTS * line_height
    groups: list[list[list[TextBox]]] = []
    shared: list[tuple[float, float]] = []
    for band in bands:
        free = _free_intervals([(x0 - 1, x0), *((b.x0, b.x1) for b in band), (x1, x1 + 1)])
        common = _intersect(shared, free, min_gutter) if groups else []
        if common:
            groups[-1].append(band)
            shared = common
        else:
            groups.append([band])
            shared = [g for g in free if g[1] - g[0] >= min_gutter]
    return groups


def _intersect(
    a: list[tuple[float, float]], b: list[tuple[float, float]], min_width: float
) -> list[tuple[float, float]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            start, end = max(s1, s2), min(e1, e2)
            if end - start >= min_width:
                out.append((start, end))
    return out
