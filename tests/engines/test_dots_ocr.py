"""dots.ocr through chatvlmllm's own model code, on a tiny checkpoint in the hub's layout.

The folder is written by `devtools.tiny_models.build_tiny_dots_ocr` with the real config,
processor and generation values (read from ../shared/hubfiles/dots_ocr) and read back by the
production loader. Agreement with dots.ocr's own hub code is checked numerically by
benchmarks/dots_remote_check.py (the hub code is not part of this project).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest
import torch
from transformers import Qwen2ForCausalLM

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.router import answer
from chatvlmllm.devtools.hub_tiny import HubFolder
from chatvlmllm.documents.layout import CATEGORIES, layout_extras
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.engines._dots_prompts import (
    DEFAULT_PROMPT_MODE,
    DOTS_MAX_NEW_TOKENS,
    DOTS_PROMPTS,
    FREE_QUESTION,
    PromptMode,
    answer_budget,
    choose_prompt,
)
from chatvlmllm.engines._dots_vision import DotsOcrForGeneration, VisionAttention
from chatvlmllm.engines.dots_ocr import PINNED_REVISION, DotsOptions, load_model
from chatvlmllm.errors import EngineError, UserError, WeightsMissingError
from chatvlmllm.models.catalog import get_model, spec_from_path
from chatvlmllm.models.hardware import HardwareProfile, simulated_gpu
from chatvlmllm.models.planner import PlanOverrides, plan_load
from tests.helpers import text_image
from tests.netwatch import outbound_attempts

CPU = HardwareProfile(device="cpu", ram_total_gb=32.0, cpu_count=2)
BLACKWELL = simulated_gpu("12.0:16")  # RTX 5070 Ti: flash-attn wheels import but have no sm_120 kernel
TURING = simulated_gpu("7.5:16")  # T4: no bfloat16
ADA_FA2 = simulated_gpu("8.9:24", assume_flash_attn=True)
PAGE = text_image(["INVOICE 2026-11", "TOTAL 12.50"], size=(480, 320))
SMALL = 28 * 28 * 64  # pixel budget that keeps the tiny prompts short


@pytest.fixture(scope="module")
def cache() -> EngineCache:
    return EngineCache()


def engine_for(folder: Path, cache: EngineCache, key: str = "tiny_dots", **overrides):
    spec = spec_from_path(folder, key=key)
    plan = plan_load(CPU, spec, PlanOverrides(max_pixels=SMALL, **overrides))
    return cache.get(spec, plan)


def ask(engine, text: str = "Extract all text", images=None, max_new_tokens: int | None = 12, **options):
    stream = engine.stream(
        [Message("user", text, images or [PAGE])], GenerationSettings(max_new_tokens=max_new_tokens, options=options)
    )
    stream.consume()
    return stream


# -- the checkpoint folder keeps the real contract ---------------------------------------------


def test_tiny_folder_has_the_hub_layout_and_real_values(tiny_dots_ocr):
    real = HubFolder.of("dots_ocr")
    config = json.loads((tiny_dots_ocr / "config.json").read_text())
    assert config["model_type"] == "dots_ocr" and config["architectures"] == ["DotsOCRForCausalLM"]
    vision, real_vision = config["vision_config"], real.config["vision_config"]
    for key in ("attn_implementation", "post_norm", "use_bias", "rms_norm_eps", "is_causal", "init_merger_std"):
        assert vision[key] == real_vision[key], key
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]) == (14, 2, 1)
    assert config["rope_theta"] == real.config["rope_theta"] and config["attention_bias"] is True
    processor = json.loads((tiny_dots_ocr / "preprocessor_config.json").read_text())
    assert processor == real.json("preprocessor_config.json")  # min/max pixels, mean/std: the real file
    from transformers import Qwen2Tokenizer

    tokenizer = Qwen2Tokenizer.from_pretrained(str(tiny_dots_ocr))
    assert tokenizer.convert_ids_to_tokens(config["image_token_id"]) == real.token(real.config["image_token_id"])
    generation = json.loads((tiny_dots_ocr / "generation_config.json").read_text())
    assert (
        tokenizer.convert_ids_to_tokens(generation["eos_token_id"])
        == [real.token(i) for i in real.generation["eos_token_id"]]
        == ["<|endoftext|>", "<|endofassistant|>"]
    )  # the real order
    assert not list(tiny_dots_ocr.glob("*.py"))  # no model code in the folder


# -- loading and answering --------------------------------------------------------------------


def test_loads_by_parameter_names_without_remote_code(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    model = engine.model
    assert isinstance(model, DotsOcrForGeneration) and isinstance(model, Qwen2ForCausalLM)
    assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"
    assert model.vision_tower.attention_modes() == {VisionAttention.SDPA}
    assert engine.processor.image_token == "<|imgpad|>"
    assert not get_model("dots_ocr").trust_remote_code  # the built-in entry runs no hub code


def test_multi_token_generation_on_cpu_fp32(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    stream = ask(engine, max_new_tokens=16, prompt_mode="prompt_ocr")
    m, extras = stream.metrics, stream.extras
    assert (m.new_tokens, m.stopped_by) == (16, "max_tokens")  # the old remote path stopped after one
    assert (m.device, m.dtype) == ("cpu", "float32")
    t, h, w = extras["image_grid_thw"]
    assert extras["image_tokens"] == t * h * w // 4 and h * w * 196 <= SMALL
    assert extras["vision_attention"] == "sdpa" and extras["model_code"] == "chatvlmllm"
    assert extras["prompt_mode"] == "prompt_ocr" and "layout" not in extras


def test_layout_prompt_gives_layout_extras_on_the_original_page(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    stream = ask(engine, "Extract all text", max_new_tokens=8)  # a transcription request: layout prompt
    layout = stream.extras["layout"]
    assert stream.extras["prompt_mode"] == DEFAULT_PROMPT_MODE == layout["prompt_mode"]
    _, h, w = stream.extras["image_grid_thw"]
    assert layout["image_size"] == [480, 320] and layout["input_size"] == [w * 14, h * 14]
    assert layout == layout_extras(stream.text, (480, 320), (w * 14, h * 14), DEFAULT_PROMPT_MODE)
    # What the model would answer on a real page, mapped with the sizes this run's processor produced.
    answer_text = json.dumps([{"bbox": [0, 0, w * 7, h * 7], "category": "Title", "text": "INVOICE"}])
    parsed = layout_extras(answer_text, (480, 320), (w * 14, h * 14), DEFAULT_PROMPT_MODE)
    (element,) = parsed["elements"]
    assert element["category"] == "Title" and element["bbox"] == [0, 0, 240, 160]


def test_two_images_in_one_prompt(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    second = text_image(["PAGE TWO"], size=(280, 420))
    stream = ask(engine, "Compare the two pages", images=[PAGE, second], max_new_tokens=4, all_images=True)
    grids = stream.extras["image_grid_thw"]
    assert stream.extras["images"] == 2 and len(grids) == 2
    assert stream.extras["image_tokens"] == sum(t * h * w // 4 for t, h, w in grids)
    assert stream.metrics.new_tokens >= 1
    one = ask(engine, "Compare the two pages", images=[PAGE, second], max_new_tokens=1)
    assert one.extras["images"] == 1  # without all_images: the page given by image_index


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_casts_run(tiny_dots_ocr, cache, dtype):
    engine = engine_for(tiny_dots_ocr, cache, key=f"tiny_dots_{dtype}", dtype=dtype)
    tower_dtype = engine.model.vision_tower.patch_embed.patchifier.proj.weight.dtype
    assert str(engine.model.dtype) == f"torch.{dtype}" and str(tower_dtype) == f"torch.{dtype}"
    stream = ask(engine, max_new_tokens=4, prompt_mode="prompt_ocr")  # fp32 pixels are cast, never forced to bf16
    assert stream.metrics.new_tokens == 4 and stream.metrics.dtype == dtype


def test_vision_attention_modes_agree(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    processor, tower = engine.processor, engine.model.vision_tower
    images = processor.image_processor(images=[PAGE, text_image(["B"], size=(200, 300))], return_tensors="pt")
    outputs = {}
    with torch.no_grad():
        for mode in VisionAttention:
            tower.set_attention(mode)
            outputs[mode] = tower(images["pixel_values"], images["image_grid_thw"])
    tower.set_attention(VisionAttention.SDPA)
    for mode in (VisionAttention.EAGER, VisionAttention.BLOCK_MASK):
        assert torch.allclose(outputs[mode], outputs[VisionAttention.SDPA], atol=1e-5), mode


def test_hub_code_in_the_folder_is_never_run(tiny_dots_ocr, tmp_path, cache):
    folder = tmp_path / "with_hub_code"
    folder.mkdir()
    for item in tiny_dots_ocr.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_dots.DotsOCRConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_dots.py").write_text("raise RuntimeError('hub code ran')\n")
    stream = ask(engine_for(folder, cache, key="with_hub_code"), max_new_tokens=2, prompt_mode="prompt_ocr")
    assert stream.metrics.new_tokens == 2


def test_a_checkpoint_with_other_parameter_names_is_refused(tiny_dots_ocr, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "renamed"
    folder.mkdir()
    for item in tiny_dots_ocr.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    weights = load_file(str(folder / "model.safetensors"))
    weights["vision_tower.trunk.norm.weight"] = weights.pop("vision_tower.post_trunk_norm.weight")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(EngineError, match=r"does not hold dots\.ocr's parameters"):
        load_model(folder, "float32", "sdpa", "sdpa")


def test_temperature_samples_and_zero_is_greedy(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)

    def texts(temperature: float) -> set[str]:
        seen = set()
        for seed in range(4):
            torch.manual_seed(seed)
            stream = engine.stream(
                [Message("user", "Extract all text", [PAGE])],
                GenerationSettings(
                    max_new_tokens=8,
                    temperature=temperature,
                    repetition_guard=False,
                    options={"prompt_mode": "prompt_ocr"},
                ),
            )
            seen.add(stream.consume())
        return seen

    assert len(texts(1.0)) > 1 and len(texts(0.0)) == 1


# -- length ---------------------------------------------------------------------------------


def test_user_max_new_tokens_is_honoured_and_the_long_default_only_applies_unset():
    unset, user = GenerationSettings(), GenerationSettings(max_new_tokens=16)
    none = DotsOptions()
    assert answer_budget(DEFAULT_PROMPT_MODE, unset, none) == DOTS_MAX_NEW_TOKENS
    assert answer_budget(DEFAULT_PROMPT_MODE, user, none) == 16  # never raised to 8192
    assert answer_budget(FREE_QUESTION, unset, none) == 1024 and answer_budget(FREE_QUESTION, user, none) == 16
    assert answer_budget(FREE_QUESTION, user, DotsOptions(max_new_tokens=40)) == 40  # an explicit option wins


def test_the_user_limit_reaches_generate(tiny_dots_ocr, cache):
    stream = ask(engine_for(tiny_dots_ocr, cache), "Extract all text", max_new_tokens=3)
    assert stream.extras["max_new_tokens"] == 3 and stream.metrics.new_tokens == 3


# -- the plan -------------------------------------------------------------------------------


def test_plan_names_the_code_that_runs():
    plan = plan_load(BLACKWELL, get_model("dots_ocr"))
    assert plan.runnable and plan.dtype == "bfloat16"
    assert (plan.attention, plan.vision_attention) == ("sdpa", "sdpa")
    assert plan.max_pixels == 1_003_520
    reasons = " | ".join(plan.reason_texts())
    assert "no remote code" in reasons and "vision tower sdpa one image at a time" in reasons
    assert "flash-attn not needed" in reasons and "square of its patches" in reasons
    assert "remote code allowed" not in reasons and "stand-in" not in reasons


@pytest.mark.parametrize(("hw", "dtype"), [(CPU, "float32"), (TURING, "float16"), (ADA_FA2, "bfloat16")])
def test_plan_runs_on_every_device_without_opt_in(hw, dtype):
    plan = plan_load(hw, get_model("dots_ocr"))
    assert plan.runnable and plan.dtype == dtype and plan.vision_attention == "sdpa"
    assert any(f"in {dtype}" in r for r in plan.reason_texts())


def test_eager_plan_gives_an_eager_vision_tower(tiny_dots_ocr, cache):
    plan = plan_load(CPU, get_model("dots_ocr"), PlanOverrides(attention="eager"))
    assert plan.vision_attention == "eager"
    engine = engine_for(tiny_dots_ocr, cache, key="tiny_dots_eager", attention="eager")
    assert engine.model.vision_tower.attention_modes() == {VisionAttention.EAGER}
    assert ask(engine, max_new_tokens=2, prompt_mode="prompt_ocr").extras["vision_attention"] == "eager"


# -- prompts ----------------------------------------------------------------------------------


def test_prompts_are_dots_own():
    assert set(DOTS_PROMPTS) == {"prompt_layout_all_en", "prompt_layout_only_en", "prompt_ocr", "prompt_grounding_ocr"}
    for category in CATEGORIES:
        assert f"'{category}'" in DOTS_PROMPTS["prompt_layout_all_en"]
        assert f"'{category}'" in DOTS_PROMPTS["prompt_layout_only_en"]
    assert DOTS_PROMPTS["prompt_ocr"] == "Extract the text content from this image."
    assert DOTS_PROMPTS["prompt_grounding_ocr"].endswith("Bounding Box:\n")


def request(**options) -> DotsOptions:
    """One answer's options over a catalog entry that sets none, as the engine reads them."""
    return DotsOptions.of(DotsOptions(), options)


def test_prompt_choice():
    sizes = ((2000, 1000), (1000, 500))
    assert choose_prompt("Extract all text", request(), *sizes) == (
        DEFAULT_PROMPT_MODE,
        DOTS_PROMPTS[DEFAULT_PROMPT_MODE],
    )
    assert choose_prompt("", request(), *sizes)[0] == DEFAULT_PROMPT_MODE
    assert choose_prompt("Who signed the letter?", request(), *sizes) == (FREE_QUESTION, "Who signed the letter?")
    assert choose_prompt("Who signed?", request(prompt_mode="prompt_ocr"), *sizes) == (
        "prompt_ocr",
        DOTS_PROMPTS["prompt_ocr"],
    )
    grounding = request(prompt_mode="prompt_grounding_ocr", bbox=[200, 100, 600, 300])
    mode, prompt = choose_prompt("", grounding, *sizes)
    assert mode == "prompt_grounding_ocr" and prompt.endswith("Bounding Box:\n[100, 50, 300, 150]")  # model pixels
    with pytest.raises(UserError, match="bbox"):
        choose_prompt("", request(prompt_mode="prompt_grounding_ocr"), *sizes)
    # A mode that is not one of dots.ocr's is refused naming the valid ones, before any page is read.
    with pytest.raises(UserError, match=r"prompt_mode: .*'prompt_layout_all_en'"):
        request(prompt_mode="layout please")
    with pytest.raises(UserError, match="bbox"):
        request(prompt_mode="prompt_grounding_ocr", bbox=[1, 2, 3])


def test_the_prompt_mode_option_names_exactly_dots_prompts():
    assert get_args(PromptMode) == tuple(DOTS_PROMPTS)


def test_no_image_is_a_clear_error(tiny_dots_ocr, cache):
    engine = engine_for(tiny_dots_ocr, cache)
    stream = engine.stream([Message("user", "Extract all text")], GenerationSettings(max_new_tokens=2))
    with pytest.raises(UserError, match="needs a page image"):
        stream.consume()


# -- offline --------------------------------------------------------------------------------


def test_offline_load_fails_fast_with_the_download_command():
    spec = get_model("dots_ocr")
    plan = plan_load(CPU, spec)
    with outbound_attempts() as network, pytest.raises((EngineError, WeightsMissingError)) as failure:
        EngineCache().get(spec, plan)
    assert network == []  # no hub lookups, so no retries to wait through
    message = str(failure.value)
    assert f"hf download rednote-hilab/dots.ocr --revision {PINNED_REVISION}" in message
    assert "HF_HUB_OFFLINE" in message


def test_router_falls_back_when_dots_cannot_be_had(tiny_qwen2_vl):
    chain = [get_model("dots_ocr"), spec_from_path(tiny_qwen2_vl, key="tiny_qwen")]
    page = text_image(["TOTAL 12.50"])
    routed = answer([Message("user", "Extract all text", [page])], chain, CPU, GenerationSettings(max_new_tokens=4))
    routed.consume()
    first, second = routed.attempts
    assert (first.model, first.outcome) == ("dots_ocr", "skipped")  # known not to be here: no load tried
    assert "hf download rednote-hilab/dots.ocr" in first.reason
    assert (second.model, second.outcome) == ("tiny_qwen", "answered") and routed.model == "tiny_qwen"


def test_builtin_entry_pins_the_weights_revision():
    spec = get_model("dots_ocr")
    assert spec.revision == PINNED_REVISION and len(spec.revision) == 40
    check = replace(spec, trust_remote_code=True).family_info().plan_check
    assert check is not None and not any(reason.is_problem for reason in check(spec, "float32", "sdpa"))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_on_cuda_with_sdpa_and_no_flash_attn(tiny_dots_ocr, dtype):
    from chatvlmllm.models.hardware import probe

    spec = spec_from_path(tiny_dots_ocr, key=f"tiny_dots_cuda_{dtype}")
    plan = plan_load(probe(), spec, PlanOverrides(dtype=dtype, attention="sdpa"))
    assert plan.device == "cuda" and plan.vision_attention == "sdpa"
    stream = (
        EngineCache()
        .get(spec, plan)
        .stream(
            [Message("user", "x", [PAGE])], GenerationSettings(max_new_tokens=4, options={"prompt_mode": "prompt_ocr"})
        )
    )
    stream.consume()
    assert stream.metrics.new_tokens == 4 and stream.metrics.peak_vram_mb
