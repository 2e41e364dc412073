"""Hand-entered contract values of the built-in models that have no real hub files here.

Every other built-in model's values are read from its real hub files (`../shared/hubfiles`,
see `hub_tiny` and `tiny_models`); only Qwen2.5-VL-3B-Instruct remains, because no public copy
of its hub files was found. The tiny test checkpoint of Qwen2.5-VL shrinks sizes and keeps
these: which token plays which role, rope sections (scaled to the tiny head dimension),
patch/merge/temporal sizes, the image processor's pixel bounds, mean and std, and the
generation_config.json sampling values. The hub file each value comes from is named in `sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TokenRole:
    """One special token: its real id and text."""

    id: int
    text: str


@dataclass(frozen=True)
class RealContract:
    hub_id: str
    model_type: str
    tokens: dict[str, TokenRole]  # role -> token (image, vision_start, vision_end, pad, ...)
    eos: tuple[str, ...]  # generation_config eos_token_id, as roles, in the file's order
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int | None
    max_pixels: int | None
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    generation: dict[str, Any]  # generation_config.json sampling values (absent: the file sets none)
    mrope_section: tuple[int, ...] | None = None  # real head_dim's sections
    head_dim: int | None = None
    rope_theta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def scaled_mrope(self, tiny_head_dim: int) -> list[int]:
        """mrope_section for a tiny head: same proportions, summing to tiny_head_dim / 2."""
        assert self.mrope_section is not None and self.head_dim is not None
        pairs = tiny_head_dim // 2
        scaled = [max(1, round(s * pairs / (self.head_dim // 2))) for s in self.mrope_section]
        scaled[0] += pairs - sum(scaled)  # rounding goes to the temporal section
        return scaled


_QWEN_TOKENS = {
    "endoftext": TokenRole(151643, "<|endoftext|>"),
    "im_start": TokenRole(151644, "<|im_start|>"),
    "im_end": TokenRole(151645, "<|im_end|>"),
    "vision_start": TokenRole(151652, "<|vision_start|>"),
    "vision_end": TokenRole(151653, "<|vision_end|>"),
    "image": TokenRole(151655, "<|image_pad|>"),
    "video": TokenRole(151656, "<|video_pad|>"),
}

QWEN25_VL_3B = RealContract(
    hub_id="Qwen/Qwen2.5-VL-3B-Instruct",
    model_type="qwen2_5_vl",
    tokens=_QWEN_TOKENS,
    eos=("im_end", "endoftext"),
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=3136,
    max_pixels=12845056,
    image_mean=CLIP_MEAN,
    image_std=CLIP_STD,
    generation={"do_sample": True, "top_k": 1, "top_p": 0.001, "temperature": 0.1, "repetition_penalty": 1.05},
    mrope_section=(16, 24, 24),
    head_dim=128,
    rope_theta=1e6,
    extra={"window_size": 112, "fullatt_block_indexes": (7, 15, 23, 31)},
    sources={
        "tokens": "config.json, tokenizer_config.json",
        "generation": "generation_config.json (as mirrored by unsloth/Qwen2.5-VL-3B-Instruct-bnb-4bit)",
        "vision": "config.json vision_config (patch 14, merge 2, temporal 2, window_size 112, fullatt_block_indexes)",
        "image_processor": "preprocessor_config.json",
        "rope": "config.json rope_scaling.mrope_section [16, 24, 24]",
    },
)


CONTRACTS: dict[str, RealContract] = {"qwen25_vl_3b": QWEN25_VL_3B}
