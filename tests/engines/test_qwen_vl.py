"""Qwen-VL engines on tiny, randomly initialised real checkpoints, through the production loader."""

from __future__ import annotations

import threading

import pytest
import torch
from PIL import Image

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.devtools.hub_tiny import HubFolder
from chatvlmllm.devtools.real_contracts import QWEN25_VL_3B
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.errors import PlanError
from chatvlmllm.models.catalog import spec_from_path
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import PlanOverrides, plan_load

PAGE = Image.new("RGB", (640, 480), "white")


def load(folder, cache=None, **overrides):
    spec = spec_from_path(folder)
    plan = plan_load(probe(), spec, PlanOverrides(**overrides))
    return (cache or EngineCache()).get(spec, plan)


@pytest.fixture(params=["qwen2", "qwen3"])
def engine(request, tiny_qwen2_vl, tiny_qwen3_vl):
    return load(tiny_qwen2_vl if request.param == "qwen2" else tiny_qwen3_vl)


def test_answer_structure_and_metrics(engine):
    answer = engine.stream([Message("user", "Extract all text", [PAGE])], GenerationSettings(max_new_tokens=12))
    chunks = list(answer)
    m = answer.metrics
    assert "".join(chunks) == answer.text
    # Image tokens: one per merged patch = grid product / merge².
    ((t, h, w),) = answer.extras["image_grid_thw"]
    merge = engine.processor.image_processor.merge_size
    assert answer.extras["image_tokens"] == t * h * w // merge**2 > 0
    assert m.prompt_tokens > answer.extras["image_tokens"]
    assert 1 <= m.new_tokens <= 12
    assert m.stopped_by in ("eos", "max_tokens", "repetition")
    if m.stopped_by == "max_tokens":
        assert m.new_tokens == 12
    assert (m.device, m.dtype, m.attention) == ("cpu", "float32", "sdpa")
    assert m.load_s > 0 and m.total_s > 0 and m.ttft_s is not None and m.ttft_s <= m.total_s
    assert m.peak_vram_mb is None  # CPU


def test_pixel_budget_comes_from_the_plan(tiny_qwen2_vl):
    big = Image.new("RGB", (1600, 1200), "white")
    small_budget = load(tiny_qwen2_vl, max_pixels=28 * 28 * 16)
    large_budget = load(tiny_qwen2_vl, max_pixels=28 * 28 * 256)
    tokens = []
    for engine in (small_budget, large_budget):
        answer = engine.stream([Message("user", "read", [big])], GenerationSettings(max_new_tokens=1))
        answer.consume()
        tokens.append(answer.extras["image_tokens"])
    assert tokens[0] <= 16 < tokens[1] <= 256


def test_history_reaches_the_prompt(tiny_qwen2_vl):
    engine = load(tiny_qwen2_vl)
    first = [Message("user", "What is the total?", [PAGE])]
    history = [*first, Message("assistant", "The total is 12.50"), Message("user", "And the date?")]
    prompt = engine.processor.tokenizer.decode(engine.prepare_inputs(history, 28 * 28 * 64)["input_ids"][0])
    assert prompt.index("What is the total?") < prompt.index("The total is 12.50") < prompt.index("And the date?")
    assert prompt.count("<|vision_start|>") == 1  # the page is sent once, with the turn that used it
    one = engine.stream(first, GenerationSettings(max_new_tokens=2))
    one.consume()
    three = engine.stream(history, GenerationSettings(max_new_tokens=2))
    three.consume()
    assert three.metrics.prompt_tokens > one.metrics.prompt_tokens


def test_streams_in_several_chunks(looping_qwen2_vl):
    engine = load(looping_qwen2_vl)
    answer = engine.stream([Message("user", "hi")], GenerationSettings(max_new_tokens=20, repetition_guard=False))
    chunks = list(answer)
    assert len(chunks) > 1
    assert answer.metrics.new_tokens == 20 and answer.metrics.stopped_by == "max_tokens"


def test_repetition_guard_stops_a_looping_generation(looping_qwen2_vl):
    engine = load(looping_qwen2_vl)
    answer = engine.stream([Message("user", "hi", [PAGE])], GenerationSettings(max_new_tokens=400))
    answer.consume()
    assert answer.metrics.stopped_by == "repetition"
    assert answer.metrics.new_tokens < 100
    words = answer.text.split()
    assert len(words) == answer.metrics.new_tokens and len(set(words)) == 1


def test_eos_at_once_gives_an_empty_answer(eos_qwen2_vl):
    answer = load(eos_qwen2_vl).stream([Message("user", "hi")], GenerationSettings(max_new_tokens=50))
    answer.consume()
    assert answer.text == ""
    assert (answer.metrics.stopped_by, answer.metrics.new_tokens) == ("eos", 1)


def test_closing_the_stream_cancels_generation_and_frees_the_engine(looping_qwen2_vl):
    engine = load(looping_qwen2_vl)
    answer = engine.stream([Message("user", "hi")], GenerationSettings(max_new_tokens=2000, repetition_guard=False))
    iterator = iter(answer)
    next(iterator)
    iterator.close()
    assert answer.metrics.stopped_by == "cancelled"
    # The engine is free: the next answer runs to its end (on a thread, so a held engine fails, not hangs).
    follow_up = engine.stream([Message("user", "hi")], GenerationSettings(max_new_tokens=3, repetition_guard=False))
    reader = threading.Thread(target=follow_up.consume, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive() and follow_up.metrics.new_tokens == 3


def test_a_stream_cancelled_while_queued_never_reaches_the_model(looping_qwen2_vl):
    engine = load(looping_qwen2_vl)
    settings = GenerationSettings(max_new_tokens=30, repetition_guard=False)
    first = iter(engine.stream([Message("user", "a")], settings))
    next(first)  # the first answer holds the engine
    queued = engine.stream([Message("user", "b", [PAGE])], settings)
    queued.cancel()  # e.g. a server client that gave up while waiting
    for _ in first:
        pass
    assert queued.consume() == ""
    m = queued.metrics
    assert (m.stopped_by, m.prompt_tokens, m.new_tokens) == ("cancelled", None, None)  # no prefill, no token


def test_flash_attention_refused_when_it_cannot_run(tiny_qwen2_vl):
    cache = EngineCache()
    with pytest.raises(PlanError, match=r"flash_attention_2.*needs a CUDA GPU"):
        load(tiny_qwen2_vl, cache=cache, attention="flash_attention_2")
    assert cache.loads == 0


def test_explicit_eager_is_honoured(tiny_qwen3_vl):
    engine = load(tiny_qwen3_vl, attention="eager")
    assert engine.model.config._attn_implementation == "eager"
    answer = engine.stream([Message("user", "hi", [PAGE])], GenerationSettings(max_new_tokens=2))
    answer.consume()
    assert answer.metrics.attention == "eager"


def test_sampling_settings(tiny_qwen2_vl):
    answer = load(tiny_qwen2_vl).stream(
        [Message("user", "hi")], GenerationSettings(max_new_tokens=5, temperature=0.8, top_p=0.9)
    )
    answer.consume()
    assert 1 <= answer.metrics.new_tokens <= 5


def test_qwen25_vl_loads_and_answers(tiny_qwen25_vl):
    engine = load(tiny_qwen25_vl)
    assert type(engine.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    answer = engine.stream([Message("user", "Extract all text", [PAGE])], GenerationSettings(max_new_tokens=6))
    answer.consume()
    ((t, h, w),) = answer.extras["image_grid_thw"]
    assert answer.extras["image_tokens"] == t * h * w // 4 and 1 <= answer.metrics.new_tokens <= 6


def _texts(engine, temperature: float, seeds=range(4)) -> list[str]:
    texts = []
    for seed in seeds:
        torch.manual_seed(seed)
        answer = engine.stream(
            [Message("user", "Describe the image.", [PAGE])],
            GenerationSettings(max_new_tokens=12, temperature=temperature, repetition_guard=False),
        )
        texts.append(answer.consume())
    return texts


@pytest.mark.parametrize("folder", ["tiny_qwen2_vl", "tiny_qwen25_vl", "tiny_qwen3_vl"])
@pytest.mark.slow
def test_temperature_means_what_it_says_whatever_generation_config_says(folder, request):
    path = request.getfixturevalue(folder)
    engine = load(path)
    shipped = engine.model.generation_config  # the real file's values (Qwen2-VL: top_k=1, top_p=0.001)
    real = {
        "tiny_qwen2_vl": HubFolder.of("qwen2_vl").generation,  # the real generation_config.json
        "tiny_qwen3_vl": HubFolder.of("qwen3_vl").generation,
        "tiny_qwen25_vl": QWEN25_VL_3B.generation,  # no real file: the hand-entered contract
    }[folder]
    for key in ("do_sample", "top_k", "top_p", "temperature", "repetition_penalty"):
        assert getattr(shipped, key) == real[key], key
    sampled = _texts(engine, temperature=1.0)
    assert len(set(sampled)) > 1  # the checkpoint's top_k/top_p would make these all the same
    greedy = _texts(engine, temperature=0.0)
    assert len(set(greedy)) == 1  # temperature 0 is greedy, whatever the seed


def test_sampling_arguments_override_every_generation_config_knob():
    from chatvlmllm.engines.hf_common import sampling_kwargs

    sampled = sampling_kwargs(GenerationSettings(temperature=0.7, top_p=0.9))
    assert sampled == {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0}
    assert sampling_kwargs(GenerationSettings(temperature=0.0)) == {"do_sample": False}


def test_user_max_new_tokens_is_honoured(looping_qwen2_vl):
    answer = load(looping_qwen2_vl).stream(
        [Message("user", "Extract all text", [PAGE])], GenerationSettings(max_new_tokens=7, repetition_guard=False)
    )
    answer.consume()
    assert (answer.metrics.new_tokens, answer.metrics.stopped_by) == (7, "max_tokens")
