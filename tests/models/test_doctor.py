"""The doctor report in words (chatvlmllm.models.doctor): what the System page shows."""

from __future__ import annotations

from chatvlmllm.models.doctor import doctor_report, hardware_facts, memory_words, model_facts
from chatvlmllm.models.hardware import HardwareProfile, simulated_gpu


def test_a_machine_without_a_gpu_says_so_instead_of_blank_cells():
    facts = dict(hardware_facts(HardwareProfile(device="cpu", ram_total_gb=25.276, cpu_count=2).to_dict()))
    assert facts["GPU"] == facts["GPU memory (GB)"] == facts["Compute capability"] == "no GPU"
    assert facts["flash-attn version"] == "not installed" and facts["CUDA"] == "none"
    assert facts["Memory (GB)"] == "25.3" and facts["CPU cores"] == "2" and facts["bfloat16 supported"] == "no"
    assert all(value and value != "None" for value in facts.values())


def test_a_gpu_shows_its_facts():
    facts = dict(hardware_facts(simulated_gpu("12.0:16").to_dict()))
    assert facts["Runs on"] == "cuda" and facts["GPU memory (GB)"] == "16.0" and facts["Compute capability"] == "12.0"
    assert facts["Hypothetical"] == "yes"


def test_every_model_row_has_words_in_every_cell():
    rows = [model_facts(model) for model in doctor_report()["models"]]
    assert rows and all(value and value != "None" for row in rows for value in row.values())
    offline = next(row for row in rows if row["Model"] == "rapidocr")
    assert offline["Attention"] == "n/a" and offline["Memory (GB)"] == "unknown"


def test_engine_memory_in_words():
    assert memory_words(None) == "not measured" and memory_words(0.0) == "not measured"
    assert memory_words(1234.4) == "1,234"
