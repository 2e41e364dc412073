"""Where a model's weights are: a local folder, the Hugging Face cache, or the hub.

Missing weights with no reachable hub fail at once with the command to fetch them,
instead of huggingface_hub's retry loop (about 25 s before it gives up).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from chatvlmllm.errors import WeightsMissingError
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.settings import hub_offline, settings


@dataclass(frozen=True)
class WeightsLocation:
    status: str  # local | cached | downloadable | missing | bundled | remote
    path: str | None
    message: str

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
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub.utils import get_session

    url = endpoint()
    try:
        response = get_session().head(f"{url}/api/models", timeout=timeout_s, follow_redirects=True)
    except Exception as exc:  # the client's connect/timeout/proxy errors
        return f"the hub at {url} is unreachable ({type(exc).__name__})"
    if response.status_code >= 500:
        return f"the hub at {url} answered {response.status_code}"
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
        return WeightsLocation("remote", None, f"served at {spec.base_url}")
    if not info.needs_weights:
        return WeightsLocation("bundled", None, "weights ship with the Python package")
    if spec.path:
        folder = Path(spec.path)
        if (folder / "config.json").is_file():
            return WeightsLocation("local", str(folder), f"local folder {folder}")
        return WeightsLocation(
            "missing", None, f"{folder} is not a model folder (no config.json); fix `path` for {spec.key}"
        )
    if not spec.hub_id:
        return WeightsLocation("missing", None, f"{spec.key} has neither `path` nor `hub_id` in the catalog")
    cached = _cached_snapshot(spec)
    if cached and snapshot_complete(cached):
        return WeightsLocation("cached", cached, f"Hugging Face cache {cached}")
    if cached:
        return WeightsLocation(
            "downloadable", None, f"partly downloaded: `chatvlmllm pull {spec.key}` resumes it ({cached})"
        )
    if check_hub and not hub_reachable():
        return WeightsLocation("missing", None, _missing_message(spec))
    return WeightsLocation(
        "downloadable", None, f"not downloaded yet: `{download_command(spec)}` or load it to download"
    )


def _missing_message(spec: ModelSpec) -> str:
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face hub is unreachable"
    return (
        f"Weights for {spec.key} ({spec.hub_id}) are not on this machine and {why}. "
        f"Download them where there is internet with `{download_command(spec)}` "
        f"(then copy the Hugging Face cache here), or point `path` in the models file at a local copy."
    )


def resolve(spec: ModelSpec) -> str:
    """A local folder with the weights; missing ones are a clear error, never a download."""
    location = locate(spec)
    if location.path:
        return location.path
    raise WeightsMissingError(missing_reason(spec, location))


def weights_problem(spec: ModelSpec) -> str | None:
    """Why this model's weights are not here to load (what `resolve` would raise), or None when they are:
    the fallback router skips such a model at once instead of starting a load that cannot succeed."""
    location = locate(spec)
    return None if location.available else missing_reason(spec, location)


def missing_reason(spec: ModelSpec, location: WeightsLocation) -> str:
    if location.status == "missing":
        return location.message
    if not hub_reachable():
        return _missing_message(spec)
    # Never a silent multi-GB download inside an answer: the user starts it (Models page, pull).
    size = f" ({spec.weights_gb:.1f} GB)" if spec.weights_gb else ""
    return (
        f"{spec.key} is not downloaded yet{size}: download it on the Models page or with "
        f"`chatvlmllm pull {spec.key}`, then ask again"
    )
