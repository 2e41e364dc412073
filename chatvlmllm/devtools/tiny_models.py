"""Tiny, randomly initialised checkpoints of the real architectures, built offline.

Tests, benchmarks and the browser end-to-end run need real model folders but cannot
download weights. These builders write folders that the production loader reads
exactly like a hub snapshot: config.json, safetensors weights, tokenizer files,
preprocessor config and chat template. The text is random; the structure is real.
"""

from __future__ import annotations

import json
from pathlib import Path

from chatvlmllm.devtools.real_contracts import (
    DOTS_OCR,
    GOT_OCR_HF,
    QWEN2_VL_2B,
    QWEN3_VL_2B,
    QWEN25_VL_3B,
    RealContract,
)

TINY_HEAD_DIM = 16  # hidden 64 / 4 heads

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The Qwen2-VL chat template (images become <|vision_start|><|image_pad|><|vision_end|>).
QWEN2_VL_CHAT_TEMPLATE = (
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

# Qwen3-VL drops the default system prompt.
QWEN3_VL_CHAT_TEMPLATE = QWEN2_VL_CHAT_TEMPLATE.replace(
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}",
    "",
)

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


def build_qwen_tokenizer(out_dir: str | Path, chat_template: str | None, vocab_size: int = 512):
    """Train a byte-level BPE on a small corpus and wrap it as a Qwen2 tokenizer."""
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
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def _special_ids(tokenizer) -> dict[str, int]:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _text_dims(vocab: int, ids: dict[str, int]) -> dict:
    return {
        "vocab_size": vocab,
        "bos_token_id": None,
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
    }


def _qwen_image_processor(contract: RealContract):
    """The real preprocessor_config.json values (pixel bounds, mean, std, patch/merge/temporal)."""
    from transformers import Qwen2VLImageProcessorPil

    assert contract.min_pixels is not None and contract.max_pixels is not None  # Qwen contracts have both
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": contract.min_pixels, "longest_edge": contract.max_pixels},
        patch_size=contract.patch_size,
        merge_size=contract.merge_size,
        temporal_patch_size=contract.temporal_patch_size,
        image_mean=list(contract.image_mean),
        image_std=list(contract.image_std),
    )


def build_tiny_qwen2_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen2-VL checkpoint (transformers' Qwen2VLForConditionalGeneration)."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    contract = QWEN2_VL_2B
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out, QWEN2_VL_CHAT_TEMPLATE)
    ids = _special_ids(tokenizer)
    text = _text_dims(len(tokenizer), ids) | {
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": contract.rope_theta,
            "mrope_section": contract.scaled_mrope(TINY_HEAD_DIM),
        },
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": contract.patch_size,
            "spatial_merge_size": contract.merge_size,
            "temporal_patch_size": contract.temporal_patch_size,
        },
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    _set_generation_config(model, ids, contract)
    model.save_pretrained(str(out))
    _qwen_image_processor(contract).save_pretrained(str(out))
    return out


def build_tiny_qwen25_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen2.5-VL checkpoint (windowed vision attention with full-attention blocks)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    contract = QWEN25_VL_3B
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out, QWEN2_VL_CHAT_TEMPLATE)
    ids = _special_ids(tokenizer)
    text = _text_dims(len(tokenizer), ids) | {
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": contract.rope_theta,
            "mrope_section": contract.scaled_mrope(TINY_HEAD_DIM),
        },
    }
    config = Qwen2_5_VLConfig(
        text_config=text,
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
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    _set_generation_config(model, ids, contract)
    model.save_pretrained(str(out))
    _qwen_image_processor(contract).save_pretrained(str(out))
    return out


def build_tiny_qwen3_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~1 MB Qwen3-VL checkpoint (patch 16, deepstack on vision layer 0)."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    contract = QWEN3_VL_2B
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out, QWEN3_VL_CHAT_TEMPLATE)
    ids = _special_ids(tokenizer)
    text = _text_dims(len(tokenizer), ids) | {
        "head_dim": TINY_HEAD_DIM,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": contract.rope_theta,
            "mrope_section": contract.scaled_mrope(TINY_HEAD_DIM),
            "mrope_interleaved": contract.extra["mrope_interleaved"],
        },
    }
    config = Qwen3VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": contract.patch_size,
            "spatial_merge_size": contract.merge_size,
            "temporal_patch_size": contract.temporal_patch_size,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    _set_generation_config(model, ids, contract)
    model.save_pretrained(str(out))
    _qwen_image_processor(contract).save_pretrained(str(out))
    return out


def _set_generation_config(model, ids: dict[str, int], contract: RealContract) -> None:
    """The real generation_config.json: eos list in the real order, the real sampling values."""
    gen = model.generation_config
    role_ids = {"im_end": ids["eos_token_id"], "endoftext": ids["pad_token_id"]}
    gen.eos_token_id = [role_ids[role] for role in contract.eos]
    gen.pad_token_id = ids["pad_token_id"]
    gen.bos_token_id = ids["pad_token_id"]  # Qwen's bos_token_id is <|endoftext|> too
    for key, value in contract.generation.items():
        setattr(gen, key, value)


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


# GOT-OCR-2.0 wraps the image as <img><imgpad>…</img>; the hub tokenizer also carries the
# region/box tokens. Its text model ends turns with <|im_end|> but its EOS is <|endoftext|>,
# which is why generation needs stop_strings="<|im_end|>".
GOT_SPECIAL_TOKENS = ["<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>"]


def build_tiny_got_ocr2(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny GOT-OCR-2.0 checkpoint (transformers' GotOcr2ForConditionalGeneration).

    The real model reads 1024×1024 images in 16 px patches (64×64 grid) and its projector's
    two stride-2 convolutions leave 16×16 = 256 image tokens. This one reads 64×64 images in
    4 px patches: the same 16×16 grid, hence 4×4 = 16 image tokens per page or patch. The
    processor is saved with the same 64×64 size, so the two agree as in the real checkpoint.
    """
    import torch
    from transformers import GotOcr2Config, GotOcr2ForConditionalGeneration, GotOcr2ImageProcessorPil, GotOcr2Processor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out, chat_template=None)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:] + GOT_SPECIAL_TOKENS})
    tokenizer.eos_token = "<|endoftext|>"
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<imgpad>")}
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
            "eos_token_id": ids["<|endoftext|>"],
            "pad_token_id": ids["<|endoftext|>"],
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
        image_token_index=ids["<imgpad>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = GotOcr2ForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id = ids["<|endoftext|>"]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.do_sample = False
    model.save_pretrained(str(out))
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=list(GOT_OCR_HF.image_mean),
        image_std=list(GOT_OCR_HF.image_std),
    )
    GotOcr2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out))
    return out


# dots.ocr's own special tokens (tokenizer_config.json added_tokens_decoder, in the real order),
# after the Qwen ones it inherits. <|imgpad|> is its image token, <|img|>/<|endofimg|> frame it.
DOTS_SPECIAL_TOKENS = [
    "<|imgpad|>",
    "<|img|>",
    "<|endofimg|>",
    "<|systemprompt|>",
    "<|endofsystemprompt|>",
    "<|user|>",
    "<|endofuser|>",
    "<|assistant|>",
    "<|endofassistant|>",
    "[PAD]",
]

# The prompt layout dots.ocr's chat template produces (written here, not copied): a user turn
# whose content is a list is a space, then each image as <|img|><|imgpad|><|endofimg|> and the
# text, with no <|user|> wrapper; string turns are wrapped; the answer opens with <|assistant|>.
DOTS_CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}{{ '<|system|>' + m.content + '<|endofsystem|>\n' }}"
    "{%- elif m.role == 'user' -%}"
    "{%- if m.content is string -%}{{ '<|user|>' + m.content + '<|endofuser|>' }}"
    "{%- else -%}{{ ' ' }}{%- for part in m.content -%}"
    "{%- if part.type == 'image' or 'image' in part -%}<|img|><|imgpad|><|endofimg|>"
    "{%- elif 'text' in part -%}{{ part.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- elif m.role == 'assistant' -%}{{ '<|assistant|>' + m.content }}"
    "{%- if not loop.last -%}<|endofassistant|>{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if messages[-1].role != 'assistant' -%}<|assistant|>{%- endif -%}"
)


def tiny_dots_config(vocab_size: int, token_ids: dict[str, int]) -> dict:
    """dots.ocr's config.json layout with the real non-size values and tiny sizes."""
    contract = DOTS_OCR
    return {
        "architectures": ["DotsOCRForCausalLM"],
        "model_type": "dots_ocr",
        **contract.extra["text"],
        "attention_dropout": 0.0,
        "hidden_size": 64,
        "intermediate_size": 128,
        "initializer_range": 0.02,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rope_scaling": None,
        "rope_theta": contract.rope_theta,
        "sliding_window": 4096,
        "use_cache": True,
        "vocab_size": vocab_size,
        "image_token_id": token_ids["image"],
        "video_token_id": token_ids["video"],
        "vision_config": {
            **contract.extra["vision"],
            "embed_dim": 32,
            "hidden_size": 64,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "patch_size": contract.patch_size,
            "spatial_merge_size": contract.merge_size,
            "temporal_patch_size": contract.temporal_patch_size,
        },
    }


def dots_preprocessor_config() -> dict:
    contract = DOTS_OCR
    return {
        "min_pixels": contract.min_pixels,
        "max_pixels": contract.max_pixels,
        "patch_size": contract.patch_size,
        "temporal_patch_size": contract.temporal_patch_size,
        "merge_size": contract.merge_size,
        "image_mean": list(contract.image_mean),
        "image_std": list(contract.image_std),
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "DotsVLProcessor",
    }


def build_dots_tokenizer(out_dir: str | Path, chat_template: str | None = DOTS_CHAT_TEMPLATE):
    """A tiny byte-level tokenizer with dots.ocr's special tokens in their real roles."""
    tokenizer = build_qwen_tokenizer(out_dir, chat_template=chat_template)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:] + DOTS_SPECIAL_TOKENS})
    tokenizer.eos_token = "<|endoftext|>"
    tokenizer.pad_token = "[PAD]"
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def dots_token_ids(tokenizer) -> dict[str, int]:
    """Role -> tiny id, for every role of the real contract (same token text)."""
    return {role: tokenizer.convert_tokens_to_ids(token.text) for role, token in DOTS_OCR.tokens.items()}


def build_tiny_dots_ocr(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny dots.ocr checkpoint written by chatvlmllm's own dots.ocr model code.

    The folder has the hub repository's layout (config.json with a vision_config,
    generation_config.json, preprocessor_config.json, chat_template.json, tokenizer files,
    model.safetensors with the real parameter names) and no Python code.
    """
    import torch

    from chatvlmllm.engines._dots_vision import DotsOcrForGeneration, language_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_dots_tokenizer(out)
    ids = dots_token_ids(tokenizer)
    raw = tiny_dots_config(len(tokenizer), ids)
    torch.manual_seed(seed)
    model = DotsOcrForGeneration(language_config(raw))
    gen = model.generation_config
    gen.eos_token_id = [ids[role] for role in DOTS_OCR.eos]
    gen.max_length = DOTS_OCR.extra["generation_max_length"]
    gen.bos_token_id = gen.pad_token_id = None
    model.save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")  # the hub's layout, not Qwen2's
    (out / "preprocessor_config.json").write_text(json.dumps(dots_preprocessor_config(), indent=2), encoding="utf-8")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": DOTS_CHAT_TEMPLATE}), encoding="utf-8")
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
