"""dots.ocr: remote-code opt-in and pinning, the vision tower's attention switch, the
flash_attn import stand-in, the forced-bf16 fix, prompts, and the offline error path.

Real dots.ocr weights and code cannot be downloaded here; the remote-code mechanics are
exercised with transformers' own dynamic-module loader on files shaped like dots.ocr's
(a config with a separate vision config, a vision module importing flash_attn at top level).
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from chatvlmllm.cache import EngineCache
from chatvlmllm.catalog import get_model, spec_from_path
from chatvlmllm.engines import GenerationSettings, Message, create_engine
from chatvlmllm.engines.dots_ocr import (
    DEFAULT_PROMPT_MODE,
    DOTS_PROMPTS,
    FREE_QUESTION,
    PINNED_REVISION,
    choose_prompt,
    flash_attn_importable,
    flash_attn_stand_in,
    keep_vision_dtype,
    load_processor,
    patch_vision_attention,
)
from chatvlmllm.errors import EngineError, UserError, WeightsMissingError
from chatvlmllm.hardware import HardwareProfile, simulated_gpu
from chatvlmllm.layout import CATEGORIES, model_input_size
from chatvlmllm.planner import plan_load
from chatvlmllm.router import answer
from tests.conftest import text_image

CPU = HardwareProfile(device="cpu", ram_total_gb=32.0, cpu_count=2)
BLACKWELL = simulated_gpu("12.0:16")  # RTX 5070 Ti: flash-attn wheels import but have no sm_120 kernel
TURING = simulated_gpu("7.5:16")  # T4: no bfloat16
ADA_FA2 = simulated_gpu("8.9:24", assume_flash_attn=True)

CONFIGURATION_DOTS = """
from transformers import PretrainedConfig


class DotsVisionConfig(PretrainedConfig):
    model_type = "dots_vit"

    def __init__(self, embed_dim=32, attn_implementation="flash_attention_2", **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.attn_implementation = attn_implementation


class DotsOCRConfig(PretrainedConfig):
    model_type = "dots_ocr"

    def __init__(self, image_token_id=151665, vision_config=None, **kwargs):
        super().__init__(**kwargs)
        self.image_token_id = image_token_id
        self.vision_config = DotsVisionConfig(**(vision_config or {}))
"""

MODELING_DOTS_VISION = """
import torch
from flash_attn import flash_attn_varlen_func

from .configuration_dots import DotsVisionConfig


class DotsVisionTransformer(torch.nn.Module):
    config_class = DotsVisionConfig

    def attend(self, q, k, v):
        return flash_attn_varlen_func(q, k, v)
"""


@pytest.fixture
def remote_code_folder(tmp_path) -> Path:
    """A folder laid out like the hub repo: config.json with auto_map, and its Python files."""
    folder = tmp_path / f"dots_like_{time.monotonic_ns()}"
    folder.mkdir()
    (folder / "configuration_dots.py").write_text(textwrap.dedent(CONFIGURATION_DOTS), encoding="utf-8")
    (folder / "modeling_dots_vision.py").write_text(textwrap.dedent(MODELING_DOTS_VISION), encoding="utf-8")
    (folder / "config.json").write_text(
        '{"model_type": "dots_ocr", "auto_map": {"AutoConfig": "configuration_dots.DotsOCRConfig"},'
        ' "vision_config": {"embed_dim": 32, "attn_implementation": "flash_attention_2"}}',
        encoding="utf-8",
    )
    return folder


# -- the plan ---------------------------------------------------------------------------


def test_builtin_entry_opts_in_and_pins_a_commit():
    spec = get_model("dots_ocr")
    assert spec.trust_remote_code and spec.revision == PINNED_REVISION and len(spec.revision) == 40


def test_plan_without_flash_attn_says_everything():
    plan = plan_load(BLACKWELL, get_model("dots_ocr"))
    assert plan.runnable and plan.dtype == "bfloat16"
    assert (plan.attention, plan.vision_attention) == ("sdpa", "sdpa")
    assert plan.max_pixels == 1_003_520
    reasons = " | ".join(plan.reasons)
    assert "vision tower switched to sdpa" in reasons and "dense" in reasons
    assert "imports flash_attn at top level" in reasons and "stand-in" in reasons
    assert f"pinned revision {PINNED_REVISION[:12]}" in reasons
    assert "casts pixels to bfloat16" not in reasons  # bf16 weights: the remote cast is harmless


@pytest.mark.parametrize(("hw", "dtype"), [(CPU, "float32"), (TURING, "float16")])
def test_plan_turns_off_forced_bf16_when_weights_are_not_bf16(hw, dtype):
    plan = plan_load(hw, get_model("dots_ocr"))
    assert plan.runnable and plan.dtype == dtype and plan.vision_attention == "sdpa"
    assert any("casts pixels to bfloat16" in r and dtype in r for r in plan.reasons)


def test_plan_with_working_flash_attn_changes_nothing():
    plan = plan_load(ADA_FA2, get_model("dots_ocr"))
    assert plan.attention == "flash_attention_2" and plan.vision_attention is None
    assert plan.max_pixels == 11_289_600
    assert not any("stand-in" in r or "casts pixels" in r for r in plan.reasons)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"trust_remote_code": False}, "opt in with `trust_remote_code = true`"),
        ({"revision": None}, "pin `revision`"),
        ({"revision": "main"}, "40-character commit hash"),
    ],
)
def test_remote_code_needs_opt_in_and_pin(change, why):
    spec = replace(get_model("dots_ocr"), **change)
    plan = plan_load(BLACKWELL, spec)
    assert not plan.runnable
    assert why in plan.refusal() and plan.refusal().startswith("refused remote code")
    with pytest.raises(EngineError, match="refused remote code"):
        create_engine(spec).load(replace(plan, runnable=True))  # the engine checks again


def test_local_folder_needs_opt_in_but_no_revision(remote_code_folder):
    spec = spec_from_path(remote_code_folder)
    assert spec.family == "dots_ocr" and not plan_load(CPU, spec).runnable  # --model-path alone: no remote code
    opted_in = replace(spec, trust_remote_code=True)
    plan = plan_load(CPU, opted_in)
    assert plan.runnable and any(f"local folder {remote_code_folder}" in r for r in plan.reasons)


# -- loading mechanics ----------------------------------------------------------------------


def test_vision_attention_is_patched_on_the_remote_config_object(remote_code_folder):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(remote_code_folder, trust_remote_code=True)
    assert type(config.vision_config).__name__ == "DotsVisionConfig"
    assert config.vision_config.attn_implementation == "flash_attention_2"
    assert patch_vision_attention(config, "sdpa") == "flash_attention_2"
    assert config.vision_config.attn_implementation == "sdpa"
    assert config._attn_implementation is None  # the language model's setting is left alone
    assert patch_vision_attention(config, None) is None and config.vision_config.attn_implementation == "sdpa"
    # A config that still holds vision_config as a dict (before the model builds it).
    raw = type("RawConfig", (), {"vision_config": {"attn_implementation": "flash_attention_2"}})()
    patch_vision_attention(raw, "eager")
    assert raw.vision_config["attn_implementation"] == "eager"
    with pytest.raises(EngineError, match="no vision_config"):
        patch_vision_attention(object(), "sdpa")


@pytest.mark.skipif(flash_attn_importable(), reason="flash-attn imports here: the stand-in is never needed")
def test_top_level_flash_attn_import_is_served_by_a_stand_in(remote_code_folder):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    ref = "modeling_dots_vision.DotsVisionTransformer"
    # Upstream behaviour without help: transformers refuses the file for its flash_attn import.
    with pytest.raises(ImportError, match="flash_attn"):
        get_class_from_dynamic_module(ref, remote_code_folder)
    # With FA2 planned for the vision tower, no stand-in either (the import must be real).
    with flash_attn_stand_in("flash_attention_2") as stood_in:
        assert not stood_in
    with flash_attn_stand_in("sdpa") as stood_in:
        assert stood_in
        tower_class = get_class_from_dynamic_module(ref, remote_code_folder)
    assert "flash_attn" not in sys.modules and importlib.util.find_spec("flash_attn") is None
    with pytest.raises(EngineError, match="set to sdpa"):
        tower_class().attend(torch.zeros(1), torch.zeros(1), torch.zeros(1))


class _RemoteStyleTower(torch.nn.Module):
    """The remote DotsVisionTransformer's forward contract: `bf16=True` casts the input."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 2)

    def forward(self, hidden_states, grid_thw, bf16=True):
        if bf16:
            hidden_states = hidden_states.bfloat16()
        return self.proj(hidden_states)


def test_forced_bf16_is_turned_off_for_other_dtypes():
    model = torch.nn.Module()
    model.vision_tower = _RemoteStyleTower()
    pixels, grid = torch.ones(3, 4), torch.tensor([[1, 1, 3]])
    with pytest.raises(RuntimeError):  # the remote code as is: bf16 pixels into fp32 weights
        model.vision_tower(pixels, grid)
    assert not keep_vision_dtype(model, "bfloat16")  # nothing to do in bf16
    assert keep_vision_dtype(model, "float32")
    out = model.vision_tower(pixels.half(), grid)  # any input dtype reaches the weights' dtype
    assert out.dtype == torch.float32 and out.shape == (3, 2)
    assert not keep_vision_dtype(torch.nn.Module(), "float32")  # no vision tower: untouched


def test_processor_loads_without_torchvision_and_matches_layout_math(tiny_qwen2_vl):
    # dots.ocr's processor is Qwen2.5-VL's class over a Qwen2-VL image processor; the tiny
    # Qwen2-VL folder has the same files (tokenizer, chat template, preprocessor config).
    from transformers import AutoTokenizer

    image_token_id = AutoTokenizer.from_pretrained(str(tiny_qwen2_vl)).convert_tokens_to_ids("<|image_pad|>")
    processor = load_processor(str(tiny_qwen2_vl), image_token_id)
    assert processor.image_token == "<|image_pad|>" and processor.image_token_id == image_token_id
    assert not hasattr(processor, "video_processor") or processor.video_processor is None
    page = text_image(["INVOICE"], size=(1000, 700))
    budget = 28 * 28 * 64
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": page}, {"type": "text", "text": "x"}]}],
        tokenize=True,
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images_kwargs": {"size": {"shortest_edge": 3136, "longest_edge": budget}}},
    )
    _, grid_h, grid_w = inputs["image_grid_thw"][0].tolist()
    assert (grid_w * 14, grid_h * 14) == model_input_size(1000, 700, 3136, budget)
    assert int((inputs["input_ids"] == image_token_id).sum()) == grid_h * grid_w // 4


# -- prompts ----------------------------------------------------------------------------------


def test_prompts_are_dots_own():
    assert set(DOTS_PROMPTS) == {"prompt_layout_all_en", "prompt_layout_only_en", "prompt_ocr", "prompt_grounding_ocr"}
    for category in CATEGORIES:
        assert f"'{category}'" in DOTS_PROMPTS["prompt_layout_all_en"]
        assert f"'{category}'" in DOTS_PROMPTS["prompt_layout_only_en"]
    assert DOTS_PROMPTS["prompt_ocr"] == "Extract the text content from this image."
    assert DOTS_PROMPTS["prompt_grounding_ocr"].endswith("Bounding Box:\n")


def test_prompt_choice():
    sizes = ((2000, 1000), (1000, 500))
    assert choose_prompt("Extract all text", {}, *sizes) == (DEFAULT_PROMPT_MODE, DOTS_PROMPTS[DEFAULT_PROMPT_MODE])
    assert choose_prompt("", {}, *sizes)[0] == DEFAULT_PROMPT_MODE
    assert choose_prompt("Who signed the letter?", {}, *sizes) == (FREE_QUESTION, "Who signed the letter?")
    assert choose_prompt("Who signed?", {"prompt_mode": "prompt_ocr"}, *sizes) == (
        "prompt_ocr",
        DOTS_PROMPTS["prompt_ocr"],
    )
    mode, prompt = choose_prompt("", {"prompt_mode": "prompt_grounding_ocr", "bbox": [200, 100, 600, 300]}, *sizes)
    assert mode == "prompt_grounding_ocr" and prompt.endswith("Bounding Box:\n[100, 50, 300, 150]")  # model pixels
    with pytest.raises(UserError, match="bbox"):
        choose_prompt("", {"prompt_mode": "prompt_grounding_ocr"}, *sizes)
    with pytest.raises(UserError, match="prompt_layout_all_en"):
        choose_prompt("", {"prompt_mode": "layout please"}, *sizes)


# -- offline --------------------------------------------------------------------------------


def test_offline_load_fails_fast_with_the_download_command():
    spec = get_model("dots_ocr")
    plan = plan_load(CPU, spec)
    started = time.perf_counter()
    with pytest.raises((EngineError, WeightsMissingError)) as failure:
        EngineCache().get(spec, plan)
    assert time.perf_counter() - started < 5  # no hub retries
    message = str(failure.value)
    assert f"hf download rednote-hilab/dots.ocr --revision {PINNED_REVISION}" in message
    assert "HF_HUB_OFFLINE" in message


def test_router_falls_back_when_dots_cannot_be_had(tiny_qwen2_vl):
    chain = [get_model("dots_ocr"), spec_from_path(tiny_qwen2_vl, key="tiny_qwen")]
    page = text_image(["TOTAL 12.50"])
    routed = answer([Message("user", "Extract all text", [page])], chain, CPU, GenerationSettings(max_new_tokens=4))
    routed.consume()
    first, second = routed.attempts
    assert (first.model, first.outcome) == ("dots_ocr", "load_failed")
    assert "hf download rednote-hilab/dots.ocr" in first.reason
    assert (second.model, second.outcome) == ("tiny_qwen", "answered") and routed.model == "tiny_qwen"
