"""Model downloads with real progress: bytes done of a known total, speed, ETA, cancel and resume.

Everything goes through huggingface_hub (its HTTP client, `HF_ENDPOINT`, proxies, its cache
layout): the file list and sizes come from `snapshot_download(dry_run=True)`, each file from
`hf_hub_download` (smallest file first) with a progress class that counts bytes and stops the
transfer when the download is cancelled. Resume is starting the same download again: every file already in the
cache is kept and not fetched again. The file that was interrupted starts over: since
huggingface_hub 2.x (PR #4228) each transfer writes a per-process temporary file that is
removed on failure, so byte-level resume exists only within one run (its own retries).

A download runs on a background thread (`Download.start`); the CLI runs it in the foreground
with a tqdm bar (`chatvlmllm pull`), the Models page polls `Download.progress`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_, Message, _, format_number, format_size, lazy_message, ngettext
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.weights import download_command, endpoint, hub_problem, locate

log = logging.getLogger(__name__)

# Free space kept beyond the download itself (the cache also writes temporary files).
DISK_MARGIN_BYTES = 64 * 1024 * 1024
# huggingface_hub reads responses in 10 MiB chunks: progress and cancel would react only
# every 10 MiB (a small file in one step). 256 KiB keeps both responsive at no real cost.
TRANSFER_CHUNK_BYTES = 256 * 1024


class DownloadState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class DownloadError(UserError):
    """A download that cannot start or could not finish, with what to do about it."""


class Cancelled(Exception):
    """Raised inside the transfer loop when the user cancels."""


@dataclass(frozen=True)
class Progress:
    key: str
    repo_id: str
    state: DownloadState = DownloadState.PENDING
    total_bytes: int = 0
    done_bytes: int = 0
    speed_bps: float | None = None
    files_total: int = 0
    files_done: int = 0
    error: str | Message | None = None  # a Message reads in the language of the page that shows it

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.speed_bps or self.state is not DownloadState.RUNNING:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / self.speed_bps)

    def summary(self) -> str:
        """ "1.2 GB of 4.4 GB · 25 MB/s · 128 s left", in the interface language."""
        parts = [_("{done} of {total}").format(done=format_size(self.done_bytes), total=format_size(self.total_bytes))]
        if self.speed_bps:
            parts.append(_("{size}/s").format(size=format_size(self.speed_bps)))
        if self.eta_s is not None:
            seconds = round(self.eta_s)
            parts.append(ngettext("{count} s left", "{count} s left", seconds).format(count=format_number(seconds)))
        return " · ".join(parts)


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def free_bytes(path: Path) -> int:
    """Free space on the disk holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (huggingface_hub re-raises hub errors as DryRunError etc.)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _friendly(exc: BaseException, spec: ModelSpec) -> Message:
    """One clear line for what went wrong, with what to do."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    command = f"chatvlmllm pull {spec.key}"
    causes = _causes(exc)
    if any(isinstance(e, GatedRepoError) for e in causes):
        return lazy_message(
            "{repo} is gated: accept its licence on https://huggingface.co/{repo} and log in (`hf auth login`), "
            "then run `{command}`",
            repo=spec.hub_id,
            command=command,
        )
    if any(isinstance(e, RepositoryNotFoundError) for e in causes):
        return lazy_message(
            "{repo} was not found on {endpoint} (check `hub_id` or your token)", repo=spec.hub_id, endpoint=endpoint()
        )
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in causes):
        return lazy_message(
            "the disk is full while downloading {repo}; free some space, then `{command}` resumes",
            repo=spec.hub_id,
            command=command,
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return lazy_message(
            "the hub cannot be reached ({error}); `{command}` resumes when it can", error=exc, command=command
        )
    return lazy_message(
        "the download of {repo} was interrupted ({error}); `{command}` resumes it",
        repo=spec.hub_id,
        error="{}: {}".format(type(exc).__name__, exc),  # noqa: UP032 (no f-string: it is a marked call's value)
        command=command,
    )


class Download:
    """One model's download; `start()` runs it on a thread, `run()` in the caller's."""

    def __init__(self, spec: ModelSpec, on_progress: Callable[[Progress], None] | None = None):
        if not spec.hub_id:
            raise DownloadError(lazy_message("{model} has no hub_id to download", model=spec.key))
        self.spec = spec
        self.repo_id: str = spec.hub_id
        self.on_progress = on_progress
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress = Progress(spec.key, spec.hub_id)
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._bytes_at_start = 0
        self.path: str | None = None

    # -- state -----------------------------------------------------------------------
    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._progress = replace(self._progress, **changes)
            progress = self._progress
        if self.on_progress is not None:
            self.on_progress(progress)

    def _add_bytes(self, count: int) -> None:
        with self._lock:
            done = self._progress.done_bytes + count
            elapsed = time.monotonic() - self._started_at
            moved = done - self._bytes_at_start
            speed = moved / elapsed if elapsed > 0.2 and moved > 0 else self._progress.speed_bps
            self._progress = replace(self._progress, done_bytes=done, speed_bps=speed)
            progress = self._progress
        if self.on_progress is not None:
            self.on_progress(progress)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- control ---------------------------------------------------------------------
    def start(self) -> Download:
        self._thread = threading.Thread(target=self._run_quietly, name=f"download-{self.spec.key}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout_s: float | None = None) -> Progress:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.progress

    def _run_quietly(self) -> None:
        with contextlib.suppress(DownloadError):  # recorded in progress.error
            self.run()

    # -- the work --------------------------------------------------------------------
    def run(self) -> str:
        """Download every file of the snapshot; the local snapshot folder when done."""
        try:
            files = self._plan()
            self._transfer(files)
        except Cancelled:
            self._update(state=DownloadState.CANCELLED, speed_bps=None)
            raise DownloadError(
                lazy_message(
                    "download of {repo} cancelled; `chatvlmllm pull {model}` resumes it",
                    repo=self.spec.hub_id,
                    model=self.spec.key,
                )
            ) from None
        except DownloadError as exc:
            self._update(state=DownloadState.FAILED, error=exc.args[0] if exc.args else str(exc), speed_bps=None)
            raise
        except Exception as exc:
            message = _friendly(exc, self.spec)
            log.warning("download of %s failed: %s", self.spec.hub_id, message, exc_info=True)
            self._update(state=DownloadState.FAILED, error=message, speed_bps=None)
            raise DownloadError(message) from exc
        self._update(state=DownloadState.DONE, speed_bps=None)
        assert self.path is not None
        return self.path

    def _plan(self) -> list[Any]:
        from huggingface_hub import snapshot_download

        problem = hub_problem()
        if problem:
            raise DownloadError(
                lazy_message(
                    "cannot download {repo}: {problem}. Where there is internet: `{command}`, then copy the "
                    "Hugging Face cache here",
                    repo=self.spec.hub_id,
                    problem=problem,
                    command=download_command(self.spec),
                )
            )
        listed = snapshot_download(self.repo_id, revision=self.spec.revision, endpoint=endpoint(), dry_run=True)
        assert isinstance(listed, list)
        # The dry run lists files in the order its threads finish (a different order on every run).
        # Smallest first, always: configs and tokenizer arrive before the weights, and a cancel or a
        # failure loses only the file in flight, the big one last.
        files = sorted(listed, key=lambda f: (f.file_size or 0, f.filename))
        total = sum(f.file_size or 0 for f in files)
        cached = sum(f.file_size or 0 for f in files if f.is_cached)
        missing = total - cached  # resumable .incomplete bytes still count: a conservative check
        free = free_bytes(cache_dir())
        if missing + DISK_MARGIN_BYTES > free:
            raise DownloadError(
                lazy_message(
                    "not enough disk space for {repo}: {missing} to download, {free} free in {folder}",
                    repo=self.spec.hub_id,
                    missing=human_bytes(missing),
                    free=human_bytes(free),
                    folder=cache_dir(),
                )
            )
        self._started_at = time.monotonic()
        self._bytes_at_start = cached
        self._update(
            state=DownloadState.RUNNING,
            total_bytes=total,
            done_bytes=cached,
            files_total=len(files),
            files_done=sum(1 for f in files if f.is_cached),
            error=None,
        )
        return files

    def _transfer(self, files: list[Any]) -> None:
        from huggingface_hub import constants, hf_hub_download

        constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, TRANSFER_CHUNK_BYTES)
        bar = _progress_class(self)
        for info in files:
            if info.is_cached:
                continue
            if self._cancel.is_set():
                raise Cancelled()
            local = hf_hub_download(
                self.repo_id,
                info.filename,
                revision=self.spec.revision,
                endpoint=endpoint(),
                tqdm_class=bar,
            )
            self._update(files_done=self.progress.files_done + 1)
            self.path = str(Path(local).parent) if "/" not in info.filename else self.path
        if self.path is None:
            from huggingface_hub import snapshot_download

            self.path = snapshot_download(self.repo_id, revision=self.spec.revision, local_files_only=True)


def _progress_class(download: Download) -> type:
    """A tqdm class that feeds `download`'s progress and stops the transfer on cancel."""
    from tqdm.auto import tqdm

    class DownloadBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs["disable"] = True  # the CLI draws its own bar from the progress events
            super().__init__(*args, **kwargs)
            initial = int(kwargs.get("initial") or 0)
            if initial:
                download._add_bytes(initial)  # resumed bytes of an .incomplete file

        def update(self, n: float | None = 1) -> bool | None:
            if download._cancel.is_set():
                raise Cancelled()
            download._add_bytes(int(n or 0))
            return super().update(n)

    return DownloadBar


@dataclass
class DownloadManager:
    """The process's downloads, one per model key (the app keeps one manager across reruns)."""

    downloads: dict[str, Download] = field(default_factory=dict)

    def start(self, spec: ModelSpec) -> Download:
        current = self.downloads.get(spec.key)
        if current is not None and current.running:
            return current
        self.downloads[spec.key] = Download(spec).start()
        return self.downloads[spec.key]

    def get(self, key: str) -> Download | None:
        return self.downloads.get(key)


_MANAGER = DownloadManager()


def manager() -> DownloadManager:
    return _MANAGER


def size_on_disk(spec: ModelSpec) -> int:
    """Bytes this model's weights take in the Hugging Face cache (complete or not), or its local folder."""
    if spec.path:
        folder = Path(spec.path)
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
    if not spec.hub_id:
        return 0
    repo = cache_dir() / f"models--{spec.hub_id.replace('/', '--')}"
    if not repo.is_dir():
        return 0
    return sum(f.stat().st_size for f in (repo / "blobs").glob("*") if f.is_file()) if (repo / "blobs").is_dir() else 0


class WeightsStatus(StrEnum):
    READY = "ready"
    PARTIAL = "partial"
    NOT_DOWNLOADED = "not downloaded"
    BUNDLED = "bundled"
    REMOTE = "remote"
    MISSING = "missing"


WEIGHTS_WORDS = {
    WeightsStatus.READY: N_("ready"),
    WeightsStatus.PARTIAL: N_("partly downloaded"),
    WeightsStatus.NOT_DOWNLOADED: N_("not downloaded"),
    WeightsStatus.BUNDLED: N_("bundled"),
    WeightsStatus.REMOTE: N_("remote"),
    WeightsStatus.MISSING: N_("missing"),
}


def weights_words(status: WeightsStatus | str) -> str:
    """A weights status in the interface language (the JSON keeps the enum's value)."""
    return _(WEIGHTS_WORDS[WeightsStatus(status)]) if status in set(WeightsStatus) else str(status)


def weights_status(spec: ModelSpec) -> WeightsStatus:

    where = locate(spec)
    if where.status in ("local", "cached"):
        return WeightsStatus.READY
    if where.status in ("bundled", "remote"):
        return WeightsStatus(where.status)
    if where.status == "downloadable":
        return WeightsStatus.PARTIAL if size_on_disk(spec) else WeightsStatus.NOT_DOWNLOADED
    return WeightsStatus.MISSING


def model_row(spec: ModelSpec) -> dict[str, Any]:
    """What `chatvlmllm models` and the Models page show for one catalog model."""
    return {
        "key": spec.key,
        "name": spec.display_name,
        "family": spec.family,
        "status": str(weights_status(spec)),
        "size_on_disk_bytes": size_on_disk(spec),
        "download_gb": spec.weights_gb,
        "licence": spec.licence,
        "source": spec.source,
    }
