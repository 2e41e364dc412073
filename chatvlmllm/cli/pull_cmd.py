"""`chatvlmllm pull KEY`: download a catalog model's weights with a progress bar (resumable)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chatvlmllm.i18n import _, format_size
from chatvlmllm.models.catalog import get_model
from chatvlmllm.models.downloads import Download, DownloadError, Progress


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("pull", help="download a model's weights (progress, resumable)")
    p.add_argument("key", help="catalog key (see `chatvlmllm models`)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    spec = get_model(args.key)
    if not spec.hub_id:
        raise DownloadError(f"{spec.key} has no hub_id: its weights are {spec.source}")
    bars: list[Any] = []  # drawn once the total is known

    def show(progress: Progress) -> None:
        if not progress.total_bytes:
            return
        if not bars:
            bars.append(tqdm(total=progress.total_bytes, unit="B", unit_scale=True, desc=spec.key, file=sys.stderr))
        bars[0].n = progress.done_bytes
        bars[0].refresh()

    download = Download(spec, on_progress=show)
    try:
        path = download.run()
    except KeyboardInterrupt:
        download.cancel()
        print(_("interrupted: `chatvlmllm pull {model}` resumes the download").format(model=spec.key), file=sys.stderr)
        return 130
    finally:
        for bar in bars:
            bar.close()
    done = download.progress
    print(_("{model}: {size} in {path}").format(model=spec.key, size=format_size(done.total_bytes), path=path))
    return 0
