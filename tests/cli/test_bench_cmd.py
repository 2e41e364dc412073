"""`chatvlmllm bench` end to end: real engines, real files, the progress bar, and clear errors."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from chatvlmllm.cli import main
from tests.engines.test_classic_ocr import require_tesseract
from tests.eval.test_benchmark import REQUIRED_MODEL_KEYS, make_eval_folder
from tests.helpers import SHARED_EVAL


@pytest.mark.slow
def test_bench_writes_json_and_csv_with_a_progress_bar(tmp_path, capsys):
    folder = make_eval_folder(tmp_path / "eval")
    out = tmp_path / "results" / "bench.json"
    assert main(["bench", str(folder), "--models", "rapidocr", "--out", str(out), "--concurrency", "2"]) == 0
    captured = capsys.readouterr()
    assert "rapidocr: OCR" in captured.err and "3/3" in captured.err  # tqdm on stderr
    assert "wrote" in captured.out and "receipt CER/F1" in captured.out
    results = json.loads(out.read_text(encoding="utf-8"))
    metrics = results["models"]["rapidocr"]
    assert set(metrics) >= REQUIRED_MODEL_KEYS and metrics["n"] == 3 and metrics["concurrency"] == 2
    table = pd.read_csv(out.with_suffix(".csv"))
    assert set(table["kind"]) == {"all", "receipt", "text_line"}


@pytest.mark.slow
def test_bench_on_the_shared_eval_set_side_by_side(tmp_path, capsys):
    """A few items of the real dev split (the full run is a benchmark: docs/benchmark.md)."""
    require_tesseract()
    if not (SHARED_EVAL / "manifest.jsonl").is_file():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    # Two small real items: a receipt and a Russian printed line (items taken in turn per kind).
    folder = tmp_path / "eval"
    (folder / "images").mkdir(parents=True)
    (folder / "truth").mkdir()
    rows = [json.loads(line) for line in (SHARED_EVAL / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [next(r for r in rows if r["id"] == "receipt_000"), next(r for r in rows if r["kind"] == "text_line")]
    for row in picked:
        shutil.copy(SHARED_EVAL / row["image"], folder / row["image"])
        shutil.copy(SHARED_EVAL / row["truth"], folder / row["truth"])
    (folder / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in picked) + "\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    assert main(["bench", str(folder), "--models", "rapidocr,tesseract,ocr_auto", "--out", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    models = results["models"]
    assert set(models) == {"rapidocr", "tesseract", "ocr_auto"} and results["interleaved"] is True
    for metrics in models.values():
        assert metrics["n"] == 2 and set(metrics["by_kind"]) == {"receipt", "text_line"}
    # Tesseract reads the Russian line (its language comes from the manifest); rapidocr has no Cyrillic
    # model, so its script probe hands the page to Tesseract, and the item records which engine read it.
    assert models["tesseract"]["by_lang"]["ru"]["cer"] < 0.1 and models["rapidocr"]["by_lang"]["ru"]["cer"] < 0.1
    read_by = {key: {item["id"]: item["read_by"] for item in m["items"]} for key, m in models.items()}
    line = picked[1]["id"]
    assert read_by["rapidocr"] == {"receipt_000": ["rapidocr"], line: ["tesseract"]}
    assert read_by["ocr_auto"] == {"receipt_000": ["rapidocr"], line: ["tesseract"]}
    for metrics in models.values():  # per kind: p95 and the process's peak RSS while this engine read it
        assert all(k["latency_p95_s"] and k["peak_rss_mb"] for k in metrics["by_kind"].values())
    assert results["machine"]["versions"]["rapidocr"] and results["machine"]["cpu_count"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "{missing}"], "not an evaluation folder"),
        (["bench", "{folder}", "--models", "rapidocr,not_a_model"], "Unknown model 'not_a_model'"),
        (["bench", "{folder}", "--limit", "0"], "--limit must be at least 1"),
        (["bench", "{folder}", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["bench", "{folder}", "--models", " , "], "name at least one model"),
    ],
)
def test_bench_errors_are_one_clear_line(tmp_path, capsys, args, message):
    folder = make_eval_folder(tmp_path / "eval")
    argv = [a.format(folder=folder, missing=tmp_path / "nowhere") for a in args]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_bench_fails_when_no_model_could_run(tmp_path, capsys, monkeypatch):
    import pytesseract

    folder = make_eval_folder(tmp_path / "eval")
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", str(tmp_path / "no-tesseract"))
    out = tmp_path / "r.json"
    assert main(["bench", str(folder), "--models", "tesseract", "--out", str(out)]) == 2
    assert "tesseract: cannot run here" in capsys.readouterr().err
    assert json.loads(out.read_text(encoding="utf-8"))["models"]["tesseract"]["cer"] is None  # still recorded


@pytest.mark.slow
def test_bench_keeps_n_requests_in_flight_against_a_server(tmp_path, tiny_qwen2_vl, capsys):
    """`--concurrency 2` through the `openai` backend against `chatvlmllm serve` on a tiny checkpoint:
    a server backend gets one client per request in flight (a local model would queue on one engine)."""
    import os
    from pathlib import Path

    from chatvlmllm.devtools.servers import running_server
    from tests.helpers import write_models_file

    folder = make_eval_folder(tmp_path / "eval")
    env = {**os.environ, "CHATVLMLLM_DATA_DIR": str(tmp_path / "server-data")}
    with running_server(["--model-path", str(tiny_qwen2_vl)], env=env) as base_url:
        write_models_file(
            Path(os.environ["CHATVLMLLM_MODELS_FILE"]),
            {"served_tiny": {"backend": "openai", "base_url": base_url, "served_model": tiny_qwen2_vl.name}},
        )
        out = tmp_path / "bench.json"
        argv = ["bench", str(folder), "--models", "served_tiny", "--concurrency", "2", "--out", str(out)]
        assert main(argv) == 0
    metrics = json.loads(out.read_text(encoding="utf-8"))["models"]["served_tiny"]
    assert metrics["parallel_requests"] == 2 and metrics["concurrency"] == 2
    assert metrics["n"] == 3 and metrics["errors"] == 0 and metrics["pages_per_s"] > 0
    assert metrics["qa_n"] == 2 and metrics["qa_exact"] is not None  # a chat model: QA is scored
