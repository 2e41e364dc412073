"""Every built-in model's tiny test checkpoint keeps the real hub files' non-size values.

The values and their hub sources are in chatvlmllm/devtools/real_contracts.py; these tests
read the folders the builders wrote (the files the production loader reads) and compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatvlmllm.devtools.real_contracts import CONTRACTS, GOT_OCR_HF, RealContract
from chatvlmllm.models.catalog import BUILTIN_MODELS

QWEN_FIXTURES = {"qwen_vl_2b": "tiny_qwen2_vl", "qwen25_vl_3b": "tiny_qwen25_vl", "qwen3_vl_2b": "tiny_qwen3_vl"}


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def tokenizer(folder: Path):
    from transformers import Qwen2Tokenizer

    return Qwen2Tokenizer.from_pretrained(str(folder))


# The native document families (PaddleOCR-VL, LightOnOCR, GLM-OCR, DeepSeek-OCR-2, granite-docling)
# keep their real ids in chatvlmllm/devtools/tiny_doc_models.py, checked by tests/test_doc_families.py.
DOC_FAMILIES = {"paddleocr_vl", "lighton_ocr", "glm_ocr", "deepseek_ocr2", "granite_docling"}


def test_every_builtin_transformers_model_has_a_contract():
    keys = {spec.key for spec in BUILTIN_MODELS if spec.family not in DOC_FAMILIES}
    assert keys == set(CONTRACTS)
    for spec in (s for s in BUILTIN_MODELS if s.key in keys):
        contract = CONTRACTS[spec.key]
        assert contract.hub_id == spec.hub_id
        assert {"tokens", "generation"} <= set(contract.sources)  # each value names its hub file


@pytest.mark.parametrize("key", sorted(QWEN_FIXTURES))
def test_qwen_tiny_checkpoints_keep_the_real_values(key, request):
    contract: RealContract = CONTRACTS[key]
    folder = request.getfixturevalue(QWEN_FIXTURES[key])
    config, generation = read(folder, "config.json"), read(folder, "generation_config.json")
    processor = read(folder, "preprocessor_config.json")
    tok = tokenizer(folder)
    assert config["model_type"] == contract.model_type

    # Token roles: the ids in config.json name the same tokens as the real ids do.
    for role, field in (
        ("image", "image_token_id"),
        ("video", "video_token_id"),
        ("vision_start", "vision_start_token_id"),
        ("vision_end", "vision_end_token_id"),
    ):
        assert tok.convert_ids_to_tokens(config[field]) == contract.tokens[role].text, role
    assert tok.convert_ids_to_tokens(generation["eos_token_id"]) == [contract.tokens[r].text for r in contract.eos]

    # generation_config.json sampling values, as shipped.
    for name, value in contract.generation.items():
        assert generation[name] == value, name

    # Vision geometry and the image processor.
    vision = config["vision_config"]
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]) == (
        contract.patch_size,
        contract.merge_size,
        contract.temporal_patch_size,
    )
    assert (processor["patch_size"], processor["merge_size"], processor["temporal_patch_size"]) == (
        contract.patch_size,
        contract.merge_size,
        contract.temporal_patch_size,
    )
    assert processor["size"] == {"shortest_edge": contract.min_pixels, "longest_edge": contract.max_pixels}
    assert tuple(processor["image_mean"]) == contract.image_mean
    assert tuple(processor["image_std"]) == contract.image_std

    # mrope sections: the real proportions over the tiny head (16 → 8 rotary pairs).
    rope = config["text_config"]["rope_parameters"]
    assert sum(rope["mrope_section"]) == 8 and rope["mrope_section"] == contract.scaled_mrope(16)
    assert rope["rope_theta"] == contract.rope_theta
    if contract.extra.get("mrope_interleaved"):
        assert rope["mrope_interleaved"] is True


def test_mrope_scaling_keeps_proportions():
    assert CONTRACTS["qwen_vl_2b"].scaled_mrope(16) == [2, 3, 3]  # 16:24:24 of 64 pairs → 8 pairs
    assert CONTRACTS["qwen_vl_2b"].scaled_mrope(128) == [16, 24, 24]  # the real head gives the real sections
    assert sum(CONTRACTS["qwen3_vl_2b"].scaled_mrope(16)) == 8


def test_got_tiny_checkpoint_keeps_the_real_values(tmp_path):
    from chatvlmllm.devtools.tiny_models import build_tiny_got_ocr2

    folder = build_tiny_got_ocr2(tmp_path / "got")
    config = read(folder, "config.json")
    processor = read(folder, "processor_config.json")["image_processor"]  # transformers 5 nests it here
    tok = tokenizer(folder)
    assert tok.convert_ids_to_tokens(config["image_token_index"]) == GOT_OCR_HF.tokens["image"].text
    eos = read(folder, "generation_config.json")["eos_token_id"]
    assert tok.convert_ids_to_tokens(eos if isinstance(eos, list) else [eos]) == ["<|endoftext|>"]
    assert (
        tuple(processor["image_mean"]) == GOT_OCR_HF.image_mean
        and tuple(processor["image_std"]) == GOT_OCR_HF.image_std
    )
    # Real: 1024 px / 16 px = 64×64 patches, the projector's two stride-2 convolutions → 16×16 = 256 tokens.
    real_side = GOT_OCR_HF.extra["image_size"] // GOT_OCR_HF.patch_size
    assert (real_side // GOT_OCR_HF.merge_size) ** 2 == GOT_OCR_HF.extra["image_tokens"]
    # Tiny: smaller grid, same 4× reduction per side, and the processor's size matches the model's.
    side = config["vision_config"]["image_size"] // config["vision_config"]["patch_size"]
    assert side % GOT_OCR_HF.merge_size == 0 and processor["size"]["height"] == config["vision_config"]["image_size"]


def test_dots_tiny_checkpoint_keeps_the_real_values(tiny_dots_ocr):
    contract = CONTRACTS["dots_ocr"]
    config, processor = read(tiny_dots_ocr, "config.json"), read(tiny_dots_ocr, "preprocessor_config.json")
    generation = read(tiny_dots_ocr, "generation_config.json")
    tok = tokenizer(tiny_dots_ocr)
    for role, token in contract.tokens.items():
        assert tok.convert_tokens_to_ids(token.text) is not None and token.text in tok.get_vocab(), role
    assert tok.convert_ids_to_tokens(config["image_token_id"]) == "<|imgpad|>"
    assert tok.convert_ids_to_tokens(config["video_token_id"]) == "<|video_pad|>"
    assert tok.convert_ids_to_tokens(generation["eos_token_id"]) == ["<|endoftext|>", "<|endofassistant|>"]
    assert generation["max_length"] == contract.extra["generation_max_length"]
    assert not {"top_k", "top_p", "temperature", "repetition_penalty"} & set(generation)  # the real file has none
    assert processor["min_pixels"] == contract.min_pixels and processor["max_pixels"] == contract.max_pixels
    assert processor["temporal_patch_size"] == 1 and processor["merge_size"] == 2 and processor["patch_size"] == 14
    for key, value in contract.extra["text"].items():
        assert config[key] == value, key
