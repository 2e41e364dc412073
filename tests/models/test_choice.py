"""Task-aware choice: the best model for the request that fits the machine, from the public
scores each catalog entry declares (docs/models.md), on the GPU matrix × tasks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chatvlmllm.cli import main
from chatvlmllm.decisions import Script, Task
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.choice import choose, pick_for_task, rank
from chatvlmllm.models.hardware import HardwareProfile, simulated_gpu

CPU = HardwareProfile(device="cpu", ram_total_gb=16.0, cpu_count=8)
GPUS = {
    "T4": "7.5:16",
    "RTX 3090": "8.6:24",
    "RTX 4090": "8.9:24",
    "RTX 5070 Ti": "12.0:16",
    "RTX 5060": "12.0:8",
    "H100": "9.0:80",
}
# machine → (transcribe, question, Russian transcription). The ranking's expected outcome from the
# declared scores: GLM-OCR leads OmniDocBench v1.5 and fits everywhere; chat goes to the largest
# Qwen3-VL that fits unquantized; Russian goes to PaddleOCR-VL, the best Cyrillic reader.
EXPECTED = {
    "T4": ("glm_ocr", "qwen3_vl_4b", "paddleocr_vl"),
    "RTX 3090": ("glm_ocr", "qwen3_vl_8b", "paddleocr_vl"),
    "RTX 4090": ("glm_ocr", "qwen3_vl_8b", "paddleocr_vl"),
    "RTX 5070 Ti": ("glm_ocr", "qwen3_vl_4b", "paddleocr_vl"),
    "RTX 5060": ("glm_ocr", "qwen3_vl_2b", "paddleocr_vl"),
    "H100": ("glm_ocr", "qwen3_vl_8b", "paddleocr_vl"),
    "CPU": ("glm_ocr", "qwen3_vl_2b", "paddleocr_vl"),
}


def machine(name: str) -> HardwareProfile:
    return CPU if name == "CPU" else simulated_gpu(GPUS[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_gpu_matrix_picks_per_task(name):
    catalog = load_catalog()
    hw = machine(name)
    transcribe, question, russian = EXPECTED[name]
    assert pick_for_task(Task.TRANSCRIBE, hw, catalog).key == transcribe
    assert pick_for_task(Task.QUESTION, hw, catalog).key == question
    ru = pick_for_task(Task.TRANSCRIBE, hw, catalog, "ru")
    assert ru.key == russian
    assert Script.CYRILLIC in catalog[ru.key].scripts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_pick_fits_unquantized_and_ranks_by_its_score(name):
    catalog = load_catalog()
    hw = machine(name)
    for task in (Task.TRANSCRIBE, Task.QUESTION, Task.LAYOUT):
        ranked, _ = rank(task, hw, catalog)
        assert ranked, (name, task)
        for candidate in ranked:
            assert candidate.plan.runnable and candidate.plan.quantization is None
        tiers = [(c.benchmark, c.score) for c in ranked if c.benchmark == ranked[0].benchmark]
        assert [s for _, s in tiers] == sorted((s for _, s in tiers), reverse=True)


def test_questions_never_go_to_an_ocr_only_model_and_layout_prefers_boxes():
    catalog = load_catalog()
    for name in EXPECTED:
        hw = machine(name)
        question = pick_for_task(Task.QUESTION, hw, catalog)
        assert "chat" in catalog[question.key].caps
        layout = pick_for_task(Task.LAYOUT, hw, catalog)
        assert "layout" in catalog[layout.key].caps


def test_qwen2_vl_stays_the_chat_default_where_nothing_better_fits():
    catalog = load_catalog()
    without_newer = {k: v for k, v in catalog.items() if not k.startswith(("qwen3", "qwen25"))}
    assert pick_for_task(Task.QUESTION, simulated_gpu("8.6:24"), without_newer).key == "qwen_vl_2b"


def test_a_tiny_gpu_gets_an_honest_nothing_fits():
    pick = pick_for_task(Task.QUESTION, simulated_gpu("8.6:2"), load_catalog())
    assert pick.key is None and "nothing fits" in pick.why


def test_choose_runs_only_models_on_disk_and_says_what_to_download(tiny_checkpoint):
    catalog = load_catalog()
    catalog["paddleocr_vl"] = dataclasses.replace(catalog["paddleocr_vl"], path=str(tiny_checkpoint("paddleocr_vl")))
    catalog["qwen_vl_2b"] = dataclasses.replace(catalog["qwen_vl_2b"], path=str(tiny_checkpoint("qwen2_vl")))
    choice = choose("Extract the text", CPU, catalog)
    assert choice.key == "paddleocr_vl"
    assert "chatvlmllm pull glm_ocr" in choice.hint
    assert choice.chain[0] == "paddleocr_vl" and choice.chain[-3:] == ("ocr_auto", "rapidocr", "tesseract")
    question = choose("What is the total?", CPU, catalog)
    assert question.key == "qwen_vl_2b" and "qwen3_vl_2b" in question.hint
    russian = choose("Extract the text", CPU, catalog, language="ru")
    assert russian.chain[-3:] == ("ocr_auto", "tesseract", "rapidocr")


def test_ask_without_a_model_uses_the_task_pick_and_an_explicit_model_wins(
    tiny_checkpoint, tmp_path, monkeypatch, capsys, page_png_path
):
    from tests.helpers import write_models_file

    models = write_models_file(
        tmp_path / "models.toml",
        {
            "paddleocr_vl": {"path": str(tiny_checkpoint("paddleocr_vl"))},
            "qwen_vl_2b": {"path": str(tiny_checkpoint("qwen2_vl"))},
        },
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    args = ["ask", str(page_png_path), "Extract the text", "--json", "--max-new-tokens", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "paddleocr_vl"
    assert "chatvlmllm pull glm_ocr" in captured.err
    assert main([*args, "--model", "qwen_vl_2b"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "qwen_vl_2b"


def test_doctor_json_lists_the_new_families_and_a_pick_per_task(capsys):
    assert main(["doctor", "--json", "--gpu", "12.0:16"]) == 0
    report = json.loads(capsys.readouterr().out)
    keys = {m["key"] for m in report["models"]}
    assert {"paddleocr_vl", "lighton_ocr", "glm_ocr", "deepseek_ocr2", "granite_docling", "qwen3_vl_4b"} <= keys
    assert report["picks"]["transcribe"]["pick"] == "glm_ocr"
    assert report["picks"]["question"]["pick"] == "qwen3_vl_4b"
    assert report["picks"]["transcribe (Russian)"]["pick"] == "paddleocr_vl"
    assert "OmniDocBench" in report["picks"]["transcribe"]["why"]
