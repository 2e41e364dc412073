"""GOT-OCR-2.0 through the production path (catalog → plan → EngineCache → stream) on tiny
real GotOcr2 checkpoints built offline. Assertions are on structure, never on the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.engines.got_ocr import DEFAULT_MAX_PATCHES, GOT_MAX_NEW_TOKENS, GotOcrEngine, GotOptions
from chatvlmllm.errors import UserError
from chatvlmllm.models.catalog import get_model, load_catalog, spec_from_path
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.planner import plan_load
from chatvlmllm.models.tasks import classify
from tests.helpers import text_image, write_models_file

CPU = HardwareProfile(device="cpu", ram_total_gb=16.0, cpu_count=2)
TOKENS_PER_TILE = 16  # tiny vision: 64 px / 4 px patches = 16×16 grid → two stride-2 convs → 4×4


def _build(tmp_path_factory, name: str, constant: str | None) -> Path:
    from transformers import AutoTokenizer

    from chatvlmllm.devtools.tiny_models import build_tiny_got_ocr2, force_constant_token

    folder = build_tiny_got_ocr2(tmp_path_factory.mktemp(name))
    if constant is not None:
        force_constant_token(folder, AutoTokenizer.from_pretrained(str(folder)).convert_tokens_to_ids(constant))
    return folder


@pytest.fixture(scope="session")
def got_a(tmp_path_factory) -> Path:
    """A tiny GOT whose weights make it write "a" forever: visible text, deterministic length."""
    return _build(tmp_path_factory, "got_a", "a")


@pytest.fixture(scope="session")
def got_im_end(tmp_path_factory) -> Path:
    """A tiny GOT whose first token is <|im_end|>: only the stop string can end it at once."""
    return _build(tmp_path_factory, "got_im_end", "<|im_end|>")


@pytest.fixture(scope="module")
def cache() -> EngineCache:
    return EngineCache()


def _engine(cache: EngineCache, folder: Path, key: str = "got"):
    spec = spec_from_path(folder, key=key)
    plan = plan_load(CPU, spec)
    return spec, plan, cache.get(spec, plan)


def _answer(engine, text: str = "Extract all text", images=None, user_max: int | None = 16, **options):
    images = images if images is not None else [text_image(["TOTAL 12.50"], size=(300, 200))]
    settings = GenerationSettings(max_new_tokens=user_max, options=options)
    stream = engine.stream([Message("user", text, images)], settings)
    stream.consume()
    return stream


def test_tiny_checkpoint_loads_through_the_production_loader(got_a, cache):
    spec, plan, engine = _engine(cache, got_a)
    assert spec.family == "got_ocr2" and plan.attention == "eager" and plan.runnable
    assert type(engine.model).__name__ == "GotOcr2ForConditionalGeneration"
    assert engine.model.config._attn_implementation == "eager"
    assert cache.get(spec, plan) is engine and cache.load_counts["got"] == 1
    assert engine.image_tokens_per_tile() == TOKENS_PER_TILE


def test_plain_transcription_has_gots_own_token_budget(got_a, cache):
    _, _, engine = _engine(cache, got_a)
    stream = _answer(engine, user_max=None)
    m = stream.metrics
    assert stream.extras["got_query"] == "OCR"
    assert stream.extras["image_tokens"] == TOKENS_PER_TILE and stream.extras["tiles"] == 1
    # No limit set by the user: GOT's 4096 applies (not the generic 1024), and this model
    # (one token forever) runs until the repetition guard, past 16 tokens.
    assert stream.extras["max_new_tokens"] == GOT_MAX_NEW_TOKENS
    assert m.stopped_by == "repetition" and m.new_tokens > 16
    assert (m.model, m.attention, m.dtype, m.device) == ("got", "eager", "float32", "cpu")
    assert m.prompt_tokens > TOKENS_PER_TILE and m.ttft_s is not None and m.total_s >= m.ttft_s
    assert stream.text.strip() and not stream.extras["transcription_only_note"]


def test_the_users_max_new_tokens_is_honoured(got_a, cache):
    _, _, engine = _engine(cache, got_a)
    stream = _answer(engine, user_max=16)  # never silently raised to GOT's 4096
    assert stream.extras["max_new_tokens"] == 16
    assert (stream.metrics.new_tokens, stream.metrics.stopped_by) == (16, "max_tokens")


def test_an_explicit_budget_wins(got_a, cache):
    _, _, engine = _engine(cache, got_a)
    stream = _answer(engine, max_new_tokens=5)
    assert stream.extras["max_new_tokens"] == 5
    assert (stream.metrics.new_tokens, stream.metrics.stopped_by) == (5, "max_tokens")


@pytest.mark.parametrize(
    ("options", "pages", "query", "tiles"),
    [
        ({"format": True}, 1, "OCR with format", 1),
        # A 300×200 page cut into at most 3 tiles: 2 tiles + the thumbnail.
        ({"crop_to_patches": True, "max_patches": 3}, 1, "OCR upon the patch reference", 3),
        ({}, 2, "OCR across multi pages", 2),  # several pages: multi-page mode by default
        ({"multi_page": False}, 2, "OCR", 1),  # ...unless turned off: the first page only
        ({"format": True, "multi_page": True}, 2, "OCR with format across multi pages", 2),
    ],
)
def test_modes_reach_the_processor(got_a, cache, options, pages, query, tiles):
    _, _, engine = _engine(cache, got_a)
    images = [text_image([f"page {i}"], size=(300, 200)) for i in range(pages)]
    stream = _answer(engine, images=images, max_new_tokens=4, **options)
    assert stream.extras["got_query"] == query
    assert stream.extras["tiles"] == tiles
    assert stream.extras["image_tokens"] == TOKENS_PER_TILE * tiles
    assert stream.metrics.new_tokens == 4


def test_catalog_options_set_the_default_mode(got_a, cache, tmp_path, monkeypatch):
    models = write_models_file(
        tmp_path / "models.toml", {"got_fmt": {"family": "got_ocr2", "path": str(got_a), "format": True}}
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    spec = get_model("got_fmt", load_catalog())
    assert spec.options == GotOptions(format=True) and spec.options.max_patches == DEFAULT_MAX_PATCHES
    engine = cache.get(spec, plan_load(CPU, spec))
    assert _answer(engine, max_new_tokens=2).extras["got_query"] == "OCR with format"
    assert _answer(engine, max_new_tokens=2, format=False).extras["got_query"] == "OCR"  # the request wins


def test_a_question_gets_the_transcription_and_an_honest_note(got_a, cache):
    _, _, engine = _engine(cache, got_a)
    stream = _answer(engine, "What is the total amount?", max_new_tokens=6)
    assert stream.extras["transcription_only_note"]
    note, _, transcription = stream.text.partition("\n\n")
    assert "only transcribes" in note and "What is the total amount?" in note
    assert transcription == "a" * 6  # the model's text follows, untouched
    # Key fields are not a transcription for GOT either (the offline engines always said so).
    fields = _answer(engine, "Extract the key fields as JSON", max_new_tokens=6)
    assert fields.extras["transcription_only_note"] and "only transcribes" in fields.text.partition("\n\n")[0]
    # The document stays in context: a follow-up without a new upload uses the earlier page.
    page = text_image(["TOTAL 12.50"], size=(300, 200))
    history = [
        Message("user", "Extract all text", [page]),
        Message("assistant", "aaaa"),
        Message("user", "and the date?"),
    ]
    follow_up = engine.stream(history, GenerationSettings(options={"max_new_tokens": 3}))
    follow_up.consume()
    assert follow_up.extras["pages"] == 1 and follow_up.extras["transcription_only_note"]


def test_stop_string_ends_generation(got_im_end, cache):
    _, _, engine = _engine(cache, got_im_end, key="got_im_end")
    # <|im_end|> is not GOT's EOS token: only stop_strings="<|im_end|>" stops it after one token.
    assert engine.processor.tokenizer.eos_token == "<|endoftext|>"
    stream = _answer(engine, "What is this?")
    assert (stream.metrics.new_tokens, stream.metrics.stopped_by) == (1, "eos")
    assert stream.text == "" and not stream.extras["transcription_only_note"]  # no text, no note


@pytest.mark.parametrize(
    ("images", "options", "message"),
    [
        ([], {}, "needs a page image"),
        (None, {"crop_to_patches": True, "max_patches": 0}, "max_patches"),
        (None, {"max_new_tokens": "lots"}, "max_new_tokens"),
    ],
)
def test_bad_requests_are_user_errors(got_a, cache, images, options, message):
    _, _, engine = _engine(cache, got_a)
    with pytest.raises(UserError, match=message):
        _answer(engine, images=images, **options)


def test_transcription_requests_and_questions():
    for request in ("", "Extract all text", "OCR this page", "Convert to markdown", "Распознай текст"):
        assert classify(request) in GotOcrEngine.transcribes, request
    for question in ("What is the total?", "Summarize the page", "how much tax", "Сколько стоит?", "Who signed it"):
        assert classify(question) not in GotOcrEngine.transcribes, question
