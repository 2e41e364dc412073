"""Fixtures shared by the chat tests: one engine cache per module and a catalog of the tiny Qwen2-VL."""

import pytest

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.models.catalog import spec_from_path


@pytest.fixture(scope="module")
def cache():
    engines = EngineCache()
    yield engines
    engines.unload()  # the module's models go with it


@pytest.fixture
def catalog(tiny_qwen2_vl):
    return {"tiny": spec_from_path(tiny_qwen2_vl, "tiny")}
