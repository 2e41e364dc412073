"""Shared fixtures: tiny real checkpoints built offline once per session, isolated config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import image_bytes, require_hubfiles, text_image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Should anything ever load remote code, its modules go to a throwaway folder, not the user's HF cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="chatvlmllm-hf-modules-"))


def pytest_collection_modifyitems(config, items):
    """gpu-marked tests need CUDA: skipped where torch sees none (an honest hardware skip), run everywhere else."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False here")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """No test reads the developer's own models file, data dir or default model."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "no-models.toml"))
    monkeypatch.setenv("CHATVLMLLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CHATVLMLLM_DEFAULT_MODEL", raising=False)
    monkeypatch.delenv("CHATVLMLLM_FALLBACK", raising=False)
    # English unless a test asks for another language (a developer's own LANG=ru_RU must not change results).
    for variable in ("CHATVLMLLM_UI_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    yield
    _stop_background_readings()


def _stop_background_readings() -> None:
    """A document the app began reading in the background stops with its test (not on the next test's engines)."""
    import sys

    reading = sys.modules.get("chatvlmllm.documents.reading")
    if reading is not None:
        reading.cancel_all()
        with reading._jobs_lock:
            reading._jobs.clear()


@pytest.fixture(scope="session")
def real_tiny(tmp_path_factory):
    """Build (once per session) a tiny checkpoint from a family's real hub files (../shared/hubfiles/<family>):
    sizes shrunk, every other value real."""
    from chatvlmllm.devtools.hub_tiny import build_tiny_from_hub

    built: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_from_hub(require_hubfiles() / family, tmp_path_factory.mktemp(f"real_{family}"))
        return built[family]

    return build


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, real_tiny):
    """Build (once per session) the tiny checkpoint of any family that declares a builder
    (from its real hub files where the builder reads them: the same folder as `real_tiny`)."""
    from chatvlmllm.devtools.tiny_doc_models import HubBuilder
    from chatvlmllm.devtools.tiny_models import builders

    built: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in built:
            builder = builders()[family]
            if isinstance(builder, HubBuilder):
                built[family] = real_tiny(builder.family)
            else:
                built[family] = builder(tmp_path_factory.mktemp(f"tiny_{family}"))
        return built[family]

    return build


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory) -> Path:
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"))


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tmp_path_factory) -> Path:
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen3_vl

    return build_tiny_qwen3_vl(tmp_path_factory.mktemp("tiny_qwen3_vl"))


@pytest.fixture(scope="session")
def tiny_qwen25_vl(tmp_path_factory) -> Path:
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen25_vl

    return build_tiny_qwen25_vl(tmp_path_factory.mktemp("tiny_qwen25_vl"))


@pytest.fixture(scope="session")
def tiny_dots_ocr(tmp_path_factory) -> Path:
    """A tiny dots.ocr folder in the hub's layout, written by chatvlmllm's own dots.ocr model code."""
    from chatvlmllm.devtools.tiny_models import build_tiny_dots_ocr

    return build_tiny_dots_ocr(tmp_path_factory.mktemp("tiny_dots_ocr"))


@pytest.fixture(scope="session")
def looping_qwen2_vl(tmp_path_factory) -> Path:
    """A tiny Qwen2-VL whose weights make it emit one ordinary token forever."""
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl, force_constant_token

    folder = build_tiny_qwen2_vl(tmp_path_factory.mktemp("looping_qwen2_vl"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # A whole word with its leading space ("Ġ"), so the loop streams word by word like real text.
    word = min(t for t in tokenizer.get_vocab() if t.startswith("Ġ") and len(t) > 3 and t[1:].isalpha())
    return force_constant_token(folder, tokenizer.convert_tokens_to_ids(word))


@pytest.fixture(scope="session")
def eos_qwen2_vl(tmp_path_factory) -> Path:
    """A tiny Qwen2-VL whose weights make its first token EOS (an empty answer)."""
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl, force_constant_token

    folder = build_tiny_qwen2_vl(tmp_path_factory.mktemp("eos_qwen2_vl"))
    from transformers import AutoTokenizer

    return force_constant_token(folder, AutoTokenizer.from_pretrained(str(folder)).convert_tokens_to_ids("<|im_end|>"))


@pytest.fixture
def page_png() -> bytes:
    return image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"]))


@pytest.fixture
def page_png_path(tmp_path, page_png) -> Path:
    path = tmp_path / "page.png"
    path.write_bytes(page_png)
    return path
