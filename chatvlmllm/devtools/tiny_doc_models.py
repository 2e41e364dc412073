"""Tiny random checkpoints of the document-model families native in transformers 5.23.

Wherever a family's real hub files exist (../shared/hubfiles/<family>, see its SOURCES.md) the
tiny checkpoint is built from them (`hub_tiny.build_tiny_from_hub`): every token id, template,
processor setting and generation value is the real one, only the size dimensions shrink.
PaddleOCR-VL, LightOnOCR, GLM-OCR, DeepSeek-OCR-2 and granite-docling-258M are built that way.

The native `granite_docling` class (documented with ibm-granite/granite-for-docling-500m) has no
real files here: its builder below writes a tokenizer and template by hand, from that class's
config defaults.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatvlmllm.devtools.hub_tiny import build_tiny_from_hub, hubfiles_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubBuilder:
    """A family's tiny-checkpoint builder that reads its real hub files (`hubfiles_dir() / family`)."""

    family: str

    def __call__(self, out_dir: str | Path, seed: int = 0) -> Path:
        return build_tiny_from_hub(hubfiles_dir() / self.family, out_dir, seed)


build_tiny_paddleocr_vl = HubBuilder("paddleocr_vl")
build_tiny_lighton_ocr = HubBuilder("lighton_ocr")
build_tiny_glm_ocr = HubBuilder("glm_ocr")
build_tiny_deepseek_ocr2 = HubBuilder("deepseek_ocr2")
build_tiny_granite_docling_idefics3 = HubBuilder("granite_docling")

_CORPUS = [
    "Extract all text from this document. OCR: Table Recognition: Formula Recognition:",
    "What is the total amount on the receipt? Convert the document to markdown.",
    "| Item | Price | <table><tr><td>1</td></tr></table> \\frac{a}{b}",
    "TOTAL 12.50 CASH 20.00 CHANGE 7.50 GST 6% Invoice number, date, address.",
    "Привет, мир. Итого к оплате: 100 руб. 0123456789 !?.,;:()[]{}<>/\\|-_+=*&^%$#@~`\"'",
]


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


# -- the native granite_docling class (no real files) ----------------------------------------
# Hand-written, for the native class only: the token table of granite-docling-258M's
# tokenizer_config.json, re-placed at GraniteDoclingConfig's ids. (granite-docling-258M itself,
# an `idefics3` checkpoint, is built from its real hub files above.)
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
