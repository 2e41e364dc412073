"""One family declaration: everything central derives from what an adapter module declares.

The proof: a throw-away adapter module is written into the adapter package at test time and
used through `--model-path`, the user catalog, the tiny-checkpoint registry and the app,
with no other file touched.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import chatvlmllm.engines
from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.cli import main
from chatvlmllm.devtools.tiny_models import builders
from chatvlmllm.errors import UserError
from chatvlmllm.models import families
from chatvlmllm.models.catalog import load_catalog, model_type_families, spec_from_path
from chatvlmllm.models.families import Options
from tests.helpers import image_bytes, text_image, write_models_file

REPO = Path(__file__).resolve().parents[2]

# A complete adapter: declaration, options schema, prompts, tiny builder and engine in one file.
# Its "model" mirrors the prompt (the family's own declared prompt for transcriptions) plus its
# option `suffix`, so the test can see which declaration reached the answer.
ADAPTER_SOURCE = """
from __future__ import annotations

import json
from pathlib import Path

from chatvlmllm.engines.base import BaseEngine, GenerationStats, latest_user_text
from chatvlmllm.decisions import Task
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, Options

NAME = "{name}"


class MirrorOptions(Options):
    suffix: str = ""


def build_tiny(out_dir, seed=0):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({{"model_type": "{model_type}", "seed": seed}}))
    return out


class MirrorEngine(BaseEngine):
    def _load(self, plan):
        self.config = json.loads((Path(self.spec.path) / "config.json").read_text())

    def _generate(self, messages, settings, cancel):
        options = MirrorOptions.of(self.spec.options, settings.options)
        text = latest_user_text(messages) or FAMILIES[NAME].prompt(Task.TRANSCRIBE)
        yield "mirror:" + text + options.suffix
        return GenerationStats(new_tokens=1)


FAMILIES = {{
    NAME: FamilyInfo(
        NAME,
        MirrorEngine,
        attention=("eager",),
        model_types=("{model_type}",),
        tiny_builder=build_tiny,
        options=MirrorOptions,
        prompts={{Task.TRANSCRIBE: "mirror the page"}},
        entries=(
            CatalogEntry(
                key=NAME + "_builtin",
                name="Mirror",
                hub_id="example/mirror",
                params_b=0.001,
                description="a throw-away family",
                licence="CC0-1.0",
            ),
        ),
    ),
}}
"""


@pytest.fixture
def throwaway_family():
    """Write an adapter module into the adapter package; remove it afterwards."""
    name = f"mirror_{uuid.uuid4().hex[:8]}"
    model_type = f"{name}-type"
    module = Path(chatvlmllm.engines.__path__[0]) / f"{name}.py"
    module.write_text(ADAPTER_SOURCE.format(name=name, model_type=model_type), encoding="utf-8")
    families.refresh()
    try:
        yield name, model_type
    finally:
        module.unlink()
        families.refresh()
        st.cache_resource.clear()
        default_cache().unload()


@pytest.mark.slow
def test_a_new_adapter_module_is_used_everywhere_without_touching_another_file(throwaway_family, tmp_path, capsys):
    name, model_type = throwaway_family
    assert model_type_families()[model_type] == name
    assert f"{name}_builtin" in load_catalog()
    assert load_catalog()[f"{name}_builtin"].licence == "CC0-1.0"

    folder = builders()[name](tmp_path / "mirror", seed=3)
    assert spec_from_path(folder).family == name

    page = tmp_path / "page.png"
    page.write_bytes(image_bytes(text_image(["HELLO"])))
    assert main(["ask", str(page), "what is it?", "--model-path", str(folder), "--no-fallback", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["answer"] == "mirror:what is it?"
    assert record["model"] == "mirror"


def test_options_schema_refuses_unknown_keys_listing_the_valid_ones(throwaway_family, tmp_path, monkeypatch):
    name, _ = throwaway_family
    folder = builders()[name](tmp_path / "mirror")
    models = tmp_path / "models.toml"
    write_models_file(models, {"m": {"family": name, "path": str(folder), "sufix": "!"}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    with pytest.raises(UserError, match=r"sufix.*valid options for mirror_\w+: suffix"):
        load_catalog()
    write_models_file(models, {"m": {"family": name, "path": str(folder), "suffix": "!"}})
    assert load_catalog()["m"].options.model_dump() == {"suffix": "!"}


def test_existing_families_declare_their_model_types_builders_and_entries():
    mapping = model_type_families()
    assert {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "got_ocr2", "dots_ocr"} <= set(mapping)
    assert {"qwen2_vl", "qwen3_vl", "got_ocr2"} <= set(builders())
    catalog = load_catalog()
    for key in ("qwen_vl_2b", "qwen3_vl_2b", "qwen25_vl_3b", "got_ocr_hf", "qwen3_vl_4b", "qwen3_vl_8b"):
        assert catalog[key].builtin and catalog[key].licence, key


def test_a_typo_in_a_builtin_override_is_refused(tmp_path, monkeypatch):
    models = write_models_file(tmp_path / "models.toml", {"got_ocr_hf": {"formt": True}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    with pytest.raises(UserError, match=r"formt.*valid options for got_ocr2: context_tokens, crop_to_patches, format"):
        load_catalog()


def test_the_app_answers_through_the_throwaway_family(throwaway_family, tmp_path, monkeypatch):
    name, _ = throwaway_family
    folder = builders()[name](tmp_path / "mirror")
    models = write_models_file(
        tmp_path / "models.toml", {"mirror": {"family": name, "path": str(folder), "suffix": "!"}}
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    monkeypatch.setenv("CHATVLMLLM_DEFAULT_MODEL", "mirror")
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "mirror")
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception
    at.main.file_uploader[0].set_value(("page.png", image_bytes(text_image(["HELLO"])), "image/png")).run()
    at.chat_input[0].set_value("hello there").run()
    assert not at.exception
    answers = [m.markdown[0].value for m in at.chat_message if m.name == "assistant" and m.markdown]
    assert answers and answers[-1].startswith("mirror:hello there!")


@pytest.mark.parametrize(
    ("entry", "typo", "valid"),
    [
        ({"dots_ocr": {"prompt_mod": "prompt_ocr"}}, "prompt_mod", "prompt_mode"),
        ({"my_ocr": {"family": "rapidocr", "rapidocr_param": {}}}, "rapidocr_param", "rapidocr_params"),
        ({"my_auto": {"family": "ocr_auto", "max_pixel": 1000}}, "max_pixel", "ocr_cache"),
    ],
)
def test_every_family_refuses_a_typo_in_its_options(tmp_path, monkeypatch, entry, typo, valid):
    models = write_models_file(tmp_path / "models.toml", entry)
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    with pytest.raises(UserError, match=rf"{typo}.*valid options for \w+: .*{valid}"):
        load_catalog()


def test_offline_and_dots_options_that_exist_are_kept(tmp_path, monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text(
        '[models.dots_ocr]\nprompt_mode = "prompt_ocr"\n\n'
        '[models.my_ocr]\nfamily = "rapidocr"\nrapidocr_params = { "Det.limit_side_len" = 960 }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    catalog = load_catalog()
    assert catalog["dots_ocr"].options.prompt_mode == "prompt_ocr"  # type: ignore[attr-defined]
    assert catalog["my_ocr"].options.rapidocr_params == {"Det.limit_side_len": 960}  # type: ignore[attr-defined]


# -- typed options end to end ---------------------------------------------------------------------


def test_every_family_names_its_engine_class_its_builder_and_a_described_schema():
    from chatvlmllm.engines import BaseEngine, create_engine
    from chatvlmllm.models.catalog import ModelSpec

    for name, info in families.families().items():
        assert isinstance(info.engine, type) and issubclass(info.engine, BaseEngine), name
        assert info.tiny_builder is None or callable(info.tiny_builder), name
        assert issubclass(info.options, Options) and info.options() == info.options.model_validate({}), name
        for option in families.option_infos(info.options):
            assert option.type and option.description, f"{name}.{option.name} needs a type and a description"
        engine = create_engine(ModelSpec(key=f"probe_{name}", family=name))
        assert type(engine) is info.engine and engine.plan is None  # made, not loaded


def test_options_default_to_the_empty_schema():
    from chatvlmllm.engines import BaseEngine

    info = families.FamilyInfo("bare", BaseEngine)
    assert info.options is Options and families.option_infos(info.options) == ()


def test_an_answer_reads_the_entry_options_with_its_request_over_them():
    from chatvlmllm.engines.got_ocr import GotOptions

    entry = GotOptions.model_validate({"format": True, "max_patches": 3})
    assert GotOptions.of(entry) is entry  # nothing to merge: the entry's own object
    merged = GotOptions.of(entry, {"format": False, "max_new_tokens": 9, "lang": "ru"})
    # The request wins where it speaks; a key this family does not take (the document language,
    # for the offline engines further down the fallback chain) is left out, not refused.
    assert (merged.format, merged.max_patches, merged.max_new_tokens) == (False, 3, 9)
    assert GotOptions.of(Options(), {}) == GotOptions()  # a spec made in code: the defaults
    with pytest.raises(UserError, match=r"^options of this answer: max_patches: Input should be greater than 0$"):
        GotOptions.of(entry, {"max_patches": 0})
    with pytest.raises(UserError, match="max_new_tokens: Input should be a valid integer"):
        GotOptions.of(entry, {"max_new_tokens": True})  # a bool is not a token count
    # A key that no family takes is a typo in the code that built the request: refused, not dropped.
    with pytest.raises(UserError, match=r"^options of this answer: language, promt_mode: no model family takes"):
        GotOptions.of(entry, {"promt_mode": "prompt_ocr", "language": "ru"})  # `language` is `lang` now


def test_the_catalog_carries_the_typed_options(tmp_path, monkeypatch):
    from chatvlmllm.engines.dots_ocr import DotsOptions
    from chatvlmllm.engines.got_ocr import GotOptions

    models = tmp_path / "models.toml"
    models.write_text('[models.dots_ocr]\nprompt_mode = "prompt_ocr"\n', encoding="utf-8")
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    catalog = load_catalog()
    assert catalog["dots_ocr"].options == DotsOptions(prompt_mode="prompt_ocr")
    assert catalog["dots_ocr"].options.model_fields_set == {"prompt_mode"}  # what the file set, nothing more
    assert catalog["got_ocr_hf"].options == GotOptions()  # a built-in nobody configured: the family's defaults
    models.write_text('[models.dots_ocr]\nprompt_mode = "layout please"\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"prompt_mode: Input should be 'prompt_layout_all_en'.*valid options"):
        load_catalog()


@pytest.mark.parametrize(
    ("entry", "lang"),
    [
        ({"lang": "ru"}, "ru"),
        ({"language": "ru"}, "ru"),  # the old name still reads
        ({"lang": "ru", "language": "ru"}, "ru"),
    ],
)
def test_offline_ocr_takes_one_language_option(tmp_path, monkeypatch, entry, lang):
    models = write_models_file(tmp_path / "models.toml", {"my_tess": {"family": "tesseract", **entry}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    options = load_catalog()["my_tess"].options
    assert options.lang == lang  # type: ignore[attr-defined]
    assert "language" not in type(options).model_fields and options.model_dump(exclude_unset=True) == {"lang": lang}


def test_two_different_languages_are_refused_naming_the_new_key(tmp_path, monkeypatch):
    entry = {"my_tess": {"family": "tesseract", "lang": "en", "language": "ru"}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entry)))
    with pytest.raises(UserError, match=r"\[models\.my_tess\]: set `lang` only .*valid options for tesseract: lang"):
        load_catalog()
