"""CLI: doctor's plans, ask on a tiny checkpoint, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chatvlmllm.cli import main
from tests.helpers import image_bytes, text_image, write_models_file


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_doctor_json_for_rtx_5070_ti(capsys):
    code, out, _ = run_cli(capsys, "doctor", "--json", "--gpu", "12.0:16")
    assert code == 0
    report = json.loads(out)
    assert report["hardware"]["compute_capability"] == "12.0" and report["hardware"]["simulated"]
    models = {m["key"]: m for m in report["models"]}
    for key in ("qwen_vl_2b", "qwen3_vl_2b", "qwen25_vl_3b"):
        assert models[key]["attention"] == "sdpa"
        assert models[key]["dtype"] == "bfloat16"
    assert models["got_ocr_hf"]["attention"] == "eager"
    assert all({"key", "attention", "dtype", "quantization", "fits", "reasons"} <= m.keys() for m in models.values())
    assert all(m["attention"] != "flash_attention_2" for m in models.values())


def test_doctor_json_with_flash_attn_on_ampere(capsys):
    _, out, _ = run_cli(capsys, "doctor", "--json", "--gpu", "8.6:24", "--assume-flash-attn")
    models = {m["key"]: m for m in json.loads(out)["models"]}
    assert models["qwen_vl_2b"]["attention"] == "flash_attention_2"
    assert models["got_ocr_hf"]["attention"] == "eager"


def test_doctor_text(capsys):
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0 and "Hardware" in out and "qwen_vl_2b" in out and "hf download" in out


def test_ask_json_on_tiny_qwen2_vl(capsys, tiny_qwen2_vl, page_png_path):
    code, out, _ = run_cli(
        capsys,
        "ask",
        str(page_png_path),
        "What is the total?",
        "--model-path",
        str(tiny_qwen2_vl),
        "--max-new-tokens",
        "8",
        "--json",
        "--no-fallback",
    )
    assert code == 0
    result = json.loads(out)
    for key in (
        "answer",
        "model",
        "attention",
        "dtype",
        "device",
        "load_s",
        "ttft_s",
        "total_s",
        "new_tokens",
        "tokens_per_s",
        "stopped_by",
    ):
        assert key in result, key
    assert (result["model"], result["attention"], result["dtype"], result["device"]) == (
        tiny_qwen2_vl.name,
        "sdpa",
        "float32",
        "cpu",
    )
    assert 1 <= result["new_tokens"] <= 8
    assert result["attempts"][-1]["outcome"] == "answered"
    assert result["pages"] == [1]


def test_ask_streams_to_stdout_with_a_catalog_key(capsys, tmp_path, monkeypatch, looping_qwen2_vl, page_png_path):
    models = write_models_file(tmp_path / "m.toml", {"loop": {"family": "qwen2_vl", "path": str(looping_qwen2_vl)}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    code, out, err = run_cli(
        capsys, "ask", str(page_png_path), "hi", "--model", "loop", "--max-new-tokens", "6", "--no-fallback"
    )
    assert code == 0
    assert len(out.split()) == 6  # the six streamed words
    assert "loop" in err and "stopped: token limit" in err


@pytest.mark.slow
def test_lang_picks_the_offline_default_that_reads_it(capsys):
    """Offline, no VLM: ocr_auto answers, and its script probe hands the Cyrillic page to Tesseract, with `--lang ru`
    and without any language (the "Not set" case)."""
    from tests.helpers import SHARED_EVAL, require_tesseract

    require_tesseract()
    image = SHARED_EVAL / "images" / "ru_line_55038097.png"
    truth = (SHARED_EVAL / "truth" / "ru_line_55038097.txt").read_text(encoding="utf-8").split()
    code, out, _ = run_cli(capsys, "ocr", str(image), "--lang", "ru", "--json")
    result = json.loads(out)
    assert code == 0 and result["model"] == "ocr_auto"
    assert sum(word in result["answer"] for word in truth) >= len(truth) // 2
    code, out, _ = run_cli(capsys, "ocr", str(image), "--json")
    unlabelled = json.loads(out)
    assert unlabelled["model"] == "ocr_auto" and unlabelled["extras"]["read_by"].startswith("Read by Tesseract")
    assert "Read by" not in unlabelled["answer"]
    # Without --json, stdout is the page's text and nothing else (`ocr page.png > page.txt`); the note goes to stderr.
    code, out, err = run_cli(capsys, "ocr", str(image))
    assert code == 0 and out.strip() == unlabelled["answer"].strip()
    assert "[Read by Tesseract" in err
    assert sum(word in unlabelled["answer"] for word in truth) >= len(truth) // 2


def test_ask_pdf_page(capsys, tmp_path, tiny_qwen3_vl):
    from tests.documents.test_loading import make_pdf

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(make_pdf(3))
    code, out, _ = run_cli(
        capsys,
        "ask",
        str(pdf),
        "hi",
        "--model-path",
        str(tiny_qwen3_vl),
        "--page",
        "3",
        "--max-new-tokens",
        "2",
        "--json",
        "--no-fallback",
    )
    assert code == 0 and json.loads(out)["pages"] == [3]
    code, _, err = run_cli(capsys, "ask", str(pdf), "hi", "--model-path", str(tiny_qwen3_vl), "--page", "4")
    assert code == 2 and "has 3 pages; --page 4 does not exist" in err


@pytest.fixture
def bad_inputs(tmp_path):
    from tests.documents.test_loading import _encrypted_pdf, make_pdf

    files = {
        "not-image.png": b"hello, I am text",
        "corrupt.png": image_bytes(text_image(["x"]))[:150],
        "encrypted.pdf": _encrypted_pdf(),
        "empty.pdf": make_pdf(0),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "q"], "no such file"),
        (["not-image.png", "q"], "not a supported document"),
        (["corrupt.png", "q"], "damaged or truncated|could not be read"),
        (["encrypted.pdf", "q"], "encrypted"),
        (["empty.pdf", "q"], "no pages"),
    ],
)
def test_ask_bad_documents(capsys, bad_inputs, args, message):
    import re

    code, out, err = run_cli(capsys, "ask", str(bad_inputs / args[0]), *args[1:])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and re.search(message, err)
    assert len(err.strip().splitlines()) == 1


def test_ask_unknown_model_and_attention_that_cannot_run(capsys, page_png_path, tiny_qwen2_vl):
    code, _, err = run_cli(capsys, "ask", str(page_png_path), "q", "--model", "nope")
    assert code == 2 and "Unknown model 'nope'" in err
    code, _, err = run_cli(
        capsys, "ask", str(page_png_path), "q", "--model-path", str(tiny_qwen2_vl), "--attn", "flash_attention_2"
    )
    assert code == 2 and "cannot run here" in err and "flash" in err


@pytest.mark.slow
def test_missing_weights_error_is_one_line_without_traceback(page_png_path):
    """A real subprocess: offline, a hub model without weights → one line naming the download command."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatvlmllm.cli",
            "ask",
            str(page_png_path),
            "q",
            "--model",
            "qwen_vl_2b",
            "--no-fallback",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "hf download Qwen/Qwen2-VL-2B-Instruct" in proc.stderr
    assert proc.stdout == ""


def test_an_engine_that_fails_to_load_is_one_error_line(capsys, tmp_path, tiny_qwen2_vl):
    """An engine failure (not the user's fault, not a UserError) still ends the CLI with one line."""
    from chatvlmllm.devtools.servers import free_port

    broken = tmp_path / "broken_qwen"
    broken.mkdir()
    for item in tiny_qwen2_vl.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    code, out, err = run_cli(capsys, "serve", "--model-path", str(broken), "--port", str(free_port()))
    assert code == 2 and out == "" and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "broken_qwen failed to load" in errors[0], err


def test_a_blank_page_says_no_text_was_found_without_listing_other_load_failures(capsys, tmp_path):
    from PIL import Image

    path = tmp_path / "blank.png"
    Image.new("RGB", (800, 600), "white").save(path)
    code, _, err = run_cli(capsys, "ocr", str(path), "--model", "rapidocr")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: No text found: rapidocr")
    assert "qwen_vl_2b" not in err  # VLMs that cannot load here are not listed
