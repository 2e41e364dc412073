"""The real checkpoints' contracts, as values, with the hub file each one comes from.

The tiny test checkpoints (`tiny_models`) shrink sizes (hidden size, layers, vocabulary) and
keep everything else: which token plays which role, rope sections (scaled to the tiny head
dimension), patch/merge/temporal sizes, the image processor's pixel bounds, mean and std,
and the generation_config.json sampling values. Tests compare the tiny folders against this
table, so a builder that drifts from the real model fails.

Token ids: the real ids (e.g. 151655) need the real 151k vocabulary; the tiny tokenizers keep
the same special TOKENS in the same roles and the tests check the ids resolve to them.
Sources were read on the hub (or public copies of the same files) in 2026-12; the hub file
is named in each entry's `sources`.
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

QWEN2_VL_2B = RealContract(
    hub_id="Qwen/Qwen2-VL-2B-Instruct",
    model_type="qwen2_vl",
    tokens=_QWEN_TOKENS,
    eos=("im_end", "endoftext"),
    patch_size=14,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=3136,
    max_pixels=12845056,
    image_mean=CLIP_MEAN,
    image_std=CLIP_STD,
    generation={"do_sample": True, "top_k": 1, "top_p": 0.001, "temperature": 0.01, "repetition_penalty": 1.0},
    mrope_section=(16, 24, 24),
    head_dim=128,
    rope_theta=1e6,
    sources={
        "tokens": "config.json (image_token_id, video_token_id, vision_start/end_token_id), tokenizer_config.json",
        "generation": "generation_config.json (top_k=1, top_p=0.001, temperature=0.01; measured in NOTES)",
        "vision": "config.json vision_config (patch_size 14, spatial_merge_size 2, temporal_patch_size 2)",
        "image_processor": "preprocessor_config.json (min_pixels, max_pixels, image_mean, image_std)",
        "rope": "config.json rope_scaling.mrope_section [16, 24, 24], rope_theta 1e6 (head_dim 1536/12)",
    },
)

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

QWEN3_VL_2B = RealContract(
    hub_id="Qwen/Qwen3-VL-2B-Instruct",
    model_type="qwen3_vl",
    tokens=_QWEN_TOKENS,
    eos=("im_end", "endoftext"),
    patch_size=16,
    merge_size=2,
    temporal_patch_size=2,
    min_pixels=65536,
    max_pixels=16777216,
    image_mean=(0.5, 0.5, 0.5),
    image_std=(0.5, 0.5, 0.5),
    generation={"do_sample": True, "top_k": 20, "top_p": 0.8, "temperature": 0.7, "repetition_penalty": 1.0},
    mrope_section=(24, 20, 20),
    head_dim=128,
    rope_theta=5e6,
    extra={"mrope_interleaved": True},
    sources={
        "tokens": "config.json, tokenizer_config.json",
        "generation": "generation_config.json (top_k=20, top_p=0.8, temperature=0.7; NOTES)",
        "vision": "config.json vision_config (patch 16, merge 2, temporal 2, deepstack indexes)",
        "image_processor": "preprocessor_config.json size {shortest_edge 65536, longest_edge 16777216}, mean/std 0.5",
        "rope": "config.json text_config.rope_scaling mrope_section [24, 20, 20], interleaved, theta 5e6",
    },
)

GOT_OCR_HF = RealContract(
    hub_id="stepfun-ai/GOT-OCR-2.0-hf",
    model_type="got_ocr2",
    tokens={
        "endoftext": TokenRole(151643, "<|endoftext|>"),
        "im_end": TokenRole(151645, "<|im_end|>"),
        "image": TokenRole(151859, "<imgpad>"),
    },
    eos=("endoftext",),
    patch_size=16,
    merge_size=4,  # two stride-2 convolutions in the projector: 64×64 patches → 16×16 tokens
    temporal_patch_size=1,
    min_pixels=None,
    max_pixels=None,
    image_mean=CLIP_MEAN,
    image_std=CLIP_STD,
    generation={},
    extra={"image_size": 1024, "image_tokens": 256},
    sources={
        "tokens": "config.json image_token_index 151859, text_config eos 151643",
        "generation": "generation_config.json (74 bytes: no sampling values)",
        "image_processor": "preprocessor_config.json size 1024×1024, CLIP mean/std",
    },
)

DOTS_OCR = RealContract(
    hub_id="rednote-hilab/dots.ocr",
    model_type="dots_ocr",
    tokens={
        "endoftext": TokenRole(151643, "<|endoftext|>"),
        "image": TokenRole(151665, "<|imgpad|>"),
        "vision_start": TokenRole(151666, "<|img|>"),
        "vision_end": TokenRole(151667, "<|endofimg|>"),
        "user": TokenRole(151670, "<|user|>"),
        "end_of_user": TokenRole(151671, "<|endofuser|>"),
        "assistant": TokenRole(151672, "<|assistant|>"),
        "end_of_assistant": TokenRole(151673, "<|endofassistant|>"),
        "pad": TokenRole(151680, "[PAD]"),
        "video": TokenRole(151656, "<|video_pad|>"),
    },
    eos=("endoftext", "end_of_assistant"),
    patch_size=14,
    merge_size=2,
    temporal_patch_size=1,
    min_pixels=3136,
    max_pixels=11289600,
    image_mean=CLIP_MEAN,
    image_std=CLIP_STD,
    generation={},
    rope_theta=1e6,
    extra={
        "vision": {
            "num_channels": 3,
            "rms_norm_eps": 1e-5,
            "use_bias": False,
            "post_norm": True,
            "is_causal": False,
            "init_merger_std": 0.02,
            "initializer_range": 0.02,
            "attn_implementation": "flash_attention_2",
        },
        "text": {
            "attention_bias": True,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "use_sliding_window": False,
        },
        "generation_max_length": 32768,
    },
    sources={
        "tokens": "tokenizer_config.json added_tokens_decoder; config.json image_token_id 151665, video 151656",
        "generation": "generation_config.json (eos_token_id [151643, 151673], max_length 32768, no sampling values)",
        "vision": "config.json vision_config (patch 14, merge 2, temporal 1, rms_norm_eps 1e-5, no bias, post_norm)",
        "image_processor": "preprocessor_config.json (min_pixels 3136, max_pixels 11289600, CLIP mean/std)",
        "text": "config.json (Qwen2: attention_bias, rope_theta 1e6, rms_norm_eps 1e-6, untied embeddings)",
    },
)

CONTRACTS: dict[str, RealContract] = {
    "qwen_vl_2b": QWEN2_VL_2B,
    "qwen25_vl_3b": QWEN25_VL_3B,
    "qwen3_vl_2b": QWEN3_VL_2B,
    "got_ocr_hf": GOT_OCR_HF,
    "dots_ocr": DOTS_OCR,
}
