"""Logs: CHATVLMLLM_LOG_LEVEL sets the level, the router logs every attempt, the server keeps tracebacks.

The CLI and the server are driven through their public entry points; the one injected fault
(a model whose forward pass raises, standing for a crashed kernel) is named where it is made.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

import pytest

from chatvlmllm.cli import main
from tests.helpers import image_bytes, text_image, write_models_file


@pytest.fixture(autouse=True)
def restore_log_level():
    """The CLI sets the `chatvlmllm` logger's level; later tests get it back as it was."""
    logger = logging.getLogger("chatvlmllm")
    level = logger.level
    yield
    logger.setLevel(level)


def ask_with_a_broken_first_model(capsys, page_png_path: Path, tmp_path: Path, monkeypatch) -> tuple[int, str, str]:
    """`chatvlmllm ask` with a first model whose folder holds no model, so rapidocr answers."""
    write_models_file(
        Path(os.environ["CHATVLMLLM_MODELS_FILE"]), {"no_model_here": {"family": "qwen2_vl", "path": str(tmp_path)}}
    )
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "rapidocr")
    code = main(["ask", str(page_png_path), "Extract all text", "--model", "no_model_here", "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_is_quiet_by_default(capsys, page_png_path, tmp_path, monkeypatch):
    monkeypatch.delenv("CHATVLMLLM_LOG_LEVEL", raising=False)
    code, out, err = ask_with_a_broken_first_model(capsys, page_png_path, tmp_path, monkeypatch)
    assert code == 0 and json.loads(out)["model"] == "rapidocr"
    assert "attempt" not in err  # attempts are INFO: below the CLI's default WARNING


def test_every_fallback_attempt_is_logged_at_the_level_the_variable_sets(capsys, page_png_path, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_LOG_LEVEL", "info")
    code, out, err = ask_with_a_broken_first_model(capsys, page_png_path, tmp_path, monkeypatch)
    assert code == 0
    attempts = json.loads(out)["attempts"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [
        ("no_model_here", "skipped"),
        ("rapidocr", "answered"),
    ]
    lines = [line for line in err.splitlines() if "chatvlmllm.chat.router" in line]
    assert len(lines) == 2
    for line, attempt in zip(lines, attempts, strict=True):
        assert " INFO chatvlmllm.chat.router: attempt " in line
        assert f"{attempt['model']}: {attempt['outcome']} after " in line and " s" in line
    assert "no config.json" in lines[0]  # the reason travels with a failed attempt


def test_an_unknown_level_name_keeps_the_default(monkeypatch):
    from chatvlmllm import logs

    monkeypatch.setenv("CHATVLMLLM_LOG_LEVEL", "chatty")
    assert logs.configure(logging.WARNING) == logging.WARNING
    monkeypatch.setenv("CHATVLMLLM_LOG_LEVEL", "DEBUG")
    assert logs.configure(logging.WARNING) == logging.DEBUG
    assert logging.getLogger("chatvlmllm.anything").isEnabledFor(logging.DEBUG)


def test_the_server_logs_the_traceback_of_a_failed_generation(tiny_qwen2_vl, caplog):
    from fastapi.testclient import TestClient

    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.models.catalog import spec_from_path
    from chatvlmllm.server import create_app, plan_models

    served = plan_models([spec_from_path(tiny_qwen2_vl)])
    cache = EngineCache()
    engine = cache.get(served[0].spec, served[0].plan)

    def crashed_kernel(module, args):  # INJECTED FAULT: the real model's forward pass raises
        raise RuntimeError("simulated kernel crash")

    fault = engine.model.register_forward_pre_hook(crashed_kernel)
    page = "data:image/png;base64," + base64.b64encode(image_bytes(text_image(["TOTAL 12.50"]))).decode()
    body = {
        "model": served[0].id,
        "max_tokens": 4,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": page}}],
            }
        ],
    }
    caplog.set_level(logging.ERROR, logger="chatvlmllm.server")
    try:
        with TestClient(create_app(served, cache=cache)) as client:
            response = client.post("/v1/chat/completions", json=body)
    finally:
        fault.remove()
        cache.unload()
    assert response.status_code == 500
    assert "simulated kernel crash" in response.json()["error"]["message"]  # the client gets one line
    (record,) = [r for r in caplog.records if r.name.startswith("chatvlmllm.server")]
    assert record.levelno == logging.ERROR and served[0].id in record.getMessage()
    assert record.exc_info is not None
    traceback = caplog.text
    assert "Traceback" in traceback and "RuntimeError: simulated kernel crash" in traceback
    assert "crashed_kernel" in traceback  # the frame where it happened, not just the message
