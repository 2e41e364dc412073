"""The download manager against a fake hub on 127.0.0.1 (HF_ENDPOINT), through huggingface_hub:
progress in bytes of a known total, cancel, resume with a Range request, disk full, gated
repos, an unreachable hub, and a partial download that never counts as ready."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chatvlmllm.cli import main
from chatvlmllm.devtools.fake_hub import FakeHub, serving
from chatvlmllm.models import downloads, weights
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.downloads import Download, DownloadError, DownloadState
from chatvlmllm.models.weights import locate
from tests.helpers import write_models_file

REPO = "tiny/qwen2-vl"


@pytest.fixture
def hub_env(tmp_path, monkeypatch, tiny_qwen2_vl):
    """A fake hub serving the tiny Qwen2-VL folder, an empty HF cache, online mode."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    hub = FakeHub({REPO: tiny_qwen2_vl})
    with serving(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield hub


def spec() -> ModelSpec:
    return ModelSpec(key="tiny_remote", family="qwen2_vl", hub_id=REPO)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def wait_for(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_progress_events_count_every_byte_of_a_known_total(hub_env, tiny_qwen2_vl):
    events = []
    download = Download(spec(), on_progress=events.append)
    path = download.run()
    total = folder_bytes(tiny_qwen2_vl)
    done = download.progress
    assert done.state is DownloadState.DONE
    assert done.total_bytes == total == done.done_bytes
    assert done.files_done == done.files_total == len(list(tiny_qwen2_vl.iterdir()))
    running = [e for e in events if e.state is DownloadState.RUNNING]
    assert running[0].total_bytes == total and running[0].done_bytes == 0
    assert [e.done_bytes for e in running] == sorted(e.done_bytes for e in running)
    assert len({e.done_bytes for e in running}) > len(list(tiny_qwen2_vl.iterdir()))  # byte-level, not per file
    assert folder_bytes(Path(path)) == total
    assert locate(spec()).status == "cached"


def test_cancel_keeps_a_partial_that_is_not_ready_and_resume_skips_the_finished_files(hub_env, tiny_qwen2_vl):
    import threading

    weights_size = (tiny_qwen2_vl / "model.safetensors").stat().st_size
    total = folder_bytes(tiny_qwen2_vl)
    release = hub_env.held["model.safetensors"] = threading.Event()  # the weights stop before their last chunk
    download = Download(spec()).start()
    # Files go smallest first: when the hub holds the weights, every other file is in.
    wait_for(hub_env.holding.is_set, "the hub holding the weights file", timeout_s=120)
    wait_for(lambda: download.progress.files_done == download.progress.files_total - 1, "the small files", 120)
    download.cancel()
    release.set()
    cancelled = download.wait(120)
    assert cancelled.state is DownloadState.CANCELLED
    assert total - weights_size <= cancelled.done_bytes < cancelled.total_bytes == total
    assert cancelled.files_done == cancelled.files_total - 1
    assert locate(spec()).status != "cached"  # a partial download never shows as ready

    del hub_env.held["model.safetensors"]
    before = len(hub_env.requests)
    events = []
    resumed = Download(spec(), on_progress=events.append)
    resumed.run()
    assert resumed.progress.state is DownloadState.DONE and resumed.progress.done_bytes == total
    first_running = next(e for e in events if e.state is DownloadState.RUNNING)
    assert first_running.files_done == cancelled.files_done  # finished files are kept...
    assert first_running.done_bytes == total - weights_size  # ...and count as done at once
    gets = [r for r in hub_env.requests[before:] if r.startswith("GET") and "/resolve/" in r]
    fetched = {r.split("/resolve/main/")[1].split()[0] for r in gets}
    assert fetched == {"model.safetensors"}  # only the unfinished file again
    assert locate(spec()).status == "cached"


def test_files_go_smallest_first_whatever_order_the_hub_lists_them_in(hub_env, tiny_qwen2_vl):
    events = []
    Download(spec(), on_progress=events.append).run()
    sizes = sorted(f.stat().st_size for f in tiny_qwen2_vl.iterdir())
    # When the k-th file is done, exactly the k smallest files' bytes are counted.
    counted: dict[int, int] = {}
    for event in events:
        if event.state is DownloadState.RUNNING:
            counted.setdefault(event.files_done, event.done_bytes)
    assert [counted[k] for k in range(1, len(sizes) + 1)] == [sum(sizes[:k]) for k in range(1, len(sizes) + 1)]


def test_disk_full_is_refused_before_writing_anything(hub_env, monkeypatch, tmp_path):
    monkeypatch.setattr(downloads, "free_bytes", lambda path: 1000)  # a 1 kB quota
    download = Download(spec())
    with pytest.raises(DownloadError, match="not enough disk space"):
        download.run()
    assert download.progress.state is DownloadState.FAILED
    assert not any((tmp_path / "hf-cache").rglob("*.safetensors*"))


def test_a_disk_filling_up_during_the_download_says_so(hub_env, monkeypatch):
    import errno

    from huggingface_hub import file_download

    real_get = file_download.http_get

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_download, "http_get", full_disk)
    with pytest.raises(DownloadError, match="disk is full"):
        Download(spec()).run()
    monkeypatch.setattr(file_download, "http_get", real_get)


def test_a_gated_repo_and_an_unreachable_hub_get_clear_messages(hub_env):
    hub_env.gated.add(REPO)
    with pytest.raises(DownloadError, match="gated: accept its licence"):
        Download(spec()).run()
    hub_env.gated.clear()
    hub_env.unreachable = True
    with pytest.raises(DownloadError, match="answered 503"):
        Download(spec()).run()


def test_an_unreachable_endpoint_is_detected_through_the_hub_client(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    assert "unreachable" in (weights.hub_problem(timeout_s=2) or "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.hub_problem() == "HF_HUB_OFFLINE is set"


def test_pull_and_models_commands(hub_env, tmp_path, monkeypatch, capsys, tiny_qwen2_vl):
    import json

    models = write_models_file(tmp_path / "models.toml", {"tiny_remote": {"family": "qwen2_vl", "hub_id": REPO}})
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(models))
    assert main(["models", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["models"] if r["key"] == "tiny_remote")
    assert row["status"] == "not downloaded" and row["size_on_disk_bytes"] == 0
    assert main(["pull", "tiny_remote"]) == 0
    captured = capsys.readouterr()
    assert "tiny_remote:" in captured.out
    assert main(["models", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["models"] if r["key"] == "tiny_remote")
    assert row["status"] == "ready" and row["size_on_disk_bytes"] == folder_bytes(tiny_qwen2_vl)


@pytest.mark.slow
def test_the_chat_page_asks_before_downloading_a_chosen_model(hub_env, tmp_path, monkeypatch):
    """Picking a model without weights never downloads inside an answer: the page offers the
    download with its size, and only the click starts it (the Models page shows the progress)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from chatvlmllm.chat.engine_cache import default_cache

    entry = {"tiny_remote": {"family": "qwen2_vl", "hub_id": REPO, "weights_gb": 0.001}}
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", entry)))
    monkeypatch.setenv("CHATVLMLLM_DATA_DIR", str(tmp_path / "data"))
    st.cache_resource.clear()
    default_cache().unload()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=90).run()
    at.sidebar.selectbox(key="model").set_value("tiny_remote").run()
    assert not at.exception
    assert any("not downloaded yet" in info.value for info in at.main.info)
    assert downloads.manager().get("tiny_remote") is None  # nothing started by choosing it
    offer = at.button(key="offer_download_tiny_remote")
    assert offer.label == "Download tiny/qwen2-vl, 1 MB?"  # i18n.format_size: one decimal at most
    offer.click().run()
    started = downloads.manager().get("tiny_remote")
    assert started is not None
    assert started.wait(60).state is DownloadState.DONE
    assert locate(spec()).path is not None  # the weights are in the cache: the model is ready now
    st.cache_resource.clear()
