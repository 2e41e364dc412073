"""Weights: local folders, the HF cache, and failing fast when offline."""

from __future__ import annotations

import pytest

from chatvlmllm.errors import WeightsMissingError
from chatvlmllm.models.catalog import ModelSpec, get_model, spec_from_path
from chatvlmllm.models.weights import locate, resolve
from tests.netwatch import outbound_attempts


def test_local_folder(tiny_qwen2_vl):
    spec = spec_from_path(tiny_qwen2_vl)
    assert locate(spec).status == "local"
    assert resolve(spec) == str(tiny_qwen2_vl)


def test_bad_local_path(tmp_path):
    spec = ModelSpec(key="x", family="qwen2_vl", path=str(tmp_path / "missing"))
    assert locate(spec).status == "missing"
    with pytest.raises(WeightsMissingError, match="not a model folder"):
        resolve(spec)


def test_hf_cache_snapshot_is_found(tmp_path, monkeypatch, tiny_qwen2_vl):
    """A hub id whose snapshot sits in the HF cache loads offline."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for f in tiny_qwen2_vl.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (cache / "models--org--tiny" / "refs").mkdir()
    (cache / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    spec = ModelSpec(key="tiny", family="qwen2_vl", hub_id="org/tiny")
    location = locate(spec)
    assert location.status == "cached"
    assert resolve(spec) == str(snapshot)


def test_missing_weights_offline_fail_fast_with_download_command():
    spec = get_model("qwen_vl_2b")
    with outbound_attempts() as network, pytest.raises(WeightsMissingError) as err:
        resolve(spec)
    assert network == []  # no hub lookups, so no retries to wait through
    assert "hf download Qwen/Qwen2-VL-2B-Instruct" in str(err.value)
    assert "HF_HUB_OFFLINE" in str(err.value)
    assert locate(spec, check_hub=True).status == "missing"
