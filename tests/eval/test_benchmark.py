"""Benchmark metrics and runner: hand-checked metric values, the eval folder reader, and real runs
of rapidocr and a tiny chat checkpoint over a small folder written in ../shared/eval's layout."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from chatvlmllm.errors import ModelNotFoundError, UserError
from chatvlmllm.eval import metrics as em
from chatvlmllm.eval.benchmark import (
    SUMMARY_COLUMNS,
    SUMMARY_LABELS,
    Outcome,
    _run_all,
    latency_rows,
    load_eval_set,
    markdown_table,
    read_results,
    run_benchmark,
    summary_rows,
    write_results,
)
from tests.helpers import SHARED_EVAL, text_image, write_models_file

REQUIRED_MODEL_KEYS = {"cer", "word_f1", "qa_exact", "latency_median_s", "latency_p95_s", "pages_per_s", "n", "by_kind"}


def make_eval_folder(root: Path) -> Path:
    """Three rendered pages in the shared eval layout, two kinds, and two questions on the first."""
    pages = {
        # A closing line gives the script probe enough distinctive Latin letters (h, n, k, y, u, m, g, i)
        # to be sure: without it "SHOP 42 TOTAL 12.50" is too short to tell, and goes to Tesseract rus+eng.
        "receipt_a": ("receipt", ["SHOP 42", "TOTAL 12.50", "Thank you, come again"]),
        "receipt_b": ("receipt", ["CAFE NORD", "TOTAL 3.20", "Thank you, come again"]),
        "line_a": ("text_line", ["HELLO WORLD"]),
    }
    (root / "images").mkdir(parents=True)
    (root / "truth").mkdir()
    manifest = []
    for item_id, (kind, lines) in pages.items():
        text_image(lines).save(root / "images" / f"{item_id}.png")
        (root / "truth" / f"{item_id}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        manifest.append(
            {
                "id": item_id,
                "image": f"images/{item_id}.png",
                "truth": f"truth/{item_id}.txt",
                "lang": "en",
                "kind": kind,
            }
        )
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(m) for m in manifest) + "\n", encoding="utf-8")
    questions = [
        {"id": "receipt_a", "question": "What is the total?", "answers": ["12.50"], "field": "total"},
        {"id": "receipt_a", "question": "Which shop?", "answers": ["SHOP 42"], "field": "company"},
    ]
    (root / "qa.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory) -> Path:
    return make_eval_folder(tmp_path_factory.mktemp("eval"))


# -- metrics ----------------------------------------------------------------------------------


def test_cer_counts_edits_on_whitespace_normalised_text():
    assert em.cer("TOTAL 12.50", "TOTAL 12.50") == 0.0
    assert em.cer("TOTAL\n\n 12.50  ", "TOTAL 12.50") == 0.0  # layout whitespace does not count
    assert em.cer("TOTAL 12.5O", "TOTAL 12.50") == pytest.approx(1 / 11)
    assert em.cer("total 12.50", "TOTAL 12.50") == pytest.approx(5 / 11)  # case counts
    assert em.cer("", "abc") == 1.0
    assert em.cer("", "") == 0.0 and em.cer("x", "") == 1.0
    assert em.cer("abcabc", "abc") == 1.0  # insertions can take it to (and past) 1


def test_word_f1_ignores_order_but_not_counts():
    assert em.word_f1("b a c", "a b c") == 1.0
    assert em.word_f1("a a", "a") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert em.word_f1("a b", "a c") == pytest.approx(0.5)
    assert em.word_f1("", "a") == 0.0 and em.word_f1("", "") == 1.0
    assert em.word_f1("Total: 12.50", "TOTAL 12 50") == 1.0  # words, not case or punctuation
    assert em.word_f1("были автором", "Были, автором!") == 1.0


def test_qa_exact_match_and_anls():
    assert em.exact_match("  25/12/2018. ", ["25/12/2018"]) == 1.0
    assert em.exact_match("Total: 9.00", ["9.00"]) == 0.0
    assert em.exact_match("book ta.k sdn bhd", ["x", "BOOK TA .K SDN BHD"]) == 1.0
    assert em.anls("9.00", ["9.00"]) == 1.0
    assert em.anls("9.0O", ["9.00"]) == pytest.approx(0.75)
    assert em.anls("something else", ["9.00"]) == 0.0  # below the 0.5 threshold
    assert em.anls("abcd", ["zzzz", "abcx"]) == pytest.approx(0.75)  # best accepted answer


def test_percentiles_and_means():
    assert em.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert em.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert em.percentile([], 50) is None
    assert em.mean([1.0, None, 3.0]) == 2.0 and em.mean([None]) is None


# -- the evaluation folder --------------------------------------------------------------------


def test_the_shared_eval_folder_is_read():
    if not (SHARED_EVAL / "manifest.jsonl").is_file():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    eval_set = load_eval_set(SHARED_EVAL)
    assert len(eval_set.items) == 55 and len(eval_set.qa) == 80
    assert {"receipt", "text_line", "table", "multicol"} <= {item.kind for item in eval_set.items}
    assert {item.lang for item in eval_set.items} == {"en", "ru"}
    assert all(item.truth.strip() and item.image.is_file() for item in eval_set.items)
    short = eval_set.limited(8)
    assert len(short.items) == 8 and len({item.kind for item in short.items}) == 8  # one of each kind first
    assert {q.id for q in short.qa} <= {item.id for item in short.items}


def test_limit_takes_items_in_turn_from_each_kind(eval_folder):
    eval_set = load_eval_set(eval_folder)
    assert [item.id for item in eval_set.limited(2).items] == ["receipt_a", "line_a"]
    assert eval_set.limited(None) is eval_set and eval_set.limited(10) is eval_set
    assert [q.field for q in eval_set.limited(2).qa] == ["total", "company"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root: (root / "manifest.jsonl").unlink(), "not an evaluation folder"),
        (lambda root: (root / "manifest.jsonl").write_text('{"id": "x"\n', encoding="utf-8"), "line 1: not valid JSON"),
        (lambda root: (root / "truth" / "line_a.txt").unlink(), "which does not exist"),
        (lambda root: (root / "manifest.jsonl").write_text('{"id": "x", "image": "a.png"}\n'), "missing truth"),
        (lambda root: (root / "manifest.jsonl").write_text("\n"), "lists no items"),
        (
            lambda root: (root / "qa.jsonl").write_text('{"id": "nope", "question": "q?", "answers": ["a"]}\n'),
            "question 1: id 'nope' is not in manifest.jsonl",
        ),
    ],
)
def test_a_broken_folder_is_a_clear_user_error(tmp_path, breakage, message):
    root = make_eval_folder(tmp_path / "eval")
    breakage(root)
    with pytest.raises(UserError, match=message):
        load_eval_set(root)


# -- running ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_rapidocr_benchmark_has_every_field_and_no_qa(eval_folder):
    progress: list[tuple[int, int, str]] = []
    results = run_benchmark(eval_folder, ["rapidocr"], progress=lambda *p: progress.append(p))
    metrics = results["models"]["rapidocr"]
    assert set(metrics) >= REQUIRED_MODEL_KEYS
    assert metrics["n"] == 3 and metrics["errors"] == 0
    assert metrics["cer"] < 0.1 and metrics["word_f1"] > 0.9  # clean rendered text is read
    assert metrics["qa_exact"] is None and metrics["anls"] is None  # OCR-only: QA does not apply
    assert set(metrics["by_kind"]) == {"receipt", "text_line"}
    assert metrics["by_kind"]["receipt"]["n"] == 2 and set(metrics["by_kind"]["receipt"]) >= {"cer", "word_f1", "n"}
    assert 0 < metrics["latency_median_s"] <= metrics["latency_p95_s"] and metrics["pages_per_s"] > 0
    assert metrics["peak_rss_mb"] > 0 and metrics["device"] == "cpu"
    assert [item["id"] for item in metrics["items"]] == ["receipt_a", "receipt_b", "line_a"]
    assert [p[0] for p in progress] == [1, 2, 3] and {p[1] for p in progress} == {3}
    assert results["n_items"] == 3 and results["machine"]["cpu_count"] >= 1


@pytest.mark.slow
def test_a_model_the_chat_already_holds_is_reused_and_kept(eval_folder, tiny_qwen2_vl):
    """The Benchmark page shares the app's process: no second copy of loaded weights, and the chat keeps its model."""
    from chatvlmllm.chat.engine_cache import default_cache
    from chatvlmllm.models.catalog import load_catalog
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    write_models_file(
        Path(os.environ["CHATVLMLLM_MODELS_FILE"]), {"held": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}}
    )
    spec = load_catalog()["held"]
    plan = plan_load(probe(), spec)
    cache = default_cache()
    cache.unload("rapidocr")  # other tests may have left it loaded; here only the bench may load it
    engine = cache.get(spec, plan)
    loads = dict(cache.load_counts)
    try:
        results = run_benchmark(eval_folder, ["held", "rapidocr"], limit=1)
        assert results["models"]["held"]["n"] == 1 and results["models"]["rapidocr"]["n"] == 1
        assert cache.load_counts["held"] == loads["held"]  # reused, not loaded again
        assert cache.peek(spec, plan) is engine  # still there for the chat
        assert "rapidocr" not in {e.model for e in cache.loaded()}  # the bench unloads what it loaded
    finally:
        cache.unload("held")


def test_a_chat_model_gets_qa_scores_and_a_broken_one_an_error(eval_folder, tiny_qwen2_vl, tmp_path):
    write_models_file(
        Path(os.environ["CHATVLMLLM_MODELS_FILE"]),
        {
            "tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)},
            "broken": {"family": "qwen2_vl", "path": str(tmp_path / "empty")},
        },
    )
    results = run_benchmark(eval_folder, ["broken", "tiny"], limit=2, concurrency=2)
    broken, tiny = results["models"]["broken"], results["models"]["tiny"]
    assert "failed to load" in broken["error"] and broken["cer"] is None and broken["n"] == 0
    assert tiny["n"] == 2 and tiny["qa_n"] == 2  # the two questions on receipt_a
    # Random tiny weights: the scores are numbers in range, not meaningful values.
    assert 0.0 <= tiny["qa_exact"] <= 1.0 and 0.0 <= tiny["anls"] <= 1.0
    assert tiny["cer"] is not None and tiny["concurrency"] == 2
    assert results["concurrency"] == 2 and results["limit"] == 2


def test_concurrency_keeps_n_requests_in_flight():
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def job() -> Outcome:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return Outcome(text="x", seconds=0.05)

    outcomes, _ = _run_all([job] * 6, 3, None, "", 0, 6)
    assert len(outcomes) == 6 and peak == 3  # three at once, never more: overlapped, not one after the other


def test_unknown_models_and_bad_options_fail_before_any_work(eval_folder):
    with pytest.raises(ModelNotFoundError, match="nope"):
        run_benchmark(eval_folder, ["rapidocr", "nope"])
    with pytest.raises(UserError, match="--limit"):
        run_benchmark(eval_folder, ["rapidocr"], limit=0)
    with pytest.raises(UserError, match="--concurrency"):
        run_benchmark(eval_folder, ["rapidocr"], concurrency=0)


def test_results_are_written_as_json_and_csv_and_read_back(tmp_path):
    results = {
        "models": {
            "m": {
                "cer": 0.1,
                "word_f1": 0.9,
                "qa_exact": None,
                "latency_median_s": 1.0,
                "latency_p95_s": 2.0,
                "pages_per_s": 0.5,
                "n": 2,
                "by_kind": {"receipt": {"cer": 0.1, "word_f1": 0.9, "n": 2}},
            }
        }
    }
    json_path, csv_path = write_results(results, tmp_path / "out" / "bench.json")
    assert read_results(json_path) == results
    table = pd.read_csv(csv_path)
    assert list(table["kind"]) == ["all", "receipt"] and list(table["model"]) == ["m", "m"]
    assert summary_rows(results)[0]["cer"] == 0.1
    markdown = markdown_table(results).splitlines()
    assert markdown[2] == "| m | **all** | 2 | 0.100 | — | 0.900 | 1.00 | 2.00 | 0.50 | — |"
    assert markdown[3].startswith("| m | receipt | 2 | 0.100 |")
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError, match="not a benchmark results file"):
        read_results(tmp_path / "bad.json")
    with pytest.raises(UserError, match="No benchmark results"):
        read_results(tmp_path / "missing.json")


@pytest.mark.slow
def test_an_unreadable_page_is_one_failed_item_not_a_failed_run(tmp_path):
    folder = make_eval_folder(tmp_path / "eval")
    (folder / "images" / "line_a.png").write_bytes(b"not a png")
    metrics = run_benchmark(folder, ["rapidocr"])["models"]["rapidocr"]
    assert metrics["n"] == 3 and metrics["errors"] == 1
    failed = next(item for item in metrics["items"] if item["id"] == "line_a")
    assert failed["error"] and failed["cer"] == 1.0 and failed["word_f1"] == 0.0
    assert metrics["by_kind"]["receipt"]["cer"] < 0.1  # the others were read


def test_latency_rows_name_the_two_figures_and_skip_missing_ones():
    results = {
        "models": {
            "fast": {"latency_median_s": 0.25, "latency_p95_s": 0.5},
            "failed": {"error": "cannot run here", "latency_median_s": None},
        }
    }
    assert latency_rows(results) == [
        {"model": "fast", "measure": "median", "seconds": 0.25},
        {"model": "fast", "measure": "slowest 5%", "seconds": 0.5},
    ]
    assert set(SUMMARY_LABELS) >= {"model", "kind", *SUMMARY_COLUMNS}  # every column has plain words
