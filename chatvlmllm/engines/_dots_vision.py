"""dots.ocr written here: its NaViT-style vision tower plus transformers' own Qwen2 language model.

dots.ocr's checkpoint is a Qwen2 causal LM (`model.*`, `lm_head.*`) with a vision tower
(`vision_tower.*`) whose merged patch embeddings replace the `<|imgpad|>` tokens of the
prompt. The tower, as the checkpoint's config describes it:

- patch embedding: a 14×14 convolution over each patch (temporal size 1), then RMSNorm;
- blocks of pre-norm (RMSNorm) attention and a SwiGLU MLP (fc1/fc3 gate and up, fc2 down),
  with 2-D rotary embeddings (half of each head's rotary frequencies follow the patch row,
  half the column);
- a final RMSNorm (`post_norm`), then a 2×2 patch merger (LayerNorm, Linear, GELU, Linear)
  into the language model's hidden size.

Patches of different images never attend to each other. Attention runs one image at a time
through `torch.nn.functional.scaled_dot_product_attention` (no n×n mask is built, so torch
picks its fused kernels on CUDA and CPU); `eager` computes the same softmax(QKᵀ/√d)V with
plain matmuls, and `block_mask` is one SDPA call over all images with a block-diagonal mask
(kept for the benchmark that compares the two: benchmarks/dots_vision_attention.py).

Nothing here imports flash-attn, and the tower runs in whatever dtype its weights have
(the hub code forces bfloat16 pixels; this one casts pixels to the weights' dtype).
Parameter names follow the checkpoint exactly, so `from_pretrained` reads the real
safetensors with no renaming.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

log = logging.getLogger(__name__)


class VisionAttention(StrEnum):
    """How the vision tower computes attention (the language model has its own setting)."""

    SDPA = "sdpa"  # per image, torch's scaled_dot_product_attention
    EAGER = "eager"  # per image, explicit matmul + float32 softmax
    BLOCK_MASK = "block_mask"  # one SDPA call with a dense block-diagonal mask (benchmark only)


@dataclass(frozen=True)
class DotsVisionSettings:
    """The checkpoint's `vision_config` (only the fields the tower's shape and maths use)."""

    embed_dim: int = 1536
    hidden_size: int = 1536
    intermediate_size: int = 4224
    num_hidden_layers: int = 42
    num_attention_heads: int = 12
    num_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 1
    rms_norm_eps: float = 1e-5
    use_bias: bool = False
    post_norm: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DotsVisionSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_attention_heads


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32, scaled in the input's dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class PatchEmbed(nn.Module):
    """One 14×14 convolution per flattened patch (first temporal frame), then RMSNorm."""

    def __init__(self, cfg: DotsVisionSettings) -> None:
        super().__init__()
        self.cfg = cfg
        size = (cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv2d(cfg.num_channels, cfg.embed_dim, kernel_size=size, stride=size)
        self.norm = RMSNorm(cfg.embed_dim, cfg.rms_norm_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        patches = pixels.view(-1, c.num_channels, c.temporal_patch_size, c.patch_size, c.patch_size)[:, :, 0]
        return self.norm(self.proj(patches).view(-1, c.embed_dim))


class PatchEmbedHolder(nn.Module):
    """Keeps the checkpoint's parameter path `patch_embed.patchifier.*`."""

    def __init__(self, cfg: DotsVisionSettings) -> None:
        super().__init__()
        self.patchifier = PatchEmbed(cfg)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.patchifier(pixels)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (n, heads, head_dim); cos/sin: (n, head_dim) in float32. Computed in float32."""
    x32 = x.float()
    return (x32 * cos[:, None, :] + rotate_half(x32) * sin[:, None, :]).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: DotsVisionSettings, mode: VisionAttention) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.head_dim
        self.attention_mode = mode
        self.qkv = nn.Linear(cfg.embed_dim, cfg.embed_dim * 3, bias=cfg.use_bias)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor, lengths: list[int], cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.heads, self.head_dim).unbind(1)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # (heads, n, head_dim) for the attention maths
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        if self.attention_mode == VisionAttention.BLOCK_MASK:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=block_diagonal_mask(lengths, x.device))
        else:
            attend = _sdpa if self.attention_mode == VisionAttention.SDPA else _eager
            out = torch.cat(
                [attend(qi, ki, vi) for qi, ki, vi in zip(*(t.split(lengths, dim=1) for t in (q, k, v)), strict=True)],
                dim=1,
            )
        return self.proj(out.transpose(0, 1).reshape(n, -1))


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def _eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return torch.matmul(scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype), v)


def block_diagonal_mask(lengths: list[int], device: torch.device) -> torch.Tensor:
    """(n, n) boolean mask, True inside each image's own block: n² bytes, the dense-mask cost."""
    image_of = torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))
    return image_of[:, None] == image_of[None, :]


class SwiGLU(nn.Module):
    def __init__(self, cfg: DotsVisionSettings) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.intermediate_size, bias=cfg.use_bias)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.embed_dim, bias=cfg.use_bias)
        self.fc3 = nn.Linear(cfg.embed_dim, cfg.intermediate_size, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)) * self.fc3(x))


class Block(nn.Module):
    def __init__(self, cfg: DotsVisionSettings, mode: VisionAttention) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.embed_dim, cfg.rms_norm_eps)
        self.attn = Attention(cfg, mode)
        self.norm2 = RMSNorm(cfg.embed_dim, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, lengths: list[int], cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), lengths, cos, sin)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    """Each 2×2 group of neighbouring patches (adjacent in the processor's order) → one token."""

    def __init__(self, cfg: DotsVisionSettings) -> None:
        super().__init__()
        self.merged_dim = cfg.embed_dim * cfg.spatial_merge_size**2
        self.ln_q = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(self.merged_dim, self.merged_dim), nn.GELU(), nn.Linear(self.merged_dim, cfg.hidden_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(x).view(-1, self.merged_dim))


class DotsVisionTower(nn.Module):
    def __init__(self, cfg: DotsVisionSettings, mode: VisionAttention = VisionAttention.SDPA) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbedHolder(cfg)
        self.blocks = nn.ModuleList(Block(cfg, mode) for _ in range(cfg.num_hidden_layers))
        if cfg.post_norm:
            self.post_trunk_norm = RMSNorm(cfg.embed_dim, cfg.rms_norm_eps)
        self.merger = PatchMerger(cfg)

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """Rotary frequencies, computed per call: a non-persistent buffer would be left
        uninitialised by transformers' meta-device loading (the hub code has that bug)."""
        rotary_dim = self.cfg.head_dim // 2  # half the head follows rows, half columns
        exponents = torch.arange(0, rotary_dim, 2, dtype=torch.float, device=device) / rotary_dim
        return 1.0 / (10000.0**exponents)

    def set_attention(self, mode: VisionAttention) -> None:
        for block in self.blocks:
            cast(Block, block).attn.attention_mode = mode

    def attention_modes(self) -> set[VisionAttention]:
        return {cast(Block, block).attn.attention_mode for block in self.blocks}

    def rotary(self, grid_thw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin (n, head_dim) for every patch, in the processor's merge-grouped order."""
        m = self.cfg.spatial_merge_size
        positions = []
        for t, h, w in grid_thw.tolist():
            rows = torch.arange(h).view(h // m, m, 1, 1).expand(h // m, m, w // m, m)
            cols = torch.arange(w).view(1, 1, w // m, m).expand(h // m, m, w // m, m)
            grouped = torch.stack([rows.permute(0, 2, 1, 3).flatten(), cols.permute(0, 2, 1, 3).flatten()], dim=-1)
            positions.append(grouped.repeat(t, 1))
        device = self.merger.ln_q.weight.device
        pos = torch.cat(positions).to(device)
        angles = (pos[..., None].float() * self.inv_freq(device)).flatten(1)  # (n, head_dim / 2)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        weight = self.patch_embed.patchifier.proj.weight
        x = self.patch_embed(pixel_values.to(device=weight.device, dtype=weight.dtype))
        cos, sin = self.rotary(grid_thw)
        lengths = [int(h * w) for t, h, w in grid_thw.tolist() for _ in range(int(t))]
        for block in self.blocks:
            x = block(x, lengths, cos, sin)
        if self.cfg.post_norm:
            x = self.post_trunk_norm(x)
        return self.merger(x)


def language_config(raw: dict[str, Any]) -> Qwen2Config:
    """The checkpoint's top-level config.json as transformers' Qwen2Config (vision part kept as a dict)."""
    skip = {"architectures", "auto_map", "model_type", "transformers_version", "torch_dtype", "dtype"}
    values = {k: v for k, v in raw.items() if k not in skip}
    if values.get("rope_scaling") is None:  # the hub file says null: plain rope with rope_theta
        values.pop("rope_scaling", None)
        values["rope_parameters"] = {"rope_type": "default", "rope_theta": values.pop("rope_theta", 10000.0)}
    config = Qwen2Config(**values)
    config.vision_config = dict(raw.get("vision_config") or {})
    config.image_token_id = raw.get("image_token_id")
    config.architectures = list(raw.get("architectures") or ["DotsOCRForCausalLM"])
    return config


class DotsOcrForGeneration(Qwen2ForCausalLM):
    """Qwen2ForCausalLM plus the vision tower; image features replace the image-pad tokens at prefill.

    `generate` drops `pixel_values` after the prefill step (transformers' multimodal contract),
    so decode steps are plain Qwen2 steps.
    """

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.vision_tower = DotsVisionTower(DotsVisionSettings.from_dict(config.vision_config))

    def image_embeddings(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        return self.vision_tower(pixel_values, grid_thw)

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if inputs_embeds is None and input_ids is not None and pixel_values is not None:
            if image_grid_thw is None:
                raise ValueError("pixel_values need image_grid_thw (the processor gives both)")
            inputs_embeds = self.get_input_embeddings()(input_ids)
            image_mask = input_ids == self.config.image_token_id
            features = self.image_embeddings(pixel_values, image_grid_thw)
            if int(image_mask.sum()) != features.shape[0]:
                raise ValueError(
                    f"the prompt has {int(image_mask.sum())} image tokens but the images give {features.shape[0]}"
                )
            inputs_embeds = inputs_embeds.masked_scatter(image_mask[..., None], features.to(inputs_embeds.dtype))
            input_ids = None
        return super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)
