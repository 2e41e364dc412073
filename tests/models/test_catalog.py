"""Catalog: built-ins, user TOML entries usable by key, local folders."""

from __future__ import annotations

import pytest

from chatvlmllm.errors import ModelNotFoundError, UserError
from chatvlmllm.models.catalog import BUILTIN_MODELS, ModelSpec, get_model, load_catalog, spec_from_path
from tests.helpers import write_models_file


def test_builtin_entries():
    catalog = load_catalog()
    expected = {
        "qwen_vl_2b": ("qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct"),
        "qwen3_vl_2b": ("qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct"),
        "qwen25_vl_3b": ("qwen25_vl", "Qwen/Qwen2.5-VL-3B-Instruct"),
        "got_ocr_hf": ("got_ocr2", "stepfun-ai/GOT-OCR-2.0-hf"),
        "dots_ocr": ("dots_ocr", "rednote-hilab/dots.ocr"),
    }
    for key, (family, hub_id) in expected.items():
        spec = catalog[key]
        assert (spec.family, spec.hub_id) == (family, hub_id)
        assert spec.params_b and spec.params_b > 0
        assert spec.supported_attention and spec.caps
    assert catalog["got_ocr_hf"].supported_attention == ("eager",)
    assert "chat" not in catalog["got_ocr_hf"].caps
    assert "layout" in catalog["dots_ocr"].caps
    assert next(s.key for s in BUILTIN_MODELS) == "qwen_vl_2b"


def test_minimal_user_entry(tmp_path, monkeypatch, tiny_qwen2_vl):
    models = write_models_file(
        tmp_path / "models.toml", {"my_tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)}}
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    spec = get_model("my_tiny")
    assert (spec.family, spec.path, spec.builtin) == ("qwen2_vl", str(tiny_qwen2_vl), False)
    assert spec.supported_attention == ("flash_attention_2", "sdpa", "eager")


def test_user_entry_can_adjust_a_builtin(tmp_path, monkeypatch):
    models = write_models_file(
        tmp_path / "models.toml", {"qwen_vl_2b": {"path": "/models/qwen2vl", "max_pixels": 500000}}
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    spec = get_model("qwen_vl_2b")
    assert (spec.family, spec.path, spec.max_pixels, spec.hub_id) == (
        "qwen2_vl",
        "/models/qwen2vl",
        500000,
        "Qwen/Qwen2-VL-2B-Instruct",
    )


def test_user_entry_errors(tmp_path, monkeypatch):
    models = tmp_path / "models.toml"
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    write_models_file(models, {"x": {"path": "/m"}})
    with pytest.raises(UserError, match="needs a `family`"):
        load_catalog()
    write_models_file(models, {"x": {"family": "llama", "path": "/m"}})
    with pytest.raises(UserError, match="unknown family 'llama'"):
        load_catalog()
    models.write_text("[models.x\nfamily=", encoding="utf-8")
    with pytest.raises(UserError, match="Cannot read the model catalog"):
        load_catalog()


def test_unknown_key_lists_known_models():
    with pytest.raises(ModelNotFoundError, match=r"Unknown model 'nope'.*qwen_vl_2b"):
        get_model("nope")


def test_spec_from_path(tiny_qwen2_vl, tiny_qwen3_vl, tmp_path):
    assert spec_from_path(tiny_qwen2_vl).family == "qwen2_vl"
    assert spec_from_path(tiny_qwen3_vl, key="t3").key == "t3"
    assert spec_from_path(tiny_qwen2_vl).weights_gb > 0
    with pytest.raises(UserError, match=r"no config\.json"):
        spec_from_path(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="not supported"):
        spec_from_path(tmp_path)


@pytest.mark.parametrize("override", ['hub_id = "someone/else"', 'revision = "' + "ab" * 20 + '"', 'path = "/tmp/x"'])
def test_overriding_the_weights_drops_an_inherited_remote_code_opt_in(tmp_path, override):
    import tomllib

    from chatvlmllm.models.catalog import _spec_from_toml

    base = ModelSpec(key="remote", family="qwen2_vl", hub_id="org/remote", trust_remote_code=True, builtin=True)
    entry = tomllib.loads(override)
    assert _spec_from_toml("remote", entry, base, tmp_path / "models.toml").trust_remote_code is False
    # An explicit opt-in in the same entry is honoured: it is per entry, and the user wrote it.
    explicit = _spec_from_toml("remote", {**entry, "trust_remote_code": True}, base, tmp_path / "models.toml")
    assert explicit.trust_remote_code is True
    # Overrides that do not change the code (a description) keep it.
    assert _spec_from_toml("remote", {"description": "x"}, base, tmp_path / "models.toml").trust_remote_code
