"""Every built-in model works from its real hub files (../shared/hubfiles/<family>, sources in its SOURCES.md).

For each built-in catalog model, a tiny random checkpoint is built from its real folder
(`devtools.hub_tiny`: the size dimensions shrink; every token id, template, processor setting
and generation value is the real one), then:

- it loads through the production path, `chatvlmllm ask --model-path DIR --no-fallback` and a
  catalog entry in a user models file, and answers at least two tokens with no fallback;
- the prompt ids the engine hands to `generate` equal what the real processor and the folder's
  chat template produce (where the folder has no template: the model card's prompt);
- the family's pixel bounds are the real processor's, and a plan that lowers the maximum says why.

The expected ids are computed here from the real folder with transformers' own classes (the
tokenizer renders the folder's template, the real processor class expands the image tokens).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.cli import main
from chatvlmllm.decisions import Backend
from chatvlmllm.devtools.hub_tiny import SIZE_KEYS
from chatvlmllm.engines._dots_prompts import DOTS_PROMPTS
from chatvlmllm.models.catalog import BUILTIN_MODELS, spec_from_path
from chatvlmllm.models.families import family_info
from chatvlmllm.models.hardware import HardwareProfile, simulated_gpu
from chatvlmllm.models.planner import PlanOverrides, plan_load
from tests.helpers import NO_REAL_FILES, image_bytes, require_hubfiles, text_image, write_models_file

TRANSFORMERS_MODELS = [spec for spec in BUILTIN_MODELS if spec.family_info().backend is Backend.TRANSFORMERS]
WITH_FILES = sorted(spec.key for spec in TRANSFORMERS_MODELS if spec.key not in NO_REAL_FILES)
FOLDERS = sorted({spec.family for spec in TRANSFORMERS_MODELS if spec.key not in NO_REAL_FILES})
SPECS = {spec.key: spec for spec in TRANSFORMERS_MODELS}
# The model card's processor where the folder names another (LightOnOCR-2's names PixtralProcessor).
MODEL_CARD_PROCESSOR = {"lighton_ocr": "LightOnOcrProcessor"}
# A page inside every real processor's pixel bounds (PaddleOCR-VL's minimum is 147,384 px).
PAGE_SIZE = (448, 336)
CPU = HardwareProfile(device="cpu", ram_total_gb=24.0, cpu_count=2)
PLANS = {
    "cpu": CPU,
    "gpu_sdpa": simulated_gpu("12.0:16"),
    "gpu_fa2": simulated_gpu("8.9:24", assume_flash_attn=True),
}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("real_page") / "page.png"
    path.write_bytes(image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"], size=PAGE_SIZE)))
    return path


@pytest.fixture
def sent_prompts(monkeypatch) -> list[list[int]]:
    """The input ids every `generate` call receives (recorded on the way in; the real generate runs)."""
    from transformers.generation.utils import GenerationMixin

    sent: list[list[int]] = []
    generate = GenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        sent.append(kwargs["input_ids"][0].tolist())
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", recording_generate)
    yield sent
    default_cache().unload()


def test_every_builtin_model_has_its_real_hub_files():
    hubfiles = require_hubfiles()
    for spec in TRANSFORMERS_MODELS:
        has_folder = (hubfiles / spec.family / "config.json").is_file()
        assert has_folder != (spec.key in NO_REAL_FILES), spec.key  # a folder that appears gets tested


@pytest.mark.slow  # builds the tiny folders (seconds each; shared with the tests below)
@pytest.mark.parametrize("family", FOLDERS)
def test_the_tiny_folder_keeps_every_real_value_but_the_sizes(family, real_tiny):
    hub, tiny = require_hubfiles() / family, real_tiny(family)
    for real_file in hub.iterdir():
        if real_file.name != "config.json":
            assert (tiny / real_file.name).read_bytes() == real_file.read_bytes(), real_file.name
    changed = list(differences(read_json(hub / "config.json"), read_json(tiny / "config.json")))
    assert changed and all(path[-1] in SIZE_KEYS for path in changed), changed
    assert spec_from_path(tiny).family == spec_from_path(hub).family == family


def differences(real: Any, tiny: Any, path: tuple[str, ...] = ()):
    """Key paths whose values differ between two JSON documents (lists compared whole)."""
    if isinstance(real, dict) and isinstance(tiny, dict):
        assert real.keys() == tiny.keys(), path
        for key in real:
            yield from differences(real[key], tiny[key], (*path, key))
    elif real != tiny:
        yield path


@pytest.mark.slow
@pytest.mark.parametrize("family", FOLDERS)
def test_the_embedding_table_covers_the_real_vocabulary(family, real_tiny):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    folder = real_tiny(family)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        names = [name for name in weights.keys() if "embed_tokens" in name]  # noqa: SIM118 (not a dict)
        rows = [weights.get_slice(name).get_shape()[0] for name in names]
    assert rows and min(rows) >= max(tokenizer.get_vocab().values()) - extra_tokens_past_the_table(folder)


def extra_tokens_past_the_table(folder: Path) -> int:
    """granite-docling-258M's legacy added_tokens.json names <end_of_utterance> = 100352, one past its
    embedding table (transformers 5 does not load that file); no other real folder has such a token."""
    added = read_json(folder / "added_tokens.json") if (folder / "added_tokens.json").is_file() else {}
    return 1 if added.get("<end_of_utterance>") == 100352 else 0


# -- pixel bounds ------------------------------------------------------------------------------


def real_pixel_bounds(hub: Path) -> tuple[int | None, int | None]:
    """(min, max) pixels of the real image processor, from its settings file.

    Qwen-style processors bound the area (min_pixels/max_pixels, or size shortest_edge/longest_edge
    as areas); Pixtral and Idefics3 bound the longest edge; GOT and DeepSeek read fixed sizes.
    """
    if (hub / "processor_config.json").is_file() and "image_processor" in read_json(hub / "processor_config.json"):
        settings = read_json(hub / "processor_config.json")["image_processor"]
    else:
        settings = read_json(hub / "preprocessor_config.json")
    size = settings.get("size") or {}
    if "min_pixels" in settings:
        return settings["min_pixels"], settings["max_pixels"]
    if "shortest_edge" in size:
        return size["shortest_edge"], size["longest_edge"]
    if "longest_edge" in size:
        return None, size["longest_edge"] ** 2
    return None, None


@pytest.mark.parametrize("key", WITH_FILES)
def test_pixel_bounds_are_the_real_processors_and_a_lower_maximum_says_why(key):
    spec = SPECS[key]
    real_min, real_max = real_pixel_bounds(require_hubfiles() / spec.family)
    info = family_info(spec.family)
    assert (info.default_min_pixels, info.default_max_pixels) == (real_min, real_max)
    for where, hardware in PLANS.items():
        plan = plan_load(hardware, spec)
        assert plan.min_pixels == real_min, where
        if plan.max_pixels is None:
            continue
        assert real_min is None or plan.max_pixels >= real_min, where
        if real_max is None or plan.max_pixels < real_max:
            capped = [reason for reason in plan.reason_texts() if reason.startswith("pixels capped at")]
            assert capped, (where, plan.reason_texts())
    if real_min:
        raised = plan_load(CPU, spec, PlanOverrides(max_pixels=real_min // 2))
        assert raised.max_pixels == real_min and raised.min_pixels == real_min
        assert any("processor's minimum" in reason for reason in raised.reason_texts())


# -- answers and prompt ids through the production path -----------------------------------------


def ask(page: Path, capsys, *model: str) -> dict[str, Any]:
    """`chatvlmllm ask` with the real processor's own pixel maximum (so the page is processed as the
    real processor does by default), no fallback, 3 new tokens."""
    code = main(["ask", str(page), "Extract all text", *model, "--no-fallback", "--json", "--max-new-tokens", "3"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def chat_template_of(hub: Path) -> str | None:
    if (hub / "chat_template.jinja").is_file():
        return (hub / "chat_template.jinja").read_text(encoding="utf-8")
    if (hub / "chat_template.json").is_file():
        return read_json(hub / "chat_template.json")["chat_template"]
    return read_json(hub / "tokenizer_config.json").get("chat_template")


def real_processor(family: str, hub: Path) -> Any:
    """The real processor class (the model card's, else the folder's), image-only where it carries a
    video processor (every video processor needs torchvision, which is not installed)."""
    import inspect

    import transformers

    from chatvlmllm.engines.hf_common import folder_processor_class, image_only_class

    processor_class = getattr(transformers, MODEL_CARD_PROCESSOR.get(family) or folder_processor_class(str(hub)))
    if "video_processor" in inspect.signature(processor_class.__init__).parameters:
        processor_class = image_only_class(processor_class)
    return processor_class.from_pretrained(str(hub))


@functools.lru_cache(maxsize=16)
def expected_prompt_ids(family: str, page_file: Path, prompt: str) -> list[int]:
    """The ids the real files give for one page and prompt, computed without the engine."""
    from transformers import AutoTokenizer, GotOcr2Processor, Qwen2VLImageProcessorPil

    hub = require_hubfiles() / family
    page = Image.open(page_file).convert("RGB")
    if family == "got_ocr2":  # GOT's processor writes its prompt itself (model card: processor(image))
        return GotOcr2Processor.from_pretrained(str(hub))(page, return_tensors="pt")["input_ids"][0].tolist()
    template = chat_template_of(hub)
    if template is None:  # DeepSeek-OCR-2: transformers' docs call the processor with a plain prompt
        processor = real_processor(family, hub)
        return processor(text=f"<image>\n{prompt}", images=[page], return_tensors="pt")["input_ids"][0].tolist()
    tokenizer = AutoTokenizer.from_pretrained(str(hub), trust_remote_code=False)
    content: list[dict[str, str]] = [{"type": "image"}] + ([{"type": "text", "text": prompt}] if prompt else [])
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], chat_template=template, tokenize=False, add_generation_prompt=True
    )
    if family == "dots_ocr":  # its processor is remote code: a Qwen2.5-VL processor whose image token is <|imgpad|>
        grid = Qwen2VLImageProcessorPil.from_pretrained(str(hub))(page)["image_grid_thw"][0]
        merge = read_json(hub / "preprocessor_config.json")["merge_size"]
        text = text.replace("<|imgpad|>", "<|imgpad|>" * (int(grid.prod()) // merge**2))
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return real_processor(family, hub)(text=text, images=[page], return_tensors="pt")["input_ids"][0].tolist()


def prompt_sent(record: dict[str, Any]) -> str:
    """The prompt text the engine says it sent: the family's task prompt, dots.ocr's mode, or the question."""
    extras = record["extras"]
    if "prompt_mode" in extras:
        return DOTS_PROMPTS[extras["prompt_mode"]]
    return extras.get("prompt", "Extract all text")


@pytest.mark.slow
@pytest.mark.parametrize("key", WITH_FILES)
def test_the_model_answers_from_its_real_files_with_the_real_prompt_ids(
    key, real_tiny, page, sent_prompts, capsys, tmp_path, monkeypatch
):
    spec = SPECS[key]
    folder = real_tiny(spec.family)
    real_max = spec.family_info().default_max_pixels
    budget = ["--max-pixels", str(real_max)] if real_max else []
    # A catalog entry in the user's models file: the built-in key, its weights in the tiny folder.
    models = write_models_file(tmp_path / "models.toml", {key: {"path": str(folder), "params_b": 0.01}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    records = {
        folder.name: ask(page, capsys, "--model-path", str(folder), *budget),
        key: ask(page, capsys, "--model", key, *budget),
    }
    expected = expected_prompt_ids(spec.family, page, prompt_sent(records[key]))
    assert len(sent_prompts) == 2
    for (model, record), sent in zip(records.items(), sent_prompts, strict=True):
        assert [(a["model"], a["outcome"]) for a in record["attempts"]] == [(model, "answered")]
        assert record["model"] == model and record["new_tokens"] >= 2 and record["answer"].strip(), model
        assert sent == expected, model


# -- a bug does not hide behind the fallback ----------------------------------------------------


@pytest.mark.slow
def test_an_engine_error_on_a_real_folder_is_logged_with_its_traceback_and_no_fallback_shows_it(
    real_tiny, page, tmp_path, capsys, caplog
):
    import shutil

    broken = shutil.copytree(real_tiny("lighton_ocr"), tmp_path / "lighton_without_template")
    (broken / "chat_template.jinja").unlink()  # prompt building now fails inside the engine
    try:
        code = main(["ask", str(page), "Extract all text", "--model-path", str(broken), "--json", "--lang", "en"])
        assert code == 0
        record = json.loads(capsys.readouterr().out)
        assert record["model"] != broken.name  # the fallback answered...
        failed = record["attempts"][0]
        assert (failed["model"], failed["outcome"]) == (broken.name, "error") and "chat template" in failed["reason"]
        logged = [r for r in caplog.records if r.name == "chatvlmllm.chat.router" and r.levelname == "ERROR"]
        assert logged and logged[0].exc_info is not None  # ...and the log keeps the traceback
        assert "prepare_inputs" in logging.Formatter().formatException(logged[0].exc_info)

        assert main(["ask", str(page), "Extract all text", "--model-path", str(broken), "--no-fallback"]) == 2
        assert "chat template" in capsys.readouterr().err
    finally:
        default_cache().unload()


@pytest.mark.slow
def test_loading_a_folder_with_a_class_that_leaves_weights_unset_is_refused(real_tiny):
    from transformers import AutoModelForImageTextToText

    from chatvlmllm.engines.hf_common import load_weights
    from chatvlmllm.errors import EngineError

    # LightOnOCR-2's config says mistral3: the Auto class builds Mistral3 and finds none of its projector.
    with pytest.raises(EngineError, match=r"does not hold 24 weights of Mistral3ForConditionalGeneration"):
        load_weights(AutoModelForImageTextToText, str(real_tiny("lighton_ocr")))


# -- the small-vocabulary builders (fast fixtures) take their values from the real files ---------

SMALL_BUILDS = {"qwen2_vl": "tiny_qwen2_vl", "qwen3_vl": "tiny_qwen3_vl", "dots_ocr": "tiny_dots_ocr"}


@pytest.mark.parametrize("family", sorted(SMALL_BUILDS))
def test_small_vocabulary_builds_keep_the_real_template_processor_tokens_and_generation(family, request):
    from transformers import AutoTokenizer

    from chatvlmllm.devtools.hub_tiny import HubFolder

    hub, small = HubFolder(require_hubfiles() / family), request.getfixturevalue(SMALL_BUILDS[family])
    assert (small / "preprocessor_config.json").read_bytes() == (hub.path / "preprocessor_config.json").read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(str(small), trust_remote_code=False)
    assert HubFolder(small).chat_template() == hub.chat_template()
    assert set(hub.added_tokens().values()) <= set(tokenizer.get_vocab())
    real, tiny = hub.config, read_json(small / "config.json")
    for field in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        if field in real:
            assert tokenizer.convert_ids_to_tokens(tiny[field]) == hub.token(real[field]), field
    generation = read_json(small / "generation_config.json")
    for key, value in hub.generation.items():
        if key.endswith("_token_id"):
            real_ids, tiny_ids = (v if isinstance(v, list) else [v] for v in (value, generation[key]))
            assert tokenizer.convert_ids_to_tokens(tiny_ids) == [hub.token(i) for i in real_ids], key
        elif key not in ("transformers_version", "_from_model_config"):
            assert generation[key] == value, key
    real_vision, tiny_vision = real["vision_config"], tiny["vision_config"]
    for key in ("patch_size", "spatial_merge_size", "temporal_patch_size"):
        assert tiny_vision[key] == real_vision[key], key


def test_the_small_got_build_keeps_the_real_processor_and_tokens(tmp_path):
    from transformers import AutoTokenizer

    from chatvlmllm.devtools.hub_tiny import HubFolder
    from chatvlmllm.devtools.tiny_models import build_tiny_got_ocr2

    hub, small = HubFolder(require_hubfiles() / "got_ocr2"), build_tiny_got_ocr2(tmp_path / "got")
    real_processor_settings = hub.json("preprocessor_config.json")
    tiny_processor_settings = read_json(small / "processor_config.json")["image_processor"]
    for key in ("image_mean", "image_std", "min_patches", "max_patches", "crop_to_patches", "resample"):
        assert tiny_processor_settings[key] == real_processor_settings[key], key
    tiny_config = read_json(small / "config.json")
    tokenizer = AutoTokenizer.from_pretrained(str(small))
    assert tokenizer.convert_ids_to_tokens(tiny_config["image_token_index"]) == hub.token(
        hub.config["image_token_index"]
    )
    assert tokenizer.eos_token == hub.token(hub.generation["eos_token_id"]) == "<|endoftext|>"
    # The real 1024 px page in 16 px patches → two stride-2 convolutions → 16×16 = 256 tokens; the tiny
    # one keeps that 4× reduction per side with its processor's size equal to the model's.
    side = tiny_config["vision_config"]["image_size"] // tiny_config["vision_config"]["patch_size"]
    assert side % 4 == 0 and tiny_processor_settings["size"]["height"] == tiny_config["vision_config"]["image_size"]
