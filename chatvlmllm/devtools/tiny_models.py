"""Tiny, randomly initialised checkpoints with a small vocabulary, built offline.

Tests, benchmarks and the browser end-to-end run need real model folders but cannot
download weights. These builders write folders that the production loader reads exactly
like a hub snapshot: config.json, safetensors weights, tokenizer files, preprocessor config
and chat template. Unlike `hub_tiny` (the real vocabulary), the tokenizer here is a 512-token
byte-level BPE, so the folders are ~1 MB and load in a blink; every other value comes from
the model's real hub files (`../shared/hubfiles/<family>`): the special tokens (the same texts,
in the same roles, at small ids), the chat template, the processor settings, the vision
geometry, the rope layout (sections scaled to the tiny head) and the generation values.

Qwen2.5-VL has no real files here: its values are `real_contracts.QWEN25_VL_3B`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatvlmllm.devtools.hub_tiny import TINY_SIZES, HubFolder, scaled_sections, shrink
from chatvlmllm.devtools.real_contracts import QWEN25_VL_3B

TINY_HEAD_DIM = 16  # hidden 64 / 4 heads
# config.json fields that name a token by its id (the small build maps each to the same text).
TOKEN_FIELDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id", "vision_token_id")

_CORPUS = [
    "Extract all text from this document.",
    "What is the total amount on the receipt?",
    "Turn this table into Markdown. | Item | Price |",
    "TOTAL 12.50 CASH 20.00 CHANGE 7.50 GST 6%",
    "Invoice number, date, address, company name, tax, subtotal.",
    "Describe the image. Summarise the page in three sentences.",
    "Привет, мир. Итого к оплате: 100 руб.",
    "0123456789 !?.,;:()[]{}<>/\\|-_+=*&^%$#@~` \"'",
]


def build_qwen_tokenizer(
    out_dir: str | Path,
    chat_template: str | None,
    special_tokens: Sequence[str],
    eos: str = "<|im_end|>",
    pad: str = "<|endoftext|>",
    vocab_size: int = 512,
):
    """Train a byte-level BPE on a small corpus, wrap it as a Qwen2 tokenizer with `special_tokens`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # <|endoftext|> is id 0, which makes the constant-output variants below simple.
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        # Runtime accepts merge pairs and no unk token (byte-level BPE never needs one); the stubs don't say so.
        merges=merges,  # type: ignore[arg-type]
        unk_token=None,  # type: ignore[arg-type]
        bos_token=None,
        eos_token=eos,
        pad_token=pad,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in special_tokens if t != "<|endoftext|>"]})
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def small_id(tokenizer: Any, hub: HubFolder, real_id: int) -> int:
    """The small tokenizer's id of the token the real id names."""
    return int(tokenizer.convert_tokens_to_ids(hub.token(real_id)))


def small_ids(tokenizer: Any, hub: HubFolder, real: int | list[int] | None) -> int | list[int] | None:
    if real is None:
        return None
    if isinstance(real, list):
        return [small_id(tokenizer, hub, i) for i in real]
    return small_id(tokenizer, hub, real)


def _token_fields(tokenizer: Any, hub: HubFolder, config: dict[str, Any]) -> dict[str, Any]:
    """The config's token-id fields, each at the small id of the token its real id names."""
    return {field: small_id(tokenizer, hub, config[field]) for field in TOKEN_FIELDS if field in config}


def _qwen_tokenizer(out: Path, hub: HubFolder) -> Any:
    """The small tokenizer with the real folder's added tokens, eos/pad and chat template."""
    return build_qwen_tokenizer(
        out,
        hub.chat_template(),
        list(hub.added_tokens().values()),
        eos=hub.special_token("eos_token") or "<|im_end|>",
        pad=hub.special_token("pad_token") or "<|endoftext|>",
    )


def _qwen_text(vocab: int, rope: dict[str, Any], eos: int, pad: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab,
        "bos_token_id": None,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,  # a size too: a small context, so context-cutting tests stay small
        "rope_parameters": rope,
    }


def _set_generation_config(model: Any, tokenizer: Any, hub: HubFolder) -> None:
    """The real generation_config.json, its token ids mapped to the small tokenizer's."""
    gen = model.generation_config
    for key, value in hub.generation.items():
        if key.endswith("_token_id"):
            setattr(gen, key, small_ids(tokenizer, hub, value))
        elif key not in ("transformers_version", "_from_model_config"):
            setattr(gen, key, value)


def _write_processor(out: Path, hub: HubFolder) -> None:
    """The real preprocessor_config.json, as it is (pixel bounds, mean/std, patch/merge/temporal)."""
    shutil.copyfile(hub.path / "preprocessor_config.json", out / "preprocessor_config.json")


def build_tiny_qwen2_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen2-VL checkpoint (transformers' Qwen2VLForConditionalGeneration) from the real files."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    hub = HubFolder.of("qwen2_vl")
    real = hub.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen_tokenizer(out, hub)
    real_head = real["hidden_size"] // real["num_attention_heads"]
    rope = {
        "rope_type": "default",
        "rope_theta": real["rope_theta"],
        "mrope_section": scaled_sections(real["rope_scaling"]["mrope_section"], real_head, TINY_HEAD_DIM),
    }
    vision = real["vision_config"]
    config = Qwen2VLConfig(
        text_config=_qwen_text(len(tokenizer), rope, tokenizer.eos_token_id, tokenizer.pad_token_id),
        vision_config={
            **{k: vision[k] for k in ("patch_size", "spatial_merge_size", "temporal_patch_size", "mlp_ratio")},
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
        },
        **_token_fields(tokenizer, hub, real),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    _set_generation_config(model, tokenizer, hub)
    model.save_pretrained(str(out))
    _write_processor(out, hub)
    return out


def build_tiny_qwen3_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen3-VL checkpoint (patch 16, deepstack on vision layer 0) from the real files."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    hub = HubFolder.of("qwen3_vl")
    real = hub.config
    text, vision = real["text_config"], real["vision_config"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen_tokenizer(out, hub)
    rope = {
        "rope_type": "default",
        "rope_theta": text["rope_theta"],
        "mrope_section": scaled_sections(text["rope_scaling"]["mrope_section"], text["head_dim"], TINY_HEAD_DIM),
        "mrope_interleaved": text["rope_scaling"]["mrope_interleaved"],
    }
    config = Qwen3VLConfig(
        text_config=_qwen_text(len(tokenizer), rope, tokenizer.eos_token_id, tokenizer.pad_token_id)
        | {"head_dim": TINY_HEAD_DIM},
        vision_config={
            **{k: vision[k] for k in ("patch_size", "spatial_merge_size", "temporal_patch_size", "hidden_act")},
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        **_token_fields(tokenizer, hub, real),
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    _set_generation_config(model, tokenizer, hub)
    model.save_pretrained(str(out))
    _write_processor(out, hub)
    return out


# -- Qwen2.5-VL: no real files here; its values are the hand-entered contract ----------------------
QWEN_SPECIAL_TOKENS = [token.text for token in QWEN25_VL_3B.tokens.values()]

# Qwen2.5-VL's chat template (images become <|vision_start|><|image_pad|><|vision_end|>), written here.
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen25_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen2.5-VL checkpoint (windowed vision attention with full-attention blocks)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    contract = QWEN25_VL_3B
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out, QWEN25_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS)
    ids = {role: tokenizer.convert_tokens_to_ids(token.text) for role, token in contract.tokens.items()}
    rope = {
        "rope_type": "default",
        "rope_theta": contract.rope_theta,
        "mrope_section": contract.scaled_mrope(TINY_HEAD_DIM),
    }
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text(len(tokenizer), rope, ids["im_end"], ids["endoftext"]),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": contract.patch_size,
            "spatial_merge_size": contract.merge_size,
            "temporal_patch_size": contract.temporal_patch_size,
            "window_size": contract.extra["window_size"],
            "fullatt_block_indexes": [1],  # the real model's last block of each group of 8: here block 1 of 2
        },
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id = [ids[role] for role in contract.eos]
    gen.pad_token_id = gen.bos_token_id = ids["endoftext"]
    for key, value in contract.generation.items():
        setattr(gen, key, value)
    model.save_pretrained(str(out))
    assert contract.min_pixels is not None and contract.max_pixels is not None
    Qwen2VLImageProcessorPil(
        size={"shortest_edge": contract.min_pixels, "longest_edge": contract.max_pixels},
        patch_size=contract.patch_size,
        merge_size=contract.merge_size,
        temporal_patch_size=contract.temporal_patch_size,
        image_mean=list(contract.image_mean),
        image_std=list(contract.image_std),
    ).save_pretrained(str(out))
    return out


def force_constant_token(model_dir: str | Path, token_id: int) -> Path:
    """Rewrite a tiny Qwen-VL folder so its language model always emits `token_id`.

    Zeroing every layer's output projections leaves the residual stream equal to the
    token embedding; with all embeddings equal to one constant vector the final hidden
    state is the same at every step, so the lm_head row set to that vector wins. Used
    for real generations that loop (an ordinary token) or end at once (EOS).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    lm = model.model.language_model
    with torch.no_grad():
        lm.embed_tokens.weight.fill_(1.0)
        for layer in lm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id].fill_(1.0)
    model.save_pretrained(str(model_dir))
    return Path(model_dir)


def build_tiny_got_ocr2(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny GOT-OCR-2.0 checkpoint (transformers' GotOcr2ForConditionalGeneration).

    The real model reads 1024×1024 images in 16 px patches (64×64 grid) and its projector's
    two stride-2 convolutions leave 16×16 = 256 image tokens. This one reads 64×64 images in
    4 px patches: the same 16×16 grid, hence 4×4 = 16 image tokens per page or patch. The
    processor is the real one (mean, std, patch limits) with the same 64×64 size, so the two
    agree as in the real checkpoint. Its text model ends turns with <|im_end|> but its EOS is
    <|endoftext|>, which is why generation needs stop_strings="<|im_end|>".
    """
    import torch
    from transformers import GotOcr2Config, GotOcr2ForConditionalGeneration, GotOcr2ImageProcessorPil, GotOcr2Processor

    hub = HubFolder.of("got_ocr2")
    real = hub.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eos = hub.special_token("eos_token") or "<|endoftext|>"
    tokenizer = build_qwen_tokenizer(out, None, list(hub.added_tokens().values()), eos=eos, pad=eos)
    eos_id = small_id(tokenizer, hub, real["text_config"]["eos_token_id"])
    image_size = 64
    config = GotOcr2Config(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 8192,
            # Untied (the hub model ties them) so force_constant_token can set the output head alone.
            "tie_word_embeddings": False,
            "bos_token_id": None,
            "eos_token_id": eos_id,
            "pad_token_id": eos_id,
        },
        vision_config={
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 4,
            "window_size": 4,
            "global_attn_indexes": [1],
            "mlp_dim": 64,
        },
        image_token_index=small_id(tokenizer, hub, real["image_token_index"]),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = GotOcr2ForConditionalGeneration(config)
    _set_generation_config(model, tokenizer, hub)
    model.generation_config.do_sample = False
    model.save_pretrained(str(out))
    image_processor = GotOcr2ImageProcessorPil.from_pretrained(str(hub.path))
    image_processor.size = {"height": image_size, "width": image_size}
    GotOcr2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out))
    return out


# -- dots.ocr ---------------------------------------------------------------------------------------


def tiny_dots_config(hub: HubFolder, vocab_size: int, token_ids: dict[str, int]) -> dict:
    """dots.ocr's real config.json with the sizes shrunk and the small vocabulary's token ids."""
    return shrink(hub.config, TINY_SIZES["dots_ocr"]) | {"vocab_size": vocab_size, **token_ids}


def build_dots_tokenizer(out_dir: str | Path, hub: HubFolder, chat_template: str | None = None):
    """A tiny byte-level tokenizer with dots.ocr's real added tokens and eos/pad tokens."""
    return build_qwen_tokenizer(
        out_dir,
        chat_template,
        list(hub.added_tokens().values()),
        eos=hub.special_token("eos_token") or "<|endoftext|>",
        pad=hub.special_token("pad_token") or "[PAD]",
    )


def dots_token_ids(tokenizer: Any, hub: HubFolder) -> dict[str, int]:
    """config.json's token-id fields (image, video) at the small tokenizer's ids of the same tokens."""
    real = hub.config
    return {field: small_id(tokenizer, hub, real[field]) for field in ("image_token_id", "video_token_id")}


def build_tiny_dots_ocr(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny dots.ocr checkpoint written by chatvlmllm's own dots.ocr model code.

    The folder has the hub repository's layout (config.json with a vision_config,
    generation_config.json, preprocessor_config.json, chat_template.json, tokenizer files,
    model.safetensors with the real parameter names) and no Python code; the processor
    settings and chat template are the real files.
    """
    import torch

    from chatvlmllm.engines._dots_vision import DotsOcrForGeneration, language_config

    hub = HubFolder.of("dots_ocr")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_dots_tokenizer(out, hub)
    raw = tiny_dots_config(hub, len(tokenizer), dots_token_ids(tokenizer, hub))
    torch.manual_seed(seed)
    model = DotsOcrForGeneration(language_config(raw))
    model.generation_config.bos_token_id = model.generation_config.pad_token_id = None
    _set_generation_config(model, tokenizer, hub)
    model.save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")  # the hub's layout, not Qwen2's
    for name in ("preprocessor_config.json", "chat_template.json"):
        shutil.copyfile(hub.path / name, out / name)
    return out


def builders() -> dict:
    """family → builder, as the adapters declare them (chatvlmllm.models.families)."""
    from chatvlmllm.models.families import tiny_builders

    return tiny_builders()


def main(argv: list[str] | None = None) -> int:
    """`python -m chatvlmllm.devtools.tiny_models FAMILY OUT_DIR` builds one folder."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    available = builders()
    parser.add_argument("family", choices=sorted(available))
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    print(available[args.family](args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
