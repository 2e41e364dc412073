"""Tiny random checkpoints of the document-model families native in transformers 5.23.

Each builder writes what a hub snapshot holds (config.json, safetensors, tokenizer files,
processor config, chat template) from the transformers config class with small dimensions.
What must match the real checkpoint does: the special-token strings *and their ids*, the
model_type, the processor class and its image settings. The ids come from the config
classes' defaults, which transformers documents as the released checkpoint's values
(the hub repo is named per builder), so the vocabulary is as large as the real one and
only the hidden sizes shrink.

Chat templates are written here from each model card's prompt format (not copied files).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_CORPUS = [
    "Extract all text from this document. OCR: Table Recognition: Formula Recognition:",
    "What is the total amount on the receipt? Convert the document to markdown.",
    "| Item | Price | <table><tr><td>1</td></tr></table> \\frac{a}{b}",
    "TOTAL 12.50 CASH 20.00 CHANGE 7.50 GST 6% Invoice number, date, address.",
    "Привет, мир. Итого к оплате: 100 руб. 0123456789 !?.,;:()[]{}<>/\\|-_+=*&^%$#@~`\"'",
]


def _text_vocab_size(config: Any) -> int:
    """The language model's vocabulary size of a composite config (the real checkpoint's default)."""
    return int(config.text_config.vocab_size)


def tiny_tokenizer(
    out_dir: Path,
    special_tokens: dict[str, int],
    chat_template: str,
    *,
    bos: str | None,
    eos: str,
    pad: str | None,
    unk: str | None = None,
    named_tokens: dict[str, str] | None = None,
    vocab_size: int,
    trained_size: int = 384,
) -> Any:
    """A byte-level BPE trained on a small corpus, with the real special tokens at their real ids.

    Ordinary tokens fill the low ids not taken by a special token; the specials sit in the
    BPE vocabulary at their hub ids. The ids in between become filler words (" w12345"), so
    whatever a random model generates decodes to visible text, as a real vocabulary would.
    `named_tokens` become tokenizer attributes the processors read (e.g. `image_token`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    trainer = trainers.BpeTrainer(
        vocab_size=trained_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    trained = json.loads(bpe.to_str())["model"]
    taken = set(special_tokens.values())
    free_ids = (i for i in range(10**7) if i not in taken)
    ordinary = sorted(trained["vocab"], key=trained["vocab"].get)
    vocab = {token: next(free_ids) for token in ordinary if token not in special_tokens}
    vocab.update(special_tokens)
    used = set(vocab.values())
    vocab.update({f"\u0120w{i}": i for i in range(vocab_size) if i not in used})
    merges: list[tuple[str, str]] = []
    for merge in trained["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merges.append((left, right))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(sorted(special_tokens, key=lambda token: special_tokens[token]))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        extra_special_tokens=named_tokens or {},
    )
    wrapped.chat_template = chat_template
    for token, token_id in special_tokens.items():
        assert wrapped.convert_tokens_to_ids(token) == token_id, (token, token_id)
    wrapped.save_pretrained(str(out_dir))
    return wrapped


def _save(model: Any, processor: Any, out: Path, eos_ids: list[int], pad_id: int | None) -> Path:
    gen = model.generation_config
    gen.eos_token_id = eos_ids
    gen.pad_token_id = pad_id
    gen.do_sample = False
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


# -- PaddleOCR-VL ------------------------------------------------------------------------
# Ids: PaddleOCRVLConfig defaults (= PaddlePaddle/PaddleOCR-VL config.json): image 100295,
# video 100296, vision start/end 101305/101306; ERNIE-4.5 text ids pad 0, bos 1, eos 2.
# Prompt format (model card): "<|begin_of_sentence|>User: <image>OCR:\nAssistant: " and the
# answer ends with "</s>".
PADDLE_TOKENS = {
    "<unk>": 0,
    "<s>": 1,
    "</s>": 2,
    "<|begin_of_sentence|>": 100273,
    "<|end_of_sentence|>": 100272,
    "<|IMAGE_PLACEHOLDER|>": 100295,
    "<|video_pad|>": 100296,
    "<|IMAGE_START|>": 101305,
    "<|IMAGE_END|>": 101306,
}
PADDLE_CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "<|begin_of_sentence|>"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}User: "
    "{% elif message['role'] == 'assistant' %}Assistant: "
    "{% else %}{{ message['role'] | capitalize }}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}<|end_of_sentence|>{% else %}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def build_tiny_paddleocr_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """PaddleOCR-VL (PaddleOCRVLForConditionalGeneration): NaViT vision (patch 14, merge 2) + ERNIE-4.5."""
    from transformers import (
        PaddleOCRVLConfig,
        PaddleOCRVLForConditionalGeneration,
        PaddleOCRVLImageProcessorPil,
        PaddleOCRVLProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(
        out,
        PADDLE_TOKENS,
        PADDLE_CHAT_TEMPLATE,
        bos="<s>",
        eos="</s>",
        pad="<unk>",
        unk="<unk>",
        named_tokens={"image_token": "<|IMAGE_PLACEHOLDER|>"},
        vocab_size=_text_vocab_size(PaddleOCRVLConfig()),
    )
    defaults = PaddleOCRVLConfig()
    config = PaddleOCRVLConfig(
        text_config={
            "vocab_size": _text_vocab_size(defaults),  # 103424
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            # 3-D rotary sections sum to head_dim / 2 (the real 128-dim heads use [16, 24, 24]).
            "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0, "mrope_section": [2, 3, 3]},
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "image_size": 56,
        },
    )
    _seeded(seed)
    model = PaddleOCRVLForConditionalGeneration(config)
    # Real processor settings (preprocessor_config.json): patch 14, merge 2, temporal 1, CLIP mean/std;
    # the pixel range is shrunk so a page is a few dozen tokens.
    image_processor = PaddleOCRVLImageProcessorPil(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 64}, patch_size=14, merge_size=2
    )
    processor = PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.chat_template = PADDLE_CHAT_TEMPLATE
    return _save(model, processor, out, [2], 0)


# -- LightOnOCR --------------------------------------------------------------------------
# lightonai/LightOnOCR-2-1B: Pixtral vision (patch 14, spatial merge 2) + Qwen3 text with the
# Qwen3 vocabulary (151936). Image tokens are Qwen's: <|image_pad|> 151655 (LightOnOcrConfig
# default image_token_id), row break <|vision_pad|> 151654, end <|vision_end|> 151653.
# Pages are longest-edge 1540 px (Pixtral processor), prompted with the image alone.
QWEN3_TOKENS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
LIGHTON_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|image_pad|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_lighton_ocr(out_dir: str | Path, seed: int = 0) -> Path:
    """LightOnOCR (LightOnOcrForConditionalGeneration) with Pixtral's real patch/merge geometry."""
    from transformers import (
        LightOnOcrConfig,
        LightOnOcrForConditionalGeneration,
        LightOnOcrProcessor,
        PixtralImageProcessorPil,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _text_vocab_size(LightOnOcrConfig())
    tokenizer = tiny_tokenizer(
        out,
        QWEN3_TOKENS,
        LIGHTON_CHAT_TEMPLATE,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named_tokens={
            "image_token": "<|image_pad|>",
            "image_break_token": "<|vision_pad|>",
            "image_end_token": "<|vision_end|>",
        },
        vocab_size=vocab_size,
    )
    config = LightOnOcrConfig(
        spatial_merge_size=2,
        image_token_id=QWEN3_TOKENS["<|image_pad|>"],
        tie_word_embeddings=True,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "head_dim": 16,
            "patch_size": 14,
            "image_size": 1540,
        },
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "tie_word_embeddings": True,
            "eos_token_id": QWEN3_TOKENS["<|im_end|>"],
            "pad_token_id": QWEN3_TOKENS["<|endoftext|>"],
        },
    )
    _seeded(seed)
    model = LightOnOcrForConditionalGeneration(config)
    image_processor = PixtralImageProcessorPil(size={"longest_edge": 1540}, patch_size={"height": 14, "width": 14})
    processor = LightOnOcrProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        spatial_merge_size=2,
        chat_template=LIGHTON_CHAT_TEMPLATE,
    )
    ids = QWEN3_TOKENS
    return _save(model, processor, out, [ids["<|im_end|>"], ids["<|endoftext|>"]], ids["<|endoftext|>"])


# -- GLM-OCR -------------------------------------------------------------------------------
# zai-org/GLM-OCR: GLM-4.6V style vision (patch 14, merge 2, temporal 2) + a 0.5B GLM text
# model, vocabulary 59392. GlmOcrConfig defaults give the image ids: <|image|> 59280,
# <|video|> 59281, <|begin_of_image|> 59256, <|end_of_image|> 59257, video begin/end 59258/59259;
# the chat tokens before them follow GLM-4's special-token order ending at 59255.
# Prompt (model card): "[gMASK]<sop><|user|>\n<image>Text Recognition:<|assistant|>\n".
GLM_TOKENS = {
    "<|endoftext|>": 59246,
    "[MASK]": 59247,
    "[gMASK]": 59248,
    "[sMASK]": 59249,
    "<sop>": 59250,
    "<eop>": 59251,
    "<|system|>": 59252,
    "<|user|>": 59253,
    "<|assistant|>": 59254,
    "<|observation|>": 59255,
    "<|begin_of_image|>": 59256,
    "<|end_of_image|>": 59257,
    "<|begin_of_video|>": 59258,
    "<|end_of_video|>": 59259,
    "<|image|>": 59280,
    "<|video|>": 59281,
}
GLM_CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_glm_ocr(out_dir: str | Path, seed: int = 0) -> Path:
    """GLM-OCR (GlmOcrForConditionalGeneration); its processor is GLM-4.6V's (Glm46VProcessor)."""
    from transformers import Glm46VImageProcessorPil, Glm46VProcessor, GlmOcrConfig, GlmOcrForConditionalGeneration

    from chatvlmllm.engines.hf_common import image_only_class

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _text_vocab_size(GlmOcrConfig())
    tokenizer = tiny_tokenizer(
        out,
        GLM_TOKENS,
        GLM_CHAT_TEMPLATE,
        bos=None,
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        named_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
        vocab_size=vocab_size,
    )
    config = GlmOcrConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "eos_token_id": [GLM_TOKENS["<|endoftext|>"], GLM_TOKENS["<|user|>"], GLM_TOKENS["<|observation|>"]],
            "pad_token_id": GLM_TOKENS["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    )
    _seeded(seed)
    model = GlmOcrForConditionalGeneration(config)
    # The processor takes its patch geometry as **kwargs; its typed signature does not list them.
    image_processor = Glm46VImageProcessorPil(  # type: ignore[call-arg]
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 64},
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )
    # Saved through the image-only subclass the engine loads with (video processors need torchvision).
    processor = image_only_class(Glm46VProcessor)(image_processor=image_processor, tokenizer=tokenizer)
    processor.chat_template = GLM_CHAT_TEMPLATE
    ids = GLM_TOKENS
    return _save(
        model, processor, out, [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]], ids["<|endoftext|>"]
    )


# -- granite-docling -----------------------------------------------------------------------
# ibm-granite/granite-docling-258M is an `idefics3` checkpoint (config.json: image_token_id
# 100270, bos 100264, eos/pad 100257, vocab 100352, scale_factor 4, SigLIP2 512 px patch 16);
# its tokenizer_config.json places the chat, image and DocTags tokens below. The chat
# format (its chat_template.jinja): "<|start_of_role|>user<|end_of_role|><image>Convert this
# page to docling.<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>".
GRANITE_DOCLING_TOKENS = {
    "<|pad|>": 100256,
    "<|end_of_text|>": 100257,
    "<row_1_col_1>": 100258,
    "<row_1_col_2>": 100259,
    "<text>": 100260,
    "<row_1_col_3>": 100261,
    "<row_1_col_4>": 100262,
    "<row_2_col_1>": 100263,
    "<|start_of_role|>": 100264,
    "<|end_of_role|>": 100265,
    "</title>": 100266,
    "<row_2_col_2>": 100267,
    "<row_2_col_3>": 100268,
    "<title>": 100269,
    "<image>": 100270,
    "<caption>": 100271,
    "</caption>": 100272,
    "<formula>": 100275,
    "</formula>": 100276,
    "<list_item>": 100277,
    "</list_item>": 100278,
    "<page_footer>": 100279,
    "</page_footer>": 100280,
    "<page_header>": 100281,
    "</page_header>": 100282,
    "<picture>": 100283,
    "</picture>": 100284,
    "<section_header_level_1>": 100285,
    "</section_header_level_1>": 100286,
    "<otsl>": 100297,
    "</otsl>": 100298,
    "</text>": 100317,
    "<doctag>": 100327,
    "</doctag>": 100328,
    "<fcel>": 100330,
    "<ecel>": 100331,
    "<nl>": 100335,
    "<ched>": 100336,
    "<rhed>": 100337,
    "<|unk|>": 100338,
    "<fake_token_around_image>": 100339,
    "<global-img>": 100340,
    "<row_2_col_4>": 100341,
    "<row_3_col_1>": 100342,
    "<row_3_col_2>": 100343,
    "<row_3_col_3>": 100344,
    "<row_3_col_4>": 100345,
    "<row_4_col_1>": 100346,
    "<row_4_col_2>": 100347,
    "<row_4_col_3>": 100348,
    "<row_4_col_4>": 100349,
    "<code>": 100350,
    "</code>": 100351,
    "<end_of_utterance>": 100352,  # added_tokens.json: one past the embedding table, as on the hub
}
GRANITE_CHAT_TEMPLATE = (
    "{% for message in messages %}<|start_of_role|>{{ message['role'] }}<|end_of_role|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|end_of_text|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)
_GRANITE_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 512,
    "patch_size": 16,
}
_GRANITE_TEXT = {
    "vocab_size": 100352,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "bos_token_id": 100264,
    "eos_token_id": 100257,
    "pad_token_id": 100257,
    # The hub model ties them; untied here because random tied embeddings make greedy decoding
    # echo the prompt's last token (<|end_of_role|>, a special token: an "empty" answer).
    "tie_word_embeddings": False,
}


def _granite_tokenizer(out: Path, image_token: str = "<image>", image_token_id: int = 100270) -> Any:
    tokens = dict(GRANITE_DOCLING_TOKENS)
    if image_token_id != tokens[image_token]:
        clash = {t for t, i in tokens.items() if i == image_token_id}
        tokens = {t: i for t, i in tokens.items() if t not in clash} | {image_token: image_token_id}
    # DocTags locations <loc_0>..<loc_500> are ordinary vocabulary entries on the hub; here they
    # sit at free ids so a DocTags answer still tokenises to one token per location.
    taken = set(tokens.values())
    free = (i for i in range(99_000, 100_256) if i not in taken)
    tokens.update({f"<loc_{n}>": next(free) for n in range(501)})
    return tiny_tokenizer(
        out,
        tokens,
        GRANITE_CHAT_TEMPLATE,
        bos="<|start_of_role|>",
        eos="<|end_of_text|>",
        pad="<|end_of_text|>",
        unk="<|unk|>",
        vocab_size=100352,
    )


def build_tiny_granite_docling_idefics3(out_dir: str | Path, seed: int = 0) -> Path:
    """granite-docling-258M's architecture: Idefics3ForConditionalGeneration (SigLIP2 + Granite/Llama)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _granite_tokenizer(out)
    config = Idefics3Config(  # type: ignore[call-arg]  # pad_token_id goes through **kwargs
        vision_config=_GRANITE_VISION,
        text_config={"model_type": "llama", **_GRANITE_TEXT},
        image_token_id=100270,
        scale_factor=4,
        tie_word_embeddings=False,
        pad_token_id=100257,
    )
    _seeded(seed)
    model = Idefics3ForConditionalGeneration(config)
    # Real preprocessor: tiles of 512 px (max_image_size), pages up to 2048 px split into tiles.
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 2048}, max_image_size={"longest_edge": 512}, do_image_splitting=True
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=64, chat_template=GRANITE_CHAT_TEMPLATE
    )
    return _save(model, processor, out, [100257], 100257)


def build_tiny_granite_docling(out_dir: str | Path, seed: int = 0) -> Path:
    """The native `granite_docling` class (documented with ibm-granite/granite-for-docling-500m):
    ids are GraniteDoclingConfig's defaults (image 100337, pad 100256, bos/eos 100257)."""
    from transformers import (
        GraniteDoclingConfig,
        GraniteDoclingForConditionalGeneration,
        GraniteDoclingImageProcessorPil,
        GraniteDoclingProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    defaults = GraniteDoclingConfig()
    tokenizer = _granite_tokenizer(out, image_token_id=defaults.image_token_id)
    text = {**_GRANITE_TEXT, "vocab_size": 100352, "bos_token_id": 100257, "pad_token_id": 100256}
    config = GraniteDoclingConfig(
        vision_config={**_GRANITE_VISION, "out_hidden_size": 32, "deepstack_visual_indexes": [0]},
        text_config=text,
        image_token_id=defaults.image_token_id,
        pad_token_id=100256,
        tie_word_embeddings=False,
    )
    _seeded(seed)
    model = GraniteDoclingForConditionalGeneration(config)
    image_processor = GraniteDoclingImageProcessorPil()
    processor = GraniteDoclingProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=64, chat_template=GRANITE_CHAT_TEMPLATE
    )
    return _save(model, processor, out, [100257], 100256)


# -- DeepSeek-OCR-2 ------------------------------------------------------------------------
# deepseek-community/DeepSeek-OCR-2: SAM-base (1024 px, patch 16, two stride-2 downsamples →
# 256 tokens per 1024 view, 144 per 768 tile) feeding a Qwen2-style encoder, then a
# DeepSeek-V2-style MoE decoder with the DeepSeek-V3 vocabulary (129280). <image> is 128815
# (DeepseekOcr2Config default); bos/eos/pad are the DeepSeek-V3 tokenizer's ids 0/1/2. The
# grounding tags are placed just after <image> (their ids are not in any config).
# Prompt format (model card, "plain" conversation): "<image>\n<|grounding|>Convert the document to markdown."
DEEPSEEK_TOKENS = {
    "<｜begin▁of▁sentence｜>": 0,
    "<｜end▁of▁sentence｜>": 1,
    "<｜▁pad▁｜>": 2,
    "<image>": 128815,
    "<|ref|>": 128816,
    "<|/ref|>": 128817,
    "<|det|>": 128818,
    "<|/det|>": 128819,
    "<|grounding|>": 128820,
}
DEEPSEEK_CHAT_TEMPLATE = (
    "<｜begin▁of▁sentence｜>"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
)


def build_tiny_deepseek_ocr2(out_dir: str | Path, seed: int = 0) -> Path:
    """DeepSeek-OCR-2 (DeepseekOcr2ForConditionalGeneration) at the real 1024 px / 768 px geometry."""
    from transformers import (
        DeepseekOcr2Config,
        DeepseekOcr2ForConditionalGeneration,
        DeepseekOcr2ImageProcessorPil,
        DeepseekOcr2Processor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = 129280
    tokenizer = tiny_tokenizer(
        out,
        DEEPSEEK_TOKENS,
        DEEPSEEK_CHAT_TEMPLATE,
        bos="<｜begin▁of▁sentence｜>",
        eos="<｜end▁of▁sentence｜>",
        pad="<｜▁pad▁｜>",
        named_tokens={"image_token": "<image>"},
        vocab_size=vocab_size,
    )
    config = DeepseekOcr2Config(
        image_token_id=DEEPSEEK_TOKENS["<image>"],
        vision_config={
            "sam_config": {
                "hidden_size": 32,
                "output_channels": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 1024,
                "patch_size": 16,
                "window_size": 14,
                "global_attn_indexes": [1],
                "mlp_dim": 64,
                "downsample_channels": [32, 64],
            },
            "encoder_config": {
                "vocab_size": 16,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
            },
        },
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "moe_intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": 8,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            "mlp_layer_types": ["dense", "sparse"],  # the real model's first layer is dense, the rest MoE
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 2,
        },
    )
    _seeded(seed)
    model = DeepseekOcr2ForConditionalGeneration(config)
    processor = DeepseekOcr2Processor(
        image_processor=DeepseekOcr2ImageProcessorPil(),
        tokenizer=tokenizer,
        patch_size=16,
        downsample_ratio=4,
        chat_template=DEEPSEEK_CHAT_TEMPLATE,
    )
    return _save(model, processor, out, [1], 2)
