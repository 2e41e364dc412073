"""The Benchmark page (pages/2_Benchmark.py) driven by Streamlit's AppTest: a real run on a small folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatvlmllm.eval.benchmark import default_results_path
from tests.eval.test_benchmark import make_eval_folder

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "2_Benchmark.py")


@pytest.mark.slow
def test_the_page_runs_a_benchmark_and_shows_the_results(tmp_path):
    folder = make_eval_folder(tmp_path / "eval")
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert any("No results yet" in info.value for info in at.info)
    assert set(at.multiselect(key="bench_models").value) == {"ocr_auto", "rapidocr", "tesseract"}  # offline default
    at.text_input(key="bench_folder").set_value(str(folder))
    at.multiselect(key="bench_models").set_value(["rapidocr"])
    at.number_input(key="bench_items").set_value(2)  # one receipt, one line
    at.button(key="bench_run").click().run()
    assert not at.exception and not at.error
    assert any("Saved" in s.value for s in at.success)
    saved = json.loads(default_results_path().read_text(encoding="utf-8"))
    assert saved["models"]["rapidocr"]["n"] == 2 and saved["limit"] == 2
    assert len(at.dataframe) == 2  # overall, by kind
    assert at.dataframe[0].value.index.tolist() == ["rapidocr"]
    # A fresh visit shows the saved run.
    again = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not again.exception and len(again.dataframe) == 2


def test_a_folder_that_is_not_an_eval_set_is_a_clear_error(tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="bench_folder").set_value(str(tmp_path))
    at.button(key="bench_run").click().run()
    assert not at.exception
    assert any("not an evaluation folder" in e.value for e in at.error)


@pytest.mark.slow
def test_results_read_in_plain_words_and_charts_start_at_zero(tmp_path):
    from chatvlmllm.eval.benchmark import run_benchmark, write_results

    results = run_benchmark(str(make_eval_folder(tmp_path / "eval")), ["rapidocr"], limit=2)
    write_results(results, default_results_path())  # what the page shows on a fresh visit
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    intro = at.markdown[0].value
    assert "share of characters wrong, missing or extra" in intro and "lower is better" in intro  # CER explained
    assert "ANLS" in intro and "closeness" in intro
    assert "character errors (CER)" in at.dataframe[0].value.columns  # headers in words, not cer_nocase
    charts = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    assert len(charts) == 3  # errors and words by kind, seconds per page
    for spec in charts:
        y = spec["encoding"]["y"]
        assert y["scale"]["domain"][0] == 0 and y["scale"]["zero"] is True  # never below 0
        assert y["scale"]["domain"][1] > 0 and y["axis"]["tickCount"] == 5
    latency = charts[2]
    assert latency["title"] == "Seconds per page (lower is better)"
