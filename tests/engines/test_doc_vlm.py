"""The native document-model families on tiny random checkpoints of their real architectures:
through `chatvlmllm ask`, the app (AppTest) and `serve`, plus their output formats.

Asserts on structure (special-token ids, image-token counts, prompts sent, token counts),
never on the random text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import openai
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.cli import main
from chatvlmllm.decisions import Task
from chatvlmllm.devtools.servers import running_server
from chatvlmllm.documents.markup import parse_doctags, parse_grounding, sanitize_tables
from chatvlmllm.models.catalog import load_catalog, spec_from_path
from chatvlmllm.models.families import family_info
from chatvlmllm.models.hardware import simulated_gpu
from chatvlmllm.models.planner import PlanOverrides, plan_load
from tests.helpers import image_bytes, text_image, write_models_file

REPO = Path(__file__).resolve().parents[2]
# family → (real image token, its hub id)
IMAGE_TOKENS = {
    "paddleocr_vl": ("<|IMAGE_PLACEHOLDER|>", 100295),
    "lighton_ocr": ("<|image_pad|>", 151655),
    "glm_ocr": ("<|image|>", 59280),
    "deepseek_ocr2": ("<image>", 128815),
    "granite_docling": ("<image>", 100270),
    "granite_docling_native": ("<image>", 100337),
}
FAMILIES = sorted(IMAGE_TOKENS)


@pytest.fixture
def page(tmp_path) -> Path:
    path = tmp_path / "page.png"
    path.write_bytes(image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"])))
    return path


def ask_json(page: Path, folder: Path, question: str, capsys, *extra: str) -> dict:
    code = main(["ask", str(page), question, "--model-path", str(folder), "--no-fallback", "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.slow
def test_ask_answers_through_the_family_with_its_task_prompt(family, tiny_checkpoint, page, capsys):
    folder = tiny_checkpoint(family)
    assert spec_from_path(folder).family == family
    record = ask_json(page, folder, "Extract the table", capsys, "--max-new-tokens", "4")
    assert record["answer"].strip()
    assert record["new_tokens"] == 4
    extras = record["extras"]
    assert extras["task"] == Task.TABLE
    assert extras["prompt"] == family_info(family).prompt(Task.TABLE)
    assert extras["image_tokens"] > 0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.slow
def test_the_checkpoint_carries_the_real_image_token_id(family, tiny_checkpoint):
    from transformers import AutoTokenizer

    folder = tiny_checkpoint(family)
    token, hub_id = IMAGE_TOKENS[family]
    config = json.loads((folder / "config.json").read_text())
    assert config["image_token_id"] == hub_id
    assert AutoTokenizer.from_pretrained(str(folder)).convert_tokens_to_ids(token) == hub_id


def test_a_question_to_an_ocr_specialist_gets_the_transcription_with_a_note(tiny_checkpoint, page, capsys):
    record = ask_json(page, tiny_checkpoint("paddleocr_vl"), "What is the total?", capsys, "--max-new-tokens", "3")
    assert record["extras"]["prompt"] == "OCR:"
    assert record["answer"].startswith("*PaddleOCR") or "does not answer questions" in record["answer"]


def test_deepseek_ocr2_refuses_flash_attention_even_where_it_works():
    spec = load_catalog()["deepseek_ocr2"]
    hw = simulated_gpu("9.0:80", assume_flash_attn=True)
    assert plan_load(hw, spec).attention == "sdpa"
    refused = plan_load(hw, spec, PlanOverrides(attention="flash_attention_2"))
    assert not refused.runnable
    assert "supports only sdpa, eager" in refused.why_not()


def test_every_new_entry_declares_a_licence_size_and_parameter_count():
    catalog = load_catalog()
    for key in ("paddleocr_vl", "lighton_ocr", "glm_ocr", "deepseek_ocr2", "granite_docling"):
        spec = catalog[key]
        assert spec.licence and spec.params_b and spec.weights_gb and spec.hub_id, key


def test_doctags_become_layout_elements_on_the_page():
    doctags = (
        "<doctag><title><loc_50><loc_25><loc_450><loc_75>Invoice</title>"
        "<otsl><loc_0><loc_100><loc_500><loc_300><ched>Item<ched>Price<nl><fcel>Tea<fcel>2.50<nl></otsl></doctag>"
    )
    title, table = parse_doctags(doctags, (1000, 2000))
    assert (title.category, title.text, title.bbox) == ("Title", "Invoice", (100.0, 100.0, 900.0, 300.0))
    assert table.category == "Table" and "<td>Tea</td>" in table.text and table.bbox == (0.0, 400.0, 1000.0, 1200.0)


def test_grounding_spans_become_layout_elements_and_tables_are_sanitised():
    text = (
        "<|ref|>title<|/ref|><|det|>[[0, 0, 999, 99]]<|/det|>\n# Total\n"
        "<|ref|>text<|/ref|><|det|>[[0, 100, 499, 199]]<|/det|>\nTea"
    )
    title, body = parse_grounding(text, (999, 999))
    assert (title.category, title.text, title.bbox) == ("Title", "# Total", (0.0, 0.0, 999.0, 99.0))
    assert body.text == "Tea"
    dirty = '<table onclick="x()"><tr><td>1<script>alert(1)</script></td></tr></table>'
    clean = sanitize_tables(f"before {dirty} after")
    assert clean.startswith("before <table>") and clean.endswith("</table> after")
    assert "<td>1</td>" in clean and "script" not in clean and "onclick" not in clean


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_the_app_answers_through_the_family(family, tiny_checkpoint, tmp_path, monkeypatch):
    folder = tiny_checkpoint(family)
    models = write_models_file(tmp_path / "models.toml", {"doc": {"family": family, "path": str(folder)}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    monkeypatch.setenv("CHATVLMLLM_DEFAULT_MODEL", "doc")
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "doc")
    st.cache_resource.clear()
    default_cache().unload()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
        at.number_input(key="max_new_tokens").set_value(4).run()
        at.main.file_uploader[0].set_value(("page.png", image_bytes(text_image(["TOTAL 12.50"])), "image/png")).run()
        at.chat_input[0].set_value("Extract the text").run()
        assert not at.exception
        session = at.session_state["chat_session"]
        turn = session.conversation.turns[-1]
        assert turn.model == "doc"
        assert turn.text.strip()
    finally:
        st.cache_resource.clear()
        default_cache().unload()


@pytest.mark.slow
@pytest.mark.slow
def test_serve_answers_through_every_family(tiny_checkpoint, tmp_path):
    folders = [tiny_checkpoint(family) for family in FAMILIES]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CHATVLMLLM_MODELS_FILE": str(tmp_path / "models.toml"),
        "CHATVLMLLM_DATA_DIR": str(tmp_path / "data"),
    }
    args = [arg for folder in folders for arg in ("--model-path", str(folder))]
    import base64

    image = "data:image/png;base64," + base64.b64encode(image_bytes(text_image(["TOTAL 12.50"]))).decode()
    with running_server(args, env=env, timeout_s=300) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)
        served = {model.id for model in client.models.list()}
        for folder in folders:
            assert folder.name in served
            reply = client.chat.completions.create(
                model=folder.name,
                max_tokens=3,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": image}},
                            {"type": "text", "text": "Extract the text"},
                        ],
                    }
                ],
            )
            assert reply.choices[0].message.content.strip(), folder.name
            assert reply.usage.completion_tokens == 3
