"""Planner: the GPU matrix from the issue, overrides, quantization and CPU plans."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatvlmllm.decisions import Readiness, Reason, ReasonKind
from chatvlmllm.models.catalog import get_model
from chatvlmllm.models.hardware import HardwareProfile, simulated_gpu
from chatvlmllm.models.planner import PlanOverrides, plan_load

CPU = HardwareProfile(device="cpu", ram_total_gb=24.0, cpu_count=2)

# name: (compute capability : VRAM GB)
GPUS = {
    "T4": "7.5:16",
    "A100": "8.0:40",
    "RTX 3090": "8.6:24",
    "RTX 4090": "8.9:24",
    "H100": "9.0:80",
    "RTX 5070 Ti": "12.0:16",
    "RTX 5060": "12.0:8",
}


def gpu(name: str, flash_attn: bool = False, bnb: bool = True) -> HardwareProfile:
    return replace(simulated_gpu(GPUS[name], assume_flash_attn=flash_attn), bitsandbytes_available=bnb)


@pytest.mark.parametrize(
    ("name", "flash_attn", "attention", "dtype"),
    [
        ("T4", True, "sdpa", "float16"),  # FA2 needs sm_80+, even when installed
        ("A100", True, "flash_attention_2", "bfloat16"),
        ("RTX 3090", True, "flash_attention_2", "bfloat16"),
        ("RTX 4090", True, "flash_attention_2", "bfloat16"),
        ("H100", True, "flash_attention_2", "bfloat16"),
        ("RTX 5070 Ti", False, "sdpa", "bfloat16"),  # flash-attn wheel does not run on sm_120
        ("RTX 5070 Ti", True, "flash_attention_2", "bfloat16"),  # a source build that ran
        ("RTX 5060", False, "sdpa", "bfloat16"),
    ],
)
def test_qwen_plans_across_gpus(name, flash_attn, attention, dtype):
    plan = plan_load(gpu(name, flash_attn), get_model("qwen_vl_2b"))
    assert (plan.device, plan.attention, plan.dtype, plan.quantization) == ("cuda", attention, dtype, None)
    assert plan.fits and plan.runnable
    assert any(attention in reason for reason in plan.reason_texts())


def test_unverified_flash_attn_is_never_planned_on_blackwell():
    hw = gpu("RTX 5070 Ti", flash_attn=False)
    for key in ("qwen_vl_2b", "qwen3_vl_2b", "qwen25_vl_3b", "dots_ocr"):
        plan = plan_load(hw, get_model(key))
        assert plan.attention == "sdpa", key
        assert any("flash_attention_2 not used" in r for r in plan.reason_texts()), plan.reasons


def test_got_ocr_is_always_eager():
    for name in GPUS:
        plan = plan_load(gpu(name, flash_attn=True), get_model("got_ocr_hf"))
        assert plan.attention == "eager", name
    assert plan_load(CPU, get_model("got_ocr_hf")).attention == "eager"


def test_cpu_plan():
    plan = plan_load(CPU, get_model("qwen_vl_2b"))
    assert (plan.device, plan.dtype, plan.attention, plan.quantization) == ("cpu", "float32", "sdpa", None)
    assert plan.runnable
    # CPU gets a smaller pixel budget than the family default.
    gpu_plan = plan_load(gpu("RTX 4090"), get_model("qwen_vl_2b"))
    assert plan.max_pixels < gpu_plan.max_pixels


def test_quantization_only_when_16bit_does_not_fit():
    small = gpu("RTX 5060")  # 8 GB
    assert plan_load(small, get_model("qwen_vl_2b")).quantization is None
    plan = plan_load(small, get_model("qwen25_vl_3b"))
    assert plan.quantization == "8bit" and plan.fits and plan.runnable
    assert any("8bit quantization" in r for r in plan.reason_texts())
    # The same model on a 24 GB card stays in bf16.
    assert plan_load(gpu("RTX 4090"), get_model("qwen25_vl_3b")).quantization is None


def test_quantization_needs_bitsandbytes():
    plan = plan_load(gpu("RTX 5060", bnb=False), get_model("qwen25_vl_3b"))
    assert plan.quantization == "8bit"
    assert not plan.runnable
    assert "bitsandbytes" in plan.why_not()


def test_too_big_even_in_4bit():
    tiny_gpu = replace(gpu("T4"), vram_total_gb=2.0)
    plan = plan_load(tiny_gpu, get_model("qwen25_vl_3b"))
    assert not plan.fits and not plan.runnable
    assert "even in 4-bit, more than the 2 GB VRAM" in plan.why_not()


def test_a_model_that_almost_fits_says_the_margin_once():
    """22.3 GB on a 25 GB machine must not read as if it fits: the OS and the app keep a fifth of the RAM."""
    from chatvlmllm.models.choice import model_status

    status = model_status(get_model("qwen3_vl_4b"), replace(CPU, ram_total_gb=25.0), check_hub=False)
    assert status.status == Readiness.WONT_FIT
    assert status.reason == (
        "needs about 22.3 GB of the 25 GB RAM in float32, and the OS and the app need the rest: "
        "a model may use about 20.0 GB here"
    )
    shown = f"{status.status}: {status.reason}"  # how the app and `doctor` put them together
    assert shown.count("won't fit") == 1 and ".." not in shown


def test_no_quantization_on_cpu():
    plan = plan_load(replace(CPU, ram_total_gb=4.0), get_model("qwen25_vl_3b"))
    assert plan.quantization is None and not plan.fits
    refused = plan_load(CPU, get_model("qwen_vl_2b"), PlanOverrides(quantization="4bit"))
    assert refused.quantization is None
    assert any("bitsandbytes needs CUDA" in r for r in refused.reason_texts())


def test_explicit_attention_is_honoured_when_it_can_run():
    plan = plan_load(gpu("RTX 4090", flash_attn=True), get_model("qwen_vl_2b"), PlanOverrides(attention="eager"))
    assert plan.attention == "eager" and plan.runnable
    assert "eager (your choice)" in " ".join(plan.reason_texts())


@pytest.mark.parametrize(
    ("hw", "key", "attention", "why"),
    [
        (gpu("RTX 5070 Ti"), "qwen_vl_2b", "flash_attention_2", "no test kernel"),
        (CPU, "qwen_vl_2b", "flash_attention_2", "needs a CUDA GPU"),
        (gpu("T4", flash_attn=True), "qwen_vl_2b", "flash_attention_2", "compute capability 8.0"),
        (gpu("RTX 4090", flash_attn=True), "got_ocr_hf", "sdpa", "supports only eager"),
    ],
)
def test_explicit_attention_is_refused_with_reason(hw, key, attention, why):
    plan = plan_load(hw, get_model(key), PlanOverrides(attention=attention))
    assert not plan.runnable
    assert why in plan.why_not()


@pytest.mark.parametrize(
    ("hw", "key", "overrides", "kind"),
    [
        (gpu("RTX 5060", bnb=False), "qwen25_vl_3b", PlanOverrides(), ReasonKind.NEEDS),
        (replace(gpu("T4"), vram_total_gb=2.0), "qwen25_vl_3b", PlanOverrides(), ReasonKind.NO_FIT),
        (CPU, "qwen_vl_2b", PlanOverrides(attention="flash_attention_2"), ReasonKind.REFUSED),
        (CPU, "rapidocr", PlanOverrides(attention="sdpa"), ReasonKind.REFUSED),
    ],
)
def test_why_not_names_only_the_problems(hw, key, overrides, kind):
    plan = plan_load(hw, get_model(key), overrides)
    problems = [reason for reason in plan.reasons if reason.is_problem]
    assert not plan.runnable and kind in {reason.kind for reason in problems}
    # The explanation of the choices that were fine (dtype, notes) is not part of the refusal.
    assert plan.why_not() == "; ".join(reason.text for reason in problems)
    assert any(reason.kind is ReasonKind.INFO and reason.text not in plan.why_not() for reason in plan.reasons)


def test_a_runnable_plan_has_no_why_not_and_only_info_reasons():
    plan = plan_load(gpu("RTX 4090", flash_attn=True), get_model("qwen_vl_2b"))
    assert plan.runnable and plan.why_not() is None
    assert {reason.kind for reason in plan.reasons} == {ReasonKind.INFO}
    assert plan.to_dict()["reasons"] == [str(reason) for reason in plan.reasons]  # doctor --json: plain strings


def test_dots_ocr_without_flash_attn_patches_vision_tower_and_caps_pixels():
    plan = plan_load(gpu("RTX 5070 Ti"), get_model("dots_ocr"))
    assert plan.attention == "sdpa" and plan.vision_attention == "sdpa"
    assert plan.max_pixels == get_model("dots_ocr").family_info().max_pixels_without_fa2
    assert any("vision tower sdpa" in r and "flash-attn not needed" in r for r in plan.reason_texts())
    assert any(r.startswith("pixels capped at 1.0 MP") and "no flash-attn, 16 GB" in r for r in plan.reason_texts())
    fa2 = plan_load(gpu("RTX 4090", flash_attn=True), get_model("dots_ocr"))
    assert fa2.vision_attention == "sdpa" and fa2.max_pixels > plan.max_pixels  # our tower never uses flash-attn


def test_user_pixel_budget_wins():
    plan = plan_load(CPU, get_model("qwen_vl_2b"), PlanOverrides(max_pixels=123_456))
    assert plan.max_pixels == 123_456


def test_cache_key_ignores_reasons_but_not_choices():
    a = plan_load(gpu("RTX 4090"), get_model("qwen_vl_2b"))
    b = replace(a, reasons=(Reason.info("other"),))
    c = replace(a, attention="eager")
    assert a.cache_key() == b.cache_key() != c.cache_key()
