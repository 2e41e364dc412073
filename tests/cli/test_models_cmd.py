"""`chatvlmllm models --options KEY`: a model's options from its family's schema, as a table or JSON."""

from __future__ import annotations

import json

import pytest

from chatvlmllm.cli import main
from chatvlmllm.engines.got_ocr import DEFAULT_MAX_PATCHES, GotOptions
from chatvlmllm.models.families import family_info
from tests.helpers import write_models_file


def options_json(capsys, key: str) -> dict:
    assert main(["models", "--options", key, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_the_family_schema_in_order(capsys):
    report = options_json(capsys, "got_ocr_hf")
    assert (report["model"], report["family"]) == ("got_ocr_hf", "got_ocr2")
    assert [row["name"] for row in report["options"]] == list(GotOptions.model_fields)
    rows = {row["name"]: row for row in report["options"]}
    assert rows["max_patches"] | {"description": ""} == {
        "name": "max_patches",
        "type": "int",
        "default": DEFAULT_MAX_PATCHES,
        "set": False,
        "value": DEFAULT_MAX_PATCHES,
        "description": "",
    }
    assert (rows["format"]["type"], rows["format"]["default"]) == ("bool", False)
    assert rows["max_new_tokens"]["default"] is None and "4096" in rows["max_new_tokens"]["description"]
    assert all(row["description"] for row in report["options"])


def test_json_shows_what_the_models_file_sets(capsys, tmp_path, monkeypatch):
    entries = {"my_dots": {"family": "dots_ocr", "path": str(tmp_path), "prompt_mode": "prompt_ocr", "image_index": 1}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entries)))
    rows = {row["name"]: row for row in options_json(capsys, "my_dots")["options"]}
    assert rows["prompt_mode"]["type"] == '"prompt_layout_all_en" | "prompt_layout_only_en" | "prompt_ocr" | ' + (
        '"prompt_grounding_ocr"'
    )
    assert (rows["prompt_mode"]["set"], rows["prompt_mode"]["value"]) == (True, "prompt_ocr")
    assert (rows["image_index"]["default"], rows["image_index"]["value"]) == (0, 1)
    assert not rows["all_images"]["set"] and rows["all_images"]["value"] is False


def test_the_table_names_every_option_with_its_type_default_and_description(capsys, tmp_path, monkeypatch):
    entries = {"my_ocr": {"family": "rapidocr", "reader_note": False}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entries)))
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    assert main(["models", "--options", "my_ocr"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("my_ocr (family rapidocr): options of its [models.my_ocr] table in ")
    assert out[1].split() == ["option", "type", "default", "description"]
    rows = {line.split()[0]: line.split(maxsplit=3) for line in out[2:] if line and not line.startswith(" ")}
    assert set(family_info("rapidocr").options.model_fields) <= set(rows)
    assert rows["ocr_cache"][:3] == ["ocr_cache", "bool", "true"]  # TOML spelling
    assert rows["lang"][:3] == ["lang", "str", "-"] and "ISO 639-1" in rows["lang"][3]
    assert out[-2:] == ["This entry sets:", "  reader_note = false"]


def test_a_narrow_terminal_wraps_the_description_under_its_column(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["models", "--options", "dots_ocr"]) == 0
    lines = capsys.readouterr().out.splitlines()
    column = lines[1].index("description")
    continued = [line for line in lines[2:] if line.startswith(" " * column) and line.strip()]
    assert continued and all(len(line) <= column + 31 for line in continued)


@pytest.mark.parametrize("key", ["qwen_vl_2b", "ocr_auto"])
def test_every_catalog_model_answers(capsys, key):
    report = options_json(capsys, key)
    assert report["options"] and report["family"] == family_info(report["family"]).name


def test_an_unknown_model_is_one_line(capsys):
    assert main(["models", "--options", "no_such_model"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: Unknown model 'no_such_model'. Known models: ")
    assert len(err.strip().splitlines()) == 1
