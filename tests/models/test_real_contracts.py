"""The one built-in model without real hub files here (Qwen2.5-VL-3B-Instruct) keeps its
hand-entered contract (chatvlmllm/devtools/real_contracts.py) in its tiny checkpoint.

Every other built-in model is checked against its real hub files: tests/test_real_hub_files.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from chatvlmllm.devtools.real_contracts import CONTRACTS, QWEN25_VL_3B
from chatvlmllm.models.catalog import BUILTIN_MODELS
from tests.helpers import NO_REAL_FILES


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def test_contracts_are_kept_only_for_models_without_real_files():
    assert set(CONTRACTS) == set(NO_REAL_FILES)
    hub_ids = {spec.key: spec.hub_id for spec in BUILTIN_MODELS}
    for key, contract in CONTRACTS.items():
        assert contract.hub_id == hub_ids[key]
        assert {"tokens", "generation"} <= set(contract.sources)  # each value names its hub file


def test_qwen25_tiny_checkpoint_keeps_the_contract(tiny_qwen25_vl):
    from transformers import Qwen2Tokenizer

    contract = QWEN25_VL_3B
    config, generation = read(tiny_qwen25_vl, "config.json"), read(tiny_qwen25_vl, "generation_config.json")
    processor = read(tiny_qwen25_vl, "preprocessor_config.json")
    tok = Qwen2Tokenizer.from_pretrained(str(tiny_qwen25_vl))
    assert config["model_type"] == contract.model_type
    for role, field in (
        ("image", "image_token_id"),
        ("video", "video_token_id"),
        ("vision_start", "vision_start_token_id"),
    ):
        assert tok.convert_ids_to_tokens(config[field]) == contract.tokens[role].text, role
    assert tok.convert_ids_to_tokens(generation["eos_token_id"]) == [contract.tokens[r].text for r in contract.eos]
    for name, value in contract.generation.items():
        assert generation[name] == value, name
    vision = config["vision_config"]
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]) == (
        contract.patch_size,
        contract.merge_size,
        contract.temporal_patch_size,
    )
    assert processor["size"] == {"shortest_edge": contract.min_pixels, "longest_edge": contract.max_pixels}
    assert tuple(processor["image_mean"]) == contract.image_mean and tuple(processor["image_std"]) == contract.image_std
    rope = config["text_config"]["rope_parameters"]
    assert rope["mrope_section"] == contract.scaled_mrope(16) and sum(rope["mrope_section"]) == 8
    assert rope["rope_theta"] == contract.rope_theta


def test_mrope_scaling_keeps_proportions():
    assert QWEN25_VL_3B.scaled_mrope(16) == [2, 3, 3]  # 16:24:24 of 64 pairs → 8 pairs
    assert QWEN25_VL_3B.scaled_mrope(128) == [16, 24, 24]  # the real head gives the real sections
