"""The routes in-process (no model is loaded): the API key on every route but /health, the docs, /stats.

The chat itself, through a real `chatvlmllm serve`, is in test_app.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from chatvlmllm.server import create_app

KEY = "secret-key-1"
PROTECTED = ("/docs", "/openapi.json", "/stats", "/v1/models", "/v1/models/any")


def with_key(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed() -> TestClient:
    return TestClient(create_app([], api_key=KEY))


def test_health_says_ok_and_nothing_else(keyed):
    for headers in ({}, with_key()):
        response = keyed.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}  # no models, no counters, key or not


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("headers", [{}, with_key("wrong"), {"Authorization": KEY}], ids=["none", "wrong", "no-bearer"])
def test_every_other_route_needs_the_key(keyed, path, headers):
    response = keyed.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_chat_completions_needs_the_key_before_its_body_is_checked(keyed):
    response = keyed.post("/v1/chat/completions", json={"model": "any"})  # no messages: a 400 with the key
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_with_the_key_the_docs_describe_the_api(keyed):
    schema = keyed.get("/openapi.json", headers=with_key()).json()
    assert {"/v1/models", "/v1/chat/completions", "/health"} <= set(schema["paths"])
    assert not {"/docs", "/openapi.json"} & set(schema["paths"])  # the docs do not document themselves
    page = keyed.get("/docs", headers=with_key())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The schema is in the page: Swagger UI's own fetch of /openapi.json could not send the key.
    assert '"spec":' in page.text and "/v1/chat/completions" in page.text


def test_without_a_key_the_docs_are_open():
    client = TestClient(create_app([]))
    assert client.get("/openapi.json").json()["info"]["title"] == "chatvlmllm"
    assert client.get("/docs").status_code == 200
    assert client.get("/v1/models").json() == {"object": "list", "data": []}


def test_stats_counts_per_model_behind_the_key(keyed):
    assert keyed.get("/stats", headers=with_key()).json() == {"pending": 0, "models": {}}


def test_two_apps_keep_their_own_state():
    """The routers are module-level and shared: each app's key and models come from its own app.state."""
    first, second = TestClient(create_app([], api_key="first")), TestClient(create_app([], api_key="second"))
    assert first.get("/v1/models", headers=with_key("first")).status_code == 200
    assert first.get("/v1/models", headers=with_key("second")).status_code == 401
    assert second.get("/v1/models", headers=with_key("second")).status_code == 200
    assert second.get("/v1/models", headers=with_key("first")).status_code == 401


def test_unknown_routes_and_methods_are_openai_style_errors(keyed):
    missing = keyed.get("/v2/anything", headers=with_key())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = keyed.get("/v1/chat/completions", headers=with_key())
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "http_error"
