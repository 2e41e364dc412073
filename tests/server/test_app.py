"""`chatvlmllm serve` as a real subprocess on 127.0.0.1, driven by the official `openai` client.

One server per module serves two tiny real checkpoints: the random tiny Qwen2-VL, and one
whose weights make it repeat " the" forever (an answer that never ends on its own).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from PIL import Image

from chatvlmllm.devtools.servers import running_server
from tests.helpers import image_bytes, text_image

pytestmark = pytest.mark.slow  # real servers and subprocesses: minutes in all

API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def the_looping_qwen2_vl(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl, force_constant_token

    folder = build_tiny_qwen2_vl(tmp_path_factory.mktemp("the_looping_qwen2_vl"))
    (token_id,) = AutoTokenizer.from_pretrained(str(folder)).encode(" the")
    return force_constant_token(folder, token_id)


@pytest.fixture(scope="module")
def server(tiny_qwen2_vl, the_looping_qwen2_vl, tmp_path_factory):
    config = tmp_path_factory.mktemp("serve_config")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CHATVLMLLM_MODELS_FILE": str(config / "models.toml"),
        "CHATVLMLLM_DATA_DIR": str(config / "data"),
    }
    folders = (tiny_qwen2_vl, the_looping_qwen2_vl)
    args = [arg for folder in folders for arg in ("--model-path", str(folder))] + ["--api-key", API_KEY]
    with running_server(args, env=env) as base_url:
        yield base_url


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server, api_key=API_KEY, max_retries=0, timeout=60)


def data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(image_bytes(image)).decode()


def image_question(image: Image.Image, question: str = "What is the total?") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(image)}},
                {"type": "text", "text": question},
            ],
        }
    ]


def http(url: str, body: bytes | None = None, key: str | None = API_KEY, timeout: float = 10) -> tuple[int, dict]:
    """A plain HTTP request (no OpenAI client): (status, JSON body)."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def stats(server: str) -> dict:
    """The server's counters (/stats, behind the API key)."""
    return http(server.removesuffix("/v1") + "/stats")[1]


def wait_for(condition, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


PAGE = text_image(["INVOICE 2026-11", "TOTAL 12.50"], size=(448, 224))


def test_lists_the_served_models(client, tiny_qwen2_vl, the_looping_qwen2_vl):
    ids = {model.id for model in client.models.list()}
    assert ids == {tiny_qwen2_vl.name, the_looping_qwen2_vl.name}
    assert client.models.retrieve(tiny_qwen2_vl.name).id == tiny_qwen2_vl.name


def test_streamed_image_answer_matches_the_non_streamed_one(client, tiny_qwen2_vl):
    messages = image_question(PAGE)
    stream = client.chat.completions.create(
        model=tiny_qwen2_vl.name, messages=messages, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert content, "no text was streamed"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert 1 <= usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    whole = client.chat.completions.create(model=tiny_qwen2_vl.name, messages=messages, max_tokens=12)
    # Greedy decoding of the same input: the streamed pieces add up to the same answer.
    assert "".join(content) == whole.choices[0].message.content
    assert whole.usage.prompt_tokens == usage.prompt_tokens
    assert whole.model == tiny_qwen2_vl.name and whole.object == "chat.completion"


def test_image_tokens_follow_the_image_size(client, tiny_qwen2_vl):
    """Qwen2-VL merges 28×28 pixels into one token: 224² → 64 tokens, 56² → 4."""
    big, small = (
        client.chat.completions.create(
            model=tiny_qwen2_vl.name, messages=image_question(Image.new("RGB", (side, side), "white")), max_tokens=1
        )
        for side in (224, 56)
    )
    assert big.usage.prompt_tokens - small.usage.prompt_tokens == 64 - 4
    assert big.model_extra["metrics"]["image_tokens"] == 64
    assert big.model_extra["metrics"]["device"] == "cpu"


def test_multi_turn_history_reaches_the_model(client, tiny_qwen2_vl):
    first = image_question(PAGE)
    single = client.chat.completions.create(model=tiny_qwen2_vl.name, messages=first, max_tokens=4)
    history = [
        {"role": "system", "content": "You read invoices."},
        *first,
        {"role": "assistant", "content": single.choices[0].message.content},
        {"role": "user", "content": "And the date?"},
    ]
    follow_up = client.chat.completions.create(model=tiny_qwen2_vl.name, messages=history, max_tokens=4)
    assert follow_up.choices[0].message.role == "assistant"
    assert follow_up.usage.prompt_tokens > single.usage.prompt_tokens + 10


def test_two_concurrent_clients_both_get_answers(server, client, tiny_qwen2_vl):
    before = stats(server)["models"][tiny_qwen2_vl.name]
    results: dict[int, list] = {}

    def ask(index: int) -> None:
        own_client = openai.OpenAI(base_url=server, api_key=API_KEY, max_retries=0, timeout=60)
        stream = own_client.chat.completions.create(
            model=tiny_qwen2_vl.name,
            messages=image_question(PAGE, f"Question {index}?"),
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        results[index] = list(stream)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [0, 1]
    for chunks in results.values():
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    after = stats(server)["models"][tiny_qwen2_vl.name]
    assert after["requests"] - before["requests"] == 2
    assert after["completed"] - before["completed"] == 2
    assert after["active"] == 0 and after["loaded"]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "missing_image_data"),
        ("data:image/png;base64,", "missing_image_data"),
        ("data:image/png;base64,@@not*base64@@", "invalid_base64"),
        ("data:image/png;base64," + base64.b64encode(b"not an image at all").decode(), "invalid_image"),
        ("https://example.com/page.png", "unsupported_image_url"),
    ],
)
def test_bad_image_data_is_a_400_and_the_server_stays_up(client, tiny_qwen2_vl, url, code):
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]}
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=tiny_qwen2_vl.name, messages=messages)
    assert caught.value.status_code == 400
    assert caught.value.code == code and "image 1" in caught.value.message
    answer = client.chat.completions.create(model=tiny_qwen2_vl.name, messages=image_question(PAGE), max_tokens=2)
    assert answer.choices[0].message.role == "assistant"


def test_a_pdf_over_the_page_limit_is_refused_before_its_pages_are_rendered(monkeypatch):
    """A 60 kB PDF can hold 500 pages: count them first, render none beyond the first."""
    import io

    import pypdfium2 as pdfium

    from chatvlmllm.documents.loading import Document
    from chatvlmllm.server import MAX_IMAGES_PER_REQUEST, ApiError, decode_image_url

    pdf = pdfium.PdfDocument.new()
    for _ in range(MAX_IMAGES_PER_REQUEST + 20):
        pdf.new_page(300, 300)
    buffer = io.BytesIO()
    pdf.save(buffer)
    rendered = []
    original_page = Document.page
    monkeypatch.setattr(Document, "page", lambda self, i: rendered.append(i) or original_page(self, i))
    url = "data:application/pdf;base64," + base64.b64encode(buffer.getvalue()).decode()
    with pytest.raises(ApiError) as caught:
        decode_image_url(url, 1)
    assert caught.value.code == "too_many_images" and str(MAX_IMAGES_PER_REQUEST + 20) in str(caught.value)
    assert rendered == [0]  # only the first page, which load_document decodes to validate the file


def test_unknown_model_is_a_404_naming_the_served_ones(client, tiny_qwen2_vl):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no_such_model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    assert tiny_qwen2_vl.name in caught.value.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}', "input_audio"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
    ],
)
def test_malformed_requests_get_openai_style_400s(server, body, expected):
    status, answer = http(f"{server}/chat/completions", body)
    assert status == 400
    error = answer["error"]
    assert set(error) == {"message", "type", "code"} and expected in error["message"]


def test_api_key_is_required(server, tiny_qwen2_vl):
    wrong = openai.OpenAI(base_url=server, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model=tiny_qwen2_vl.name, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "invalid_api_key"
    assert http(f"{server}/models", key=None)[0] == 401


def test_only_health_answers_without_the_key(server):
    root = server.removesuffix("/v1")
    assert http(f"{root}/health", key=None) == (200, {"status": "ok"})  # no models, no counters
    for path in ("/docs", "/openapi.json", "/stats"):
        status, answer = http(f"{root}{path}", key=None)
        assert (status, answer["error"]["code"]) == (401, "invalid_api_key"), path
    status, schema = http(f"{root}/openapi.json")
    assert status == 200 and "/v1/chat/completions" in schema["paths"]


def start_endless_stream(client, model: str):
    """A streamed answer that would run for minutes: " the" repeated, the repetition guard off."""
    return client.chat.completions.create(
        model=model,
        messages=image_question(PAGE),
        max_tokens=3500,
        stream=True,
        extra_body={"repetition_guard": False},
    )


def test_client_disconnect_mid_stream_cancels_the_generation(server, client, the_looping_qwen2_vl):
    model = the_looping_qwen2_vl.name
    before = stats(server)["models"][model]
    stream = start_endless_stream(client, model)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
        if len("".join(received).split()) >= 3:  # chunk boundaries are the streamer's: count words
            break
    stream.close()
    words = "".join(received).split()
    assert len(words) >= 3 and set(words) == {"the"}
    assert wait_for(lambda: stats(server)["models"][model]["cancelled"] == before["cancelled"] + 1)
    assert stats(server)["models"][model]["active"] == 0


def test_client_that_gives_up_while_queued_is_cancelled_too(server, client, the_looping_qwen2_vl):
    """A second request waits for the engine lock; its client leaves before the first token."""
    model = the_looping_qwen2_vl.name
    before = stats(server)["models"][model]
    running = start_endless_stream(client, model)
    next(iter(running))  # the first answer now holds the engine
    body = {
        "model": model,
        "messages": image_question(PAGE),
        "max_tokens": 3500,
        "stream": True,
        "repetition_guard": False,
    }
    with pytest.raises(TimeoutError):  # no answer yet: the client gives up and closes the connection
        http(f"{server}/chat/completions", json.dumps(body).encode(), timeout=1.0)
    assert stats(server)["models"][model]["active"] == before["active"] + 2  # still queued behind the first
    running.close()
    # Both stop: the queued one gets the engine, sees it was cancelled and ends at its first token.
    assert wait_for(lambda: stats(server)["models"][model]["cancelled"] == before["cancelled"] + 2)
    after = stats(server)["models"][model]
    assert after["active"] == 0 and after["completed"] == before["completed"]
