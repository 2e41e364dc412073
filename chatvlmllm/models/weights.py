"""Where a model's weights are: a local folder, the Hugging Face cache, or the hub.

Missing weights with no reachable hub fail at once with the command to fetch them,
instead of huggingface_hub's retry loop (about 25 s before it gives up).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from chatvlmllm.errors import WeightsMissingError
from chatvlmllm.i18n import Message, _, lazy_message
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.settings import hub_offline, settings


@dataclass(frozen=True)
class WeightsLocation:
    status: str  # local | cached | downloadable | missing | bundled | remote
    path: str | None
    message: str | Message  # read where it is shown: str() in the interface language

    @property
    def available(self) -> bool:
        return self.status in ("local", "cached", "bundled", "remote")


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """A quick check through huggingface_hub's own HTTP client (HF_ENDPOINT, proxies), instead of
    its long retries; remembered per endpoint for the process."""
    if hub_offline():
        return False
    return _endpoint_reachable(settings().hub_endpoint, timeout_s)


@functools.lru_cache(maxsize=8)
def _endpoint_reachable(endpoint: str, timeout_s: float) -> bool:
    return hub_problem(timeout_s) is None


def endpoint() -> str:
    return settings().hub_endpoint


def hub_problem(timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be reached right now, or None. Uses huggingface_hub's own HTTP client,
    so `HF_ENDPOINT`, proxies and certificates are the ones downloads will use."""
    if hub_offline():
        return _("HF_HUB_OFFLINE is set")
    from huggingface_hub.utils import get_session

    url = endpoint()
    try:
        response = get_session().head(f"{url}/api/models", timeout=timeout_s, follow_redirects=True)
    except Exception as exc:  # the client's connect/timeout/proxy errors
        # The exception's name as code: a name, not a sentence (the same in every language).
        return _("the hub at {url} is unreachable ({error})").format(url=url, error=f"`{type(exc).__name__}`")
    if response.status_code >= 500:
        return _("the hub at {url} answered {status}").format(url=url, status=response.status_code)
    return None


def snapshot_complete(folder: str | Path) -> bool:
    """A cached snapshot with its config and every weight shard (a partial download is not ready)."""
    import json

    root = Path(folder)
    if not (root / "config.json").is_file():
        return False
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        return all((root / shard).is_file() for shard in shards)
    return any(root.glob("*.safetensors")) or any(root.glob("*.bin"))


def download_command(spec: ModelSpec) -> str:
    revision = f" --revision {spec.revision}" if spec.revision else ""
    return f"hf download {spec.hub_id}{revision}"


def _cached_snapshot(spec: ModelSpec) -> str | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not spec.hub_id:
        return None
    try:
        return snapshot_download(spec.hub_id, revision=spec.revision, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def locate(spec: ModelSpec, check_hub: bool = False) -> WeightsLocation:
    """Find the weights without downloading. `check_hub` adds a quick reachability test."""
    info = spec.family_info()
    if info.backend == "openai":
        return WeightsLocation("remote", None, lazy_message("served at {url}", url=spec.base_url))
    if not info.needs_weights:
        return WeightsLocation("bundled", None, lazy_message("weights ship with the Python package"))
    if spec.path:
        folder = Path(spec.path)
        if (folder / "config.json").is_file():
            return WeightsLocation("local", str(folder), lazy_message("local folder {folder}", folder=folder))
        return WeightsLocation(
            "missing",
            None,
            lazy_message(
                "{folder} is not a model folder (no config.json); fix `path` for {model}", folder=folder, model=spec.key
            ),
        )
    if not spec.hub_id:
        return WeightsLocation(
            "missing", None, lazy_message("{model} has neither `path` nor `hub_id` in the catalog", model=spec.key)
        )
    cached = _cached_snapshot(spec)
    if cached and snapshot_complete(cached):
        return WeightsLocation("cached", cached, lazy_message("Hugging Face cache {folder}", folder=cached))
    if cached:
        return WeightsLocation(
            "downloadable",
            None,
            lazy_message(
                "partly downloaded: `chatvlmllm pull {model}` resumes it ({folder})", model=spec.key, folder=cached
            ),
        )
    if check_hub and not hub_reachable():
        return WeightsLocation("missing", None, _missing_message(spec))
    return WeightsLocation(
        "downloadable",
        None,
        lazy_message("not downloaded yet: `{command}` or load it to download", command=download_command(spec)),
    )


def _missing_message(spec: ModelSpec) -> Message:
    return lazy_message(
        "Weights for {model} ({repo}) are not on this machine and {why}. Download them where there is internet "
        "with `{command}` (then copy the Hugging Face cache here), or point `path` in the models file at a local copy.",
        model=spec.key,
        repo=spec.hub_id,
        why=lazy_message("HF_HUB_OFFLINE is set")
        if hub_offline()
        else lazy_message("the Hugging Face hub is unreachable"),
        command=download_command(spec),
    )


def resolve(spec: ModelSpec) -> str:
    """A local folder with the weights; missing ones are a clear error, never a download."""
    location = locate(spec)
    if location.path:
        return location.path
    raise WeightsMissingError(missing_reason(spec, location))


def weights_problem(spec: ModelSpec) -> str | Message | None:
    """Why this model's weights are not here to load (what `resolve` would raise), or None when they are:
    the fallback router skips such a model at once instead of starting a load that cannot succeed."""
    location = locate(spec)
    return None if location.available else missing_reason(spec, location)


def missing_reason(spec: ModelSpec, location: WeightsLocation) -> str | Message:
    if location.status == "missing":
        return location.message
    if not hub_reachable():
        return _missing_message(spec)
    # Never a silent multi-GB download inside an answer: the user starts it (Models page, pull).
    if spec.weights_gb:
        return lazy_message(
            "{model} is not downloaded yet ({size} GB): download it on the Models page or with "
            "`chatvlmllm pull {model}`, then ask again",
            model=spec.key,
            size=format(spec.weights_gb, ".1f"),
        )
    return lazy_message(
        "{model} is not downloaded yet: download it on the Models page or with `chatvlmllm pull {model}`, "
        "then ask again",
        model=spec.key,
    )
