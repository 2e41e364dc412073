"""How the page words and measures an answer under way (ui/answer_job.py): the progress bar keeps moving
while a page is read, and never shows a page as read before it is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatvlmllm.engines.base import Progress
from ui import answer_job


def under_way(done: int, total: int, started: float, step_at: float) -> SimpleNamespace:
    """What `fraction` reads of an Answer: its current step and when its engine got the request."""
    return SimpleNamespace(progress=Progress(done=done, total=total, at=step_at), stream_started=started)


def test_the_bar_moves_within_a_page_at_the_pace_of_the_pages_before():
    answer = under_way(done=1, total=4, started=100.0, step_at=108.0)  # page 1 took 8 s; page 2 began at 108
    assert answer_job.fraction(answer, now=108.0) == pytest.approx(1 / 4)
    assert answer_job.fraction(answer, now=112.0) == pytest.approx(1.5 / 4)  # half of page 2's expected 8 s
    # A page slower than the ones before stops short of being shown as read.
    assert answer_job.fraction(answer, now=200.0) == pytest.approx((1 + answer_job.WITHIN_PAGE_MAX) / 4)


def test_before_the_first_page_is_read_and_at_the_end_the_bar_says_what_is_known():
    assert answer_job.fraction(under_way(0, 4, 100.0, 100.0), now=130.0) == 0.0  # no pace known yet
    assert answer_job.fraction(under_way(4, 4, 100.0, 130.0), now=131.0) == 1.0
    assert answer_job.fraction(SimpleNamespace(progress=None, stream_started=0.0)) is None
