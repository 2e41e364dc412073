"""`chatvlmllm index FILE` and `chatvlmllm ask FILE QUESTION` over a whole document: every page read once and
indexed, the answer citing page, text and box in `--json`; `--page N` still asks about one page. The slow ones
run the CLI as a real process: killed with SIGKILL mid-read it resumes, and a 1,000-page PDF is read within a
memory bound that does not grow with the page count."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatvlmllm.devtools.pdfs import PageSpec, build_pdf, filler_pages
from tests.cli.test_commands import run_cli
from tests.documents.test_text_layer import ENGLISH, RUSSIAN

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def contract_pdf(tmp_path_factory) -> Path:
    """A 40-page born-digital contract: the English clause on page 27, the Russian one on page 33."""
    pages = filler_pages(40, seed=11)
    pages[26], pages[32] = PageSpec(ENGLISH), PageSpec(RUSSIAN)
    path = tmp_path_factory.mktemp("contract") / "contract.pdf"
    path.write_bytes(build_pdf(pages))
    return path


@pytest.mark.parametrize(
    ("question", "page"),
    [("What is the penalty for late delivery?", 27), ("Какая неустойка за просрочку поставки?", 33)],
)
def test_ask_json_cites_the_page_text_and_box_of_the_answer(capsys, contract_pdf, question, page):
    code, out, err = run_cli(capsys, "ask", str(contract_pdf), question, "--model", "ocr_auto", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == "extractive" and result["scope"] == "document"
    first = result["citations"][0]
    assert first["page"] == page and first["text"] and first["status"] == "verified"
    x0, y0, x1, y1 = first["box"]
    assert 0 <= x0 < x1 and 0 <= y0 < y1
    assert result["coverage"][0]["pages_read"] == 40 and result["coverage"][0]["state"] == "done"
    assert f"[p. {page}]" in result["answer"]


def test_index_then_ask_reads_nothing_again(capsys, contract_pdf):
    code, out, _ = run_cli(capsys, "index", str(contract_pdf), "--json")
    record = json.loads(out)
    assert code == 0 and record["pages_read"] == 40 and record["state"] == "done" and record["resumed_from"] == 0
    assert {page["source"] for page in record["pages"]} == {"text layer"}
    assert "real words" in record["pages"][0]["why"]
    code, out, _ = run_cli(capsys, "index", str(contract_pdf), "--json")
    assert json.loads(out)["resumed_from"] == 40
    code, out, _ = run_cli(capsys, "ask", str(contract_pdf), "penalty late delivery", "--model", "ocr_auto")
    assert code == 0 and "Offline answer (extractive)" in out and "[p. 27]" in out
    code, out, _ = run_cli(capsys, "index", str(contract_pdf), "--again")
    assert code == 0 and "40 of 40 pages read (40 from text layer)" in out


def test_a_vision_language_model_gets_the_retrieved_pages_and_its_citations_are_checked(
    capsys, contract_pdf, tiny_qwen2_vl
):
    code, out, err = run_cli(
        capsys,
        "ask",
        str(contract_pdf),
        "What is the penalty for late delivery?",
        "--model-path",
        str(tiny_qwen2_vl),
        "--no-fallback",
        "--max-new-tokens",
        "4",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == "model" and result["model"] == tiny_qwen2_vl.name
    assert result["pages"][0] == 27  # the retrieved page was sent first
    assert isinstance(result["citations"], list)  # a random tiny model cites nothing it can back
    assert all(c["status"] != "verified" or c["page"] in result["pages"] for c in result["citations"])


@pytest.mark.slow
def test_page_flag_still_asks_about_one_page(capsys, contract_pdf):
    code, out, _ = run_cli(
        capsys, "ask", str(contract_pdf), "What is the penalty?", "--page", "27", "--model", "ocr_auto", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["pages"] == [27] and result["citations"] == [] and "Penalties" in result["answer"]


def _pages_stored(database: Path) -> int:
    try:
        db = sqlite3.connect(database, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM document_pages").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not created yet
        return 0


def _index_process(pdf: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "CHATVLMLLM_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(  # output goes to files: a full pipe would stall the process while we sample it
        [sys.executable, "-m", "chatvlmllm", "index", str(pdf), "--json"],
        env=env,
        stdout=(data_dir / "stdout.txt").open("w"),
        stderr=(data_dir / "stderr.txt").open("w"),
    )


def _peak_rss_mb(process: subprocess.Popen, data_dir: Path, timeout: float = 600) -> tuple[float, str]:
    """Run to the end, sampling the process's resident memory; (peak MB, stdout)."""
    import psutil

    watched = psutil.Process(process.pid)
    peak = 0.0
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, watched.memory_info().rss / 1e6)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    assert process.wait(timeout=60) == 0, (data_dir / "stderr.txt").read_text()[-2000:]
    return peak, (data_dir / "stdout.txt").read_text()


@pytest.mark.slow
def test_a_thousand_page_pdf_is_read_in_bounded_memory_and_resumes_after_kill_9(tmp_path):
    small, large = tmp_path / "small.pdf", tmp_path / "large.pdf"
    small.write_bytes(build_pdf(filler_pages(100, seed=1)))
    large.write_bytes(build_pdf(filler_pages(1000, seed=2)))

    small_peak, _ = _peak_rss_mb(_index_process(small, tmp_path / "small-data"), tmp_path / "small-data")

    data = tmp_path / "large-data"
    first = _index_process(large, data)
    deadline = time.monotonic() + 300
    while _pages_stored(data / "chats.sqlite3") < 100 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    stored = _pages_stored(data / "chats.sqlite3")
    assert 100 <= stored < 1000, "the first run should be killed part way"

    large_peak, out = _peak_rss_mb(_index_process(large, data), data)
    record = json.loads(out)
    assert record["state"] == "done" and record["pages_read"] == 1000
    assert record["resumed_from"] >= stored  # nothing stored before the kill was read again
    # Memory does not grow with the page count: ten times the pages, the same footprint (within 60 MB).
    assert large_peak - small_peak < 60, (small_peak, large_peak)
