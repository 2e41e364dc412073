"""The fallback chain, one test per switch reason, each produced by a real engine.

- fails to load: a catalog entry whose folder holds no model; a hub id while offline;
- raises while generating: transformers' own validation inside generate() (top_p outside (0, 1));
- empty answer: the tiny checkpoint whose first token is EOS (eos_qwen2_vl);
- repetition guard: the tiny checkpoint that emits one token forever (looping_qwen2_vl);
- CUDA out of memory: there is no GPU here, so `PixelBudgetOomEngine` below is the OOM TEST DOUBLE
  (see its docstring for exactly what it simulates and what stays real);
- skipped: a plan the planner refuses.

The last resort, rapidocr, really reads the rendered test page every time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from chatvlmllm.chat.conversation import attempt_reason
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.chat.router import DEFAULT_CHAIN, answer, build_chain
from chatvlmllm.decisions import AttemptOutcome
from chatvlmllm.engines import GenerationSettings, Message, families
from chatvlmllm.engines.qwen_vl import QwenVLEngine
from chatvlmllm.i18n import use_language
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.families import Options
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import PlanOverrides
from tests.helpers import text_image, write_models_file
from tests.netwatch import outbound_attempts

PAGE_LINES = ["INVOICE 2026-11", "TOTAL 12.50"]
QUICK = GenerationSettings(max_new_tokens=96)


class PixelBudgetOomEngine(QwenVLEngine):
    """OOM TEST DOUBLE (this machine has no GPU to run out of).

    Everything is the production Qwen-VL engine on the real tiny checkpoint: loading, the
    processor resizing the image to the pixel budget of the request, generation on the worker
    thread, streaming. The one simulated part is the allocator: when the image the processor
    actually produced (image_grid_thw patches × patch_size²) is larger than the catalog entry's
    `oom_above_pixels`, `model.generate` raises torch.OutOfMemoryError, the exception CUDA raises,
    on the generation thread where a real one would surface.

    What this exercises: stream_generate turning torch's OOM into chatvlmllm's OutOfMemoryError,
    the router's single retry at half the pixel budget, and the engine honouring that smaller
    budget (a smaller image grid). What it cannot show: real CUDA memory behaviour.
    """

    def _load(self, plan) -> None:
        import torch

        super()._load(plan)
        real_generate = self.model.generate
        limit = OomDoubleOptions.of(self.spec.options).oom_above_pixels
        patch = int(self.model.config.vision_config.patch_size)

        def generate(**kwargs):
            pixels = int(kwargs["image_grid_thw"].prod(dim=-1).sum()) * patch * patch
            if pixels > limit:
                raise torch.OutOfMemoryError(f"CUDA out of memory (test double): {pixels:,} pixels > {limit:,}")
            return real_generate(**kwargs)

        self.model.generate = generate


class OomDoubleOptions(Options):
    oom_above_pixels: int


@pytest.fixture
def oom_double_family(monkeypatch):
    """Register the test double as a family for this test only (the registry is a plain dict)."""
    info = dataclasses.replace(
        families()["qwen2_vl"],
        name="oom_double_qwen2_vl",
        engine=PixelBudgetOomEngine,
        options=OomDoubleOptions,
        entries=(),  # a test double: no built-in models, model types or builder of its own
        model_types=(),
        tiny_builder=None,
    )
    monkeypatch.setitem(families(), "oom_double_qwen2_vl", info)
    return "oom_double_qwen2_vl"


def catalog_with(entries: dict[str, dict]) -> dict:
    write_models_file(Path(os.environ["CHATVLMLLM_MODELS_FILE"]), entries)
    return load_catalog()


def run_chain(keys: list[str], catalog: dict, cache: EngineCache, settings=QUICK, overrides=None):
    chain = [catalog[k] for k in keys]
    routed = answer(
        [Message("user", "Extract all text", [text_image(PAGE_LINES)])], chain, probe(), settings, overrides, cache
    )
    streams = list(routed)
    for stream in streams:
        stream.consume()
    return routed, streams


def outcomes(routed) -> list[tuple[str, str]]:
    return [(a.model, a.outcome) for a in routed.attempts]


def assert_rapidocr_answered(routed) -> None:
    assert routed.model == "rapidocr"
    assert routed.text.splitlines() == PAGE_LINES
    assert routed.metrics.model == "rapidocr"
    assert routed.extras["lines"]
    assert routed.attempts[-1].reason == "" and routed.attempts[-1].seconds > 0


def test_a_folder_without_a_model_is_skipped_without_a_load_and_rapidocr_answers(tmp_path, cache):
    catalog = catalog_with({"no_model_here": {"family": "qwen2_vl", "path": str(tmp_path)}})
    loads = []
    routed = answer(
        [Message("user", "Extract all text", [text_image(PAGE_LINES)])],
        [catalog["no_model_here"], catalog["rapidocr"]],
        probe(),
        QUICK,
        None,
        cache,
    )
    routed.on_load = lambda spec: loads.append(spec.key)
    streams = list(routed)
    for stream in streams:
        stream.consume()
    assert outcomes(routed) == [("no_model_here", "skipped"), ("rapidocr", "answered")]
    assert "no config.json" in routed.attempts[0].reason and routed.attempts[0].seconds == 0
    assert "no_model_here" not in loads  # known not to load: never "Loading…" for it
    assert len(streams) == 1
    assert_rapidocr_answered(routed)
    assert routed.fell_back and routed.to_dict()["attempts"][0]["outcome"] == "skipped"


def test_a_model_folder_that_fails_to_load_falls_back(tmp_path, cache):
    (tmp_path / "config.json").write_text("{}")  # looks like a model folder, holds none
    catalog = catalog_with({"broken_here": {"family": "qwen2_vl", "path": str(tmp_path)}})
    routed, streams = run_chain(["broken_here", "rapidocr"], catalog, cache)
    assert outcomes(routed) == [("broken_here", "load_failed"), ("rapidocr", "answered")]
    assert routed.attempts[0].reason
    assert len(streams) == 1  # the broken model never got to stream
    assert_rapidocr_answered(routed)


def test_a_hub_model_offline_is_skipped_at_once_with_the_download_command(cache):
    catalog = catalog_with({"hub_only": {"family": "qwen2_vl", "hub_id": "chatvlmllm-tests/not-downloaded"}})
    with outbound_attempts() as network:
        routed, _ = run_chain(["hub_only", "rapidocr"], catalog, cache)
    assert outcomes(routed) == [("hub_only", "skipped"), ("rapidocr", "answered")]
    assert "hf download chatvlmllm-tests/not-downloaded" in routed.attempts[0].reason
    assert network == []  # offline means no hub lookups at all, so no retry loop to wait through
    assert_rapidocr_answered(routed)


def test_an_error_during_generation_moves_on(tiny_qwen2_vl, cache):
    catalog = catalog_with({"tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    # Sampling with top_p outside (0, 1): transformers raises inside generate(), on the worker thread.
    settings = GenerationSettings(max_new_tokens=16, temperature=0.7, top_p=-1.0)
    routed, streams = run_chain(["tiny", "rapidocr"], catalog, cache, settings)
    assert outcomes(routed) == [("tiny", "error"), ("rapidocr", "answered")]
    assert "top_p" in routed.attempts[0].reason
    # An engine failure is recorded in its own words (no class name), as a typed outcome that
    # stays the plain string it always was in JSON.
    assert routed.attempts[0].outcome is AttemptOutcome.ERROR
    assert routed.attempts[0].reason.startswith("Generation failed:")
    assert json.loads(json.dumps(routed.to_dict()))["attempts"][0]["outcome"] == "error"
    assert len(streams) == 2
    assert_rapidocr_answered(routed)


def test_an_empty_answer_moves_on(eos_qwen2_vl, cache):
    catalog = catalog_with({"eos_first": {"family": "qwen2_vl", "path": str(eos_qwen2_vl)}})
    routed, streams = run_chain(["eos_first", "rapidocr"], catalog, cache)
    assert outcomes(routed) == [("eos_first", "empty"), ("rapidocr", "answered")]
    assert routed.attempts[0].reason == "the answer was empty"
    assert streams[0].text.strip() == "" and streams[0].metrics.new_tokens == 1
    assert_rapidocr_answered(routed)


def test_the_repetition_guard_moves_on(looping_qwen2_vl, cache):
    catalog = catalog_with({"looping": {"family": "qwen2_vl", "path": str(looping_qwen2_vl)}})
    routed, streams = run_chain(["looping", "rapidocr"], catalog, cache)
    assert outcomes(routed) == [("looping", "repetition"), ("rapidocr", "answered")]
    assert streams[0].metrics.stopped_by == "repetition"
    assert streams[0].metrics.new_tokens < QUICK.max_new_tokens  # stopped early, not at the limit
    assert_rapidocr_answered(routed)


def test_out_of_memory_retries_once_with_half_the_pixels_and_answers(tiny_qwen2_vl, oom_double_family, cache):
    # The CPU plan's budget is 200,704 pixels: the first try is over the double's limit, the retry under it.
    catalog = catalog_with(
        {"oom_then_ok": {"family": oom_double_family, "path": str(tiny_qwen2_vl), "oom_above_pixels": 150_000}}
    )
    settings = GenerationSettings(max_new_tokens=16)  # short: the random tiny model may repeat itself in longer runs
    routed, streams = run_chain(["oom_then_ok", "rapidocr"], catalog, cache, settings)
    assert outcomes(routed) == [("oom_then_ok", "oom_retry"), ("oom_then_ok", "answered")]
    assert "max_pixels=100,352" in routed.attempts[0].reason
    assert routed.model == "oom_then_ok" and len(streams) == 2
    t, h, w = routed.extras["image_grid_thw"][0]
    assert t * h * w * 14 * 14 <= 100_352  # the retry really used the smaller budget


def test_out_of_memory_twice_moves_on_to_the_next_model(tiny_qwen2_vl, oom_double_family, cache):
    catalog = catalog_with(
        {"oom_always": {"family": oom_double_family, "path": str(tiny_qwen2_vl), "oom_above_pixels": 20_000}}
    )
    routed, _ = run_chain(["oom_always", "rapidocr"], catalog, cache)
    assert outcomes(routed) == [("oom_always", "oom_retry"), ("oom_always", "error"), ("rapidocr", "answered")]
    assert "out of memory" in routed.attempts[1].reason.lower()
    assert_rapidocr_answered(routed)


def test_a_plan_the_planner_refuses_is_skipped(tiny_qwen2_vl, cache):
    catalog = catalog_with({"tiny_fa2": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}})
    routed, streams = run_chain(
        ["tiny_fa2", "rapidocr"], catalog, cache, overrides=PlanOverrides(attention="flash_attention_2")
    )
    assert outcomes(routed) == [("tiny_fa2", "skipped"), ("rapidocr", "answered")]
    assert "flash_attention_2" in routed.attempts[0].reason
    assert len(streams) == 1
    assert_rapidocr_answered(routed)


def test_the_default_chain_offline_ends_with_rapidocr(eos_qwen2_vl, cache):
    catalog = catalog_with({"eos_first": {"family": "qwen2_vl", "path": str(eos_qwen2_vl)}})
    chain = build_chain(catalog["eos_first"], catalog=catalog)
    # Remote-code entries never join as fallbacks (dots.ocr, while its built-in entry still needs it).
    fallbacks = [key for key in DEFAULT_CHAIN if not catalog[key].trust_remote_code]
    assert [spec.key for spec in chain] == ["eos_first", *fallbacks]
    routed, _ = run_chain([spec.key for spec in chain], catalog, cache)
    got = dict(outcomes(routed))
    assert got["eos_first"] == "empty"
    # No weights offline: skipped without a load.
    assert all(got[key] == "skipped" for key in fallbacks if key not in ("rapidocr", "eos_first"))
    assert_rapidocr_answered(routed)


def test_the_fallback_chain_is_configurable(monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "tesseract, rapidocr")
    catalog = load_catalog()
    assert [s.key for s in build_chain(catalog["qwen_vl_2b"], catalog=catalog)] == [
        "qwen_vl_2b",
        "tesseract",
        "rapidocr",
    ]
    assert [s.key for s in build_chain(catalog["qwen_vl_2b"], fallback=False, catalog=catalog)] == ["qwen_vl_2b"]


def test_when_nothing_answers_the_error_names_every_reason(tmp_path, cache):
    catalog = catalog_with({"no_model_here": {"family": "qwen2_vl", "path": str(tmp_path)}})
    routed, _ = run_chain(["no_model_here"], catalog, cache)
    assert routed.model is None and routed.text == ""
    assert routed.error.startswith("No model could answer.") and "no_model_here" in routed.error
    assert routed.to_dict()["error"] == routed.error


@pytest.mark.slow
def test_the_document_language_picks_the_offline_engine_that_reads_it_best():
    from chatvlmllm.models.choice import default_model
    from tests.engines.test_classic_ocr import require_tesseract

    require_tesseract()
    catalog = load_catalog()
    dots = [] if catalog["dots_ocr"].trust_remote_code else ["dots_ocr"]  # remote code is never a fallback
    russian = [s.key for s in build_chain(catalog["qwen_vl_2b"], catalog=catalog, language="ru")]
    assert russian == ["qwen_vl_2b", *dots, "ocr_auto", "rapidocr"]
    english = [s.key for s in build_chain(catalog["qwen_vl_2b"], catalog=catalog, language="en")]
    assert english == ["qwen_vl_2b", *dots, "ocr_auto", "rapidocr"]
    # Offline with no VLM weights: ocr_auto, which probes each page's script (docs/benchmark.md).
    assert default_model(probe(), catalog, language="ru")[0] == "ocr_auto"
    assert default_model(probe(), catalog)[0] == "ocr_auto"


@pytest.mark.slow
def test_remote_code_models_are_never_silent_fallbacks():
    from chatvlmllm.models.catalog import ModelSpec

    remote = ModelSpec(key="remote_vlm", family="qwen2_vl", hub_id="org/remote", trust_remote_code=True)
    native = ModelSpec(key="native_vlm", family="qwen2_vl", hub_id="org/native")
    catalog = {"remote_vlm": remote, "native_vlm": native}
    chain = build_chain(native, catalog=catalog, chain_keys=["remote_vlm", "native_vlm"])
    assert [s.key for s in chain] == ["native_vlm"]
    # Chosen explicitly, it runs (first), and still nothing else with remote code joins.
    chosen = build_chain(remote, catalog=catalog, chain_keys=["remote_vlm", "native_vlm"])
    assert [s.key for s in chosen] == ["remote_vlm", "native_vlm"]


def test_a_skipped_models_reason_is_stored_in_english_and_reads_in_the_language_of_whoever_shows_it(cache):
    catalog = load_catalog()  # offline: qwen_vl_2b's weights are not here
    routed, _ = run_chain(["qwen_vl_2b", "rapidocr"], catalog, cache)
    skipped = json.loads(json.dumps(routed.attempts[0].to_dict()))  # as a transcript keeps it
    assert skipped["outcome"] == "skipped" and skipped["reason"].startswith("Weights for qwen_vl_2b")
    assert attempt_reason(skipped) == skipped["reason"]  # English where no language is set
    with use_language("ru"):
        russian = attempt_reason(skipped)
    assert re.search("[а-яА-Я]", russian) and "qwen_vl_2b" in russian and "Weights for" not in russian
    answered = routed.attempts[-1].to_dict()
    assert "reason_message" not in answered  # no message to keep: the stored form is as before
    assert_rapidocr_answered(routed)
