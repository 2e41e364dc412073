"""The `openai` engine: against a real `chatvlmllm serve` (tiny checkpoint) and, for the error
paths, against a small local HTTP server that answers 400/401/500, stalls or breaks mid-stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from PIL import Image

from chatvlmllm.chat.router import answer
from chatvlmllm.cli import main as cli_main
from chatvlmllm.devtools.servers import free_port, running_server
from chatvlmllm.documents.layout import to_model_coordinates
from chatvlmllm.engines import GenerationSettings, Message, create_engine
from chatvlmllm.engines._dots_prompts import DOTS_MAX_NEW_TOKENS, DOTS_PROMPTS
from chatvlmllm.engines.base import fit_to_budget
from chatvlmllm.engines.openai_backend import (
    DOTS_IMAGE_PREFIX,
    PromptTooLongError,
    RemoteInternalError,
    RemoteRequestError,
    ServerTimeoutError,
    ServerUnavailableError,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
from tests.helpers import text_image, write_models_file

API_KEY = "backend-test-key"
KEY_ENV = "CHATVLMLLM_TEST_SERVER_KEY"
ASK_FLAGS = ("--model", "remote_tiny", "--json", "--no-fallback", "--max-new-tokens", "8")
PAGE = text_image(["INVOICE 2026-11", "TOTAL 12.50"], size=(448, 224))


# -- a real server over the tiny checkpoint -----------------------------------------------------
@pytest.fixture(scope="module")
def server(tiny_qwen2_vl, tmp_path_factory) -> str:
    config = tmp_path_factory.mktemp("backend_serve_config")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CHATVLMLLM_MODELS_FILE": str(config / "models.toml"),
        "CHATVLMLLM_DATA_DIR": str(config / "data"),
    }
    with running_server(["--model-path", str(tiny_qwen2_vl), "--api-key", API_KEY], env=env) as base_url:
        yield base_url


@pytest.fixture
def models_file() -> Path:
    return Path(os.environ["CHATVLMLLM_MODELS_FILE"])  # the per-test file conftest points at


@pytest.fixture
def remote_tiny(server, tiny_qwen2_vl, models_file, monkeypatch):
    """A catalog entry, written the way users write it, pointing at the real server."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    entries = {
        "remote_tiny": {
            "backend": "openai",
            "base_url": server,
            "served_model": tiny_qwen2_vl.name,
            "api_key_env": KEY_ENV,
        },
        "local_tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)},
    }
    write_models_file(models_file, entries)
    return load_catalog()


def loaded_engine(spec):
    plan = plan_load(probe(), spec)
    engine = create_engine(spec)
    engine.load(plan)
    return engine


@pytest.mark.slow
def test_catalog_entry_plans_as_a_remote_model(remote_tiny):
    spec = remote_tiny["remote_tiny"]
    plan = plan_load(probe(), spec)
    assert spec.family == "openai" and plan.runnable
    assert (plan.device, plan.attention, plan.dtype) == ("remote", "n/a", "n/a")


@pytest.mark.slow
def test_ask_json_goes_through_the_openai_engine(remote_tiny, tmp_path):
    page = tmp_path / "page.png"
    PAGE.save(page)
    result = subprocess.run(
        [sys.executable, "-m", "chatvlmllm", "ask", str(page), "What is the total?", *ASK_FLAGS],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["model"] == "remote_tiny"
    assert (record["device"], record["attention"]) == ("remote", "n/a")
    assert [a["outcome"] for a in record["attempts"]] == ["answered"]
    assert 1 <= record["new_tokens"] <= 8 and record["prompt_tokens"] > 0  # from the server's usage
    assert record["ttft_s"] <= record["total_s"]
    assert record["extras"]["served_model"] == remote_tiny["remote_tiny"].served_model
    assert record["extras"]["image_sizes"] == [list(PAGE.size)]


@pytest.mark.slow
def test_streamed_answer_equals_the_servers_own_answer(remote_tiny, server, tiny_qwen2_vl):
    engine = loaded_engine(remote_tiny["remote_tiny"])
    stream = engine.stream([Message("user", "What is the total?", [PAGE])], GenerationSettings(max_new_tokens=10))
    chunks = list(stream)
    assert chunks and stream.text == "".join(chunks)
    metrics = stream.metrics
    assert metrics.device == "remote" and metrics.model == "remote_tiny"
    assert 1 <= metrics.new_tokens <= 10 and metrics.prompt_tokens > 0
    assert metrics.ttft_s <= metrics.total_s
    # Greedy on both sides and the same pixels: the official client gets the same answer.
    direct = openai.OpenAI(base_url=server, api_key=API_KEY).chat.completions.create(
        model=tiny_qwen2_vl.name,
        messages=engine.build_request([Message("user", "What is the total?", [PAGE])], GenerationSettings())[0],
        max_tokens=10,
        temperature=0,
    )
    assert direct.choices[0].message.content == stream.text
    assert direct.usage.completion_tokens == metrics.new_tokens


@pytest.mark.slow
def test_the_whole_history_is_sent(remote_tiny):
    engine = loaded_engine(remote_tiny["remote_tiny"])
    settings = GenerationSettings(max_new_tokens=2)
    first = [Message("user", "What is the total?", [PAGE])]
    single = engine.stream(first, settings)
    single.consume()
    history = [*first, Message("assistant", single.text), Message("user", "And the invoice date, please?")]
    follow_up = engine.stream(history, settings)
    follow_up.consume()
    assert follow_up.metrics.prompt_tokens > single.metrics.prompt_tokens + 8


@pytest.mark.slow
def test_images_are_sent_within_the_pixel_budget(remote_tiny):
    """Qwen2-VL: one token per 28×28 pixels, so 224² costs 64 tokens and 112² costs 16."""
    engine = loaded_engine(remote_tiny["remote_tiny"])
    square = Image.new("RGB", (448, 448), "white")
    tokens = {}
    for side in (224, 112):
        stream = engine.stream(
            [Message("user", "?", [square])], GenerationSettings(max_new_tokens=1, max_pixels=side * side)
        )
        stream.consume()
        assert stream.extras["image_sizes"] == [[side, side]]
        tokens[side] = stream.metrics.prompt_tokens
    assert tokens[224] - tokens[112] == 64 - 16


def dots_entry(models_file: Path, base_url: str = "http://127.0.0.1:9/v1", served: str = "dots", **extra):
    entry = {"backend": "openai", "base_url": base_url, "served_model": served, "prompt_style": "dots_ocr", **extra}
    write_models_file(models_file, {"dots_vllm": entry})
    return load_catalog()["dots_vllm"]


def test_dots_ocr_style_sends_one_page_with_its_prompt_and_image_prefix(models_file):
    engine = create_engine(dots_entry(models_file, prompt_mode="prompt_layout_all_en"))
    page = Image.new("RGB", (1000, 1400), "white")
    history = [
        Message("user", "What is this?", [page]),
        Message("assistant", "A blank page."),
        Message("user", "whatever the user typed"),
    ]
    chat, sent, max_tokens = engine.build_request(history, GenerationSettings())
    assert len(chat) == 1 and chat[0]["role"] == "user"  # one page, no history: dots.ocr's client convention
    image_part, text_part = chat[0]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert text_part["text"] == DOTS_IMAGE_PREFIX + DOTS_PROMPTS["prompt_layout_all_en"]
    assert sent["prompt_mode"] == "prompt_layout_all_en" and sent["original_size"] == [1000, 1400]
    assert max_tokens == DOTS_MAX_NEW_TOKENS  # no user limit: a layout transcription gets dots.ocr's long budget
    assert engine.build_request(history, GenerationSettings(max_new_tokens=100))[2] == 100  # the user's limit wins


def test_dots_ocr_style_resizes_like_its_client_and_maps_grounding_boxes(models_file):
    engine = create_engine(dots_entry(models_file))
    page = Image.new("RGB", (1000, 1400), "white")
    grounding = {"prompt_mode": "prompt_grounding_ocr", "bbox": [100, 200, 300, 400]}
    chat, sent, _ = engine.build_request(
        [Message("user", "", [page])], GenerationSettings(max_pixels=500_000, options=grounding)
    )
    width, height = sent["input_size"]
    assert width % 28 == 0 and height % 28 == 0 and width * height <= 500_000
    box = to_model_coordinates([100, 200, 300, 400], (1000, 1400), (width, height))
    assert chat[0]["content"][1]["text"] == DOTS_IMAGE_PREFIX + DOTS_PROMPTS["prompt_grounding_ocr"] + str(box)

    question, _, max_tokens = engine.build_request(
        [Message("user", "What is the total?", [page])], GenerationSettings()
    )
    assert question[0]["content"][1]["text"] == DOTS_IMAGE_PREFIX + "What is the total?"  # a free question
    assert max_tokens == GenerationSettings().budget()


@pytest.mark.slow
def test_dots_ocr_style_through_a_server_returns_layout_extras(server, tiny_qwen2_vl, models_file, monkeypatch):
    """The tiny model's text is random: assert the layout record's structure, not its elements."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    spec = dots_entry(models_file, server, tiny_qwen2_vl.name, api_key_env=KEY_ENV, max_pixels=200_704)
    engine = loaded_engine(spec)
    settings = GenerationSettings(options={"prompt_mode": "prompt_layout_all_en", "max_new_tokens": 16})
    stream = engine.stream([Message("user", "", [PAGE])], settings)
    stream.consume()
    layout = stream.extras["layout"]
    assert layout["prompt_mode"] == "prompt_layout_all_en"
    assert layout["image_size"] == list(PAGE.size) and layout["input_size"] == stream.extras["input_size"]
    assert isinstance(layout["elements"], list) and stream.metrics.new_tokens <= 16


def test_fit_to_budget_keeps_the_aspect_ratio_and_never_upscales():
    wide = Image.new("RGB", (4000, 1000))
    fitted = fit_to_budget(wide, 1_000_000)
    assert fitted.width * fitted.height <= 1_000_000 and abs(fitted.width / fitted.height - 4.0) < 0.01
    small = Image.new("RGB", (300, 200))
    assert fit_to_budget(small, 1_000_000) is small


@pytest.mark.slow
def test_fallback_continues_to_a_local_model_when_the_server_is_down(
    models_file, tiny_qwen2_vl, tmp_path, monkeypatch, capsys
):
    write_models_file(
        models_file,
        {
            "remote_dead": {"backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "served_model": "m"},
            "local_tiny": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)},
        },
    )
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "local_tiny")
    page = tmp_path / "page.png"
    PAGE.save(page)
    code = cli_main(
        ["ask", str(page), "What is the total?", "--model", "remote_dead", "--json", "--max-new-tokens", "4"]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "local_tiny"
    first = record["attempts"][0]
    assert (first["model"], first["outcome"]) == ("remote_dead", "load_failed")
    assert "cannot reach the server" in first["reason"] and "Is it running?" in first["reason"]


@pytest.mark.slow
def test_a_model_the_server_does_not_serve_fails_at_load(server, models_file, monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    entry = {"backend": "openai", "base_url": server, "served_model": "not-there", "api_key_env": KEY_ENV}
    write_models_file(models_file, {"wrong_name": entry})
    with pytest.raises(RemoteRequestError, match="does not serve 'not-there'"):
        loaded_engine(load_catalog()["wrong_name"])


@pytest.mark.slow
def test_a_named_but_unset_api_key_variable_is_reported(server, models_file, monkeypatch):
    monkeypatch.delenv("CHATVLMLLM_UNSET_KEY", raising=False)
    entry = {"backend": "openai", "base_url": server, "served_model": "m", "api_key_env": "CHATVLMLLM_UNSET_KEY"}
    write_models_file(models_file, {"keyless": entry})
    with pytest.raises(EngineError, match=r"\$CHATVLMLLM_UNSET_KEY"):
        loaded_engine(load_catalog()["keyless"])


# -- error paths against a small local HTTP server ---------------------------------------------------
TOO_LONG = (
    "This model's maximum context length is 4096 tokens. However, you requested 9210 tokens "
    "(8186 in the messages, 1024 in the completion). Please reduce the length of the messages or completion."
)
FAKE_MODELS = ("too-long", "bad-request", "crash", "slow", "breaks-mid-stream", "locked", "rendezvous")


class FakeServer(BaseHTTPRequestHandler):
    """Answers like an OpenAI-compatible server having a bad day, chosen by the requested model."""

    rendezvous = threading.Barrier(2)  # "rendezvous" answers only once two requests are in flight
    release_slow = threading.Event()
    slow_answered = threading.Event()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"} for name in FAKE_MODELS]
            self.reply(200, {"object": "list", "data": data})
        else:
            self.reply(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        if model == "too-long":
            self.reply(400, {"error": {"message": TOO_LONG, "type": "BadRequestError", "param": None, "code": 400}})
        elif model == "bad-request":
            self.reply(400, {"error": {"message": "top_p must be in (0, 1]", "type": "BadRequestError", "code": 400}})
        elif model == "crash":
            self.reply(
                500, {"error": {"message": "CUDA error: an illegal memory access", "type": "InternalServerError"}}
            )
        elif model == "locked":
            self.reply(401, {"error": {"message": "Unauthorized", "type": "AuthenticationError", "code": 401}})
        elif model == "slow":  # answers only when the test releases it (or after a minute)
            self.release_slow.wait(timeout=60)
            self.slow_answered.set()
            self.reply(200, {})
        elif model == "rendezvous":
            try:
                self.rendezvous.wait(timeout=5)
            except threading.BrokenBarrierError:
                self.reply(500, {"error": {"message": "the other request never came", "type": "ServerError"}})
                return
            self.stream_chunks(model, [{"delta": {"content": "ok"}, "finish_reason": "stop"}])
        elif model == "breaks-mid-stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": model}
            chunk["choices"] = [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            error = {
                "error": {"message": "engine dead: EngineCore encountered an issue", "type": "InternalServerError"}
            }
            self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
            self.wfile.flush()

    def stream_chunks(self, model: str, choices: list[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for choice in choices:
            chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": model}
            chunk["choices"] = [{"index": 0, **choice}]
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass


@pytest.fixture(scope="module")
def fake_server() -> str:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def fake_entry(models_file: Path, base_url: str, served: str, **extra):
    write_models_file(
        models_file, {"flaky": {"backend": "openai", "base_url": base_url, "served_model": served, **extra}}
    )
    return load_catalog()["flaky"]


def ask_once(spec) -> str:
    engine = loaded_engine(spec)
    stream = engine.stream([Message("user", "What is the total?", [PAGE])], GenerationSettings(max_new_tokens=8))
    return stream.consume()


def test_connection_refused_says_the_server_is_down(models_file):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerUnavailableError) as caught:
        ask_once(fake_entry(models_file, url, "m"))
    assert url in str(caught.value) and "Is it running?" in str(caught.value)


def test_prompt_longer_than_the_served_max_length_suggests_a_smaller_pixel_budget(models_file, fake_server):
    with pytest.raises(PromptTooLongError) as caught:
        ask_once(fake_entry(models_file, fake_server, "too-long"))
    message = str(caught.value)
    assert "maximum model length" in message and "pixel budget" in message and "4096" in message


def test_other_400s_pass_the_servers_reason_on(models_file, fake_server):
    with pytest.raises(RemoteRequestError) as caught:
        ask_once(fake_entry(models_file, fake_server, "bad-request"))
    assert not isinstance(caught.value, PromptTooLongError)
    assert "HTTP 400" in str(caught.value) and "top_p must be in (0, 1]" in str(caught.value)


def test_server_errors_are_reported_with_status_and_reason(models_file, fake_server):
    with pytest.raises(RemoteInternalError) as caught:
        ask_once(fake_entry(models_file, fake_server, "crash"))
    assert "HTTP 500" in str(caught.value) and "illegal memory access" in str(caught.value)


def test_refused_api_key_names_the_variable(models_file, fake_server):
    with pytest.raises(RemoteRequestError, match=r"refused the API key.*\$OPENAI_API_KEY"):
        ask_once(fake_entry(models_file, fake_server, "locked"))


def test_a_server_that_does_not_answer_in_time_times_out(models_file, fake_server):
    FakeServer.release_slow.clear()
    FakeServer.slow_answered.clear()
    try:
        with pytest.raises(ServerTimeoutError, match=r"did not answer within 0\.5 s"):
            ask_once(fake_entry(models_file, fake_server, "slow", timeout_s=0.5))
        assert not FakeServer.slow_answered.is_set()  # gave up before the answer, did not wait for it
    finally:
        FakeServer.release_slow.set()


def test_an_error_in_the_middle_of_the_stream_is_reported(models_file, fake_server):
    engine = loaded_engine(fake_entry(models_file, fake_server, "breaks-mid-stream"))
    stream = engine.stream([Message("user", "?", [PAGE])], GenerationSettings(max_new_tokens=8))
    received = []
    with pytest.raises(RemoteInternalError, match="engine dead"):
        for chunk in stream:
            received.append(chunk)
    assert received == ["Hel"] and stream.metrics.stopped_by == "error"


def flaky_then_local(models_file: Path, fake_server: str, tiny_folder: Path, served: str) -> dict:
    """A catalog with a failing server entry ("flaky") and a local tiny model ("local_tiny")."""
    write_models_file(
        models_file,
        {
            "flaky": {"backend": "openai", "base_url": fake_server, "served_model": served},
            "local_tiny": {"family": "qwen2_vl", "path": str(tiny_folder)},
        },
    )
    return load_catalog()


def route_flaky_then_local(models_file: Path, fake_server: str, tiny_folder: Path, served: str):
    catalog = flaky_then_local(models_file, fake_server, tiny_folder, served)
    return answer(
        [Message("user", "What is the total?", [PAGE])],
        [catalog["flaky"], catalog["local_tiny"]],
        probe(),
        GenerationSettings(max_new_tokens=4),
    )


def test_every_failure_is_an_engine_error_so_the_router_moves_on(models_file, fake_server, tiny_qwen2_vl):
    routed = route_flaky_then_local(models_file, fake_server, tiny_qwen2_vl, "too-long")
    streams = list(routed)  # the router consumes each stream itself and judges it
    assert routed.model == "local_tiny"
    assert [(a.model, a.outcome) for a in routed.attempts] == [("flaky", "error"), ("local_tiny", "answered")]
    assert "maximum model length" in routed.attempts[0].reason
    assert len(streams) == 2 and streams[0].metrics.stopped_by == "error"


def test_an_error_while_the_caller_displays_the_stream_still_falls_back(models_file, fake_server, tiny_qwen2_vl):
    """The caller reads each stream itself (as the CLI and the app do): an engine error mid-stream must end
    that stream quietly and let the router move on, not escape into the caller's loop."""
    routed = route_flaky_then_local(models_file, fake_server, tiny_qwen2_vl, "breaks-mid-stream")
    shown = [[chunk for chunk in stream] for stream in routed]
    assert shown[0] == ["Hel"] and len(shown) == 2
    assert routed.model == "local_tiny"
    assert [(a.model, a.outcome) for a in routed.attempts] == [("flaky", "error"), ("local_tiny", "answered")]
    assert "engine dead" in routed.attempts[0].reason


@pytest.mark.parametrize("json_output", [True, False])
def test_ask_falls_back_when_the_server_fails_while_answering(
    models_file, fake_server, tiny_qwen2_vl, tmp_path, monkeypatch, capsys, json_output
):
    from chatvlmllm.cli import main

    flaky_then_local(models_file, fake_server, tiny_qwen2_vl, "too-long")
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "local_tiny")
    image = tmp_path / "page.png"
    PAGE.save(image)
    argv = ["ask", str(image), "What is the total?", "--model", "flaky", "--max-new-tokens", "4"]
    assert main([*argv, "--json"] if json_output else argv) == 0
    out, err = capsys.readouterr()
    if json_output:
        result = json.loads(out)
        assert result["model"] == "local_tiny"
        assert [a["outcome"] for a in result["attempts"]] == ["error", "answered"]
    else:
        assert "trying the next model" in err and "local_tiny" in err


def test_one_engine_keeps_several_requests_in_flight(models_file, fake_server):
    """The server batches: the engine must not queue callers (the fake answers only when two are in)."""
    FakeServer.rendezvous.reset()
    engine = loaded_engine(fake_entry(models_file, fake_server, "rendezvous"))
    answers: list[str] = []

    def ask() -> None:
        answers.append(engine.stream([Message("user", "?")], GenerationSettings(max_new_tokens=4)).consume())

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert answers == ["ok", "ok"]
