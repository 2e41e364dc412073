"""`chatvlmllm models`: every catalog model with its download status, size on disk and licence."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chatvlmllm.catalog import ModelSpec, load_catalog
from chatvlmllm.downloads import human_bytes, size_on_disk
from chatvlmllm.weights import locate


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list models: downloaded or not, size on disk, licence")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def model_row(spec: ModelSpec) -> dict[str, Any]:
    where = locate(spec)
    on_disk = size_on_disk(spec)
    if where.available:
        status = "ready" if where.status in ("local", "cached") else where.status
    elif on_disk:
        status = "partial"
    elif where.status == "downloadable":
        status = "not downloaded"
    else:
        status = where.status
    return {
        "key": spec.key,
        "name": spec.display_name,
        "family": spec.family,
        "status": status,
        "size_on_disk_bytes": on_disk,
        "download_gb": spec.weights_gb,
        "licence": spec.licence,
        "source": spec.source,
    }


def run(args: argparse.Namespace) -> int:
    rows = [model_row(spec) for spec in load_catalog().values()]
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
        return 0
    print(f"{'model':18} {'status':15} {'on disk':>9} {'download':>9}  licence")
    for row in rows:
        download = f"{row['download_gb']:.1f} GB" if row["download_gb"] else "-"
        on_disk = human_bytes(row["size_on_disk_bytes"]) if row["size_on_disk_bytes"] else "-"
        print(f"{row['key']:18} {row['status']:15} {on_disk:>9} {download:>9}  {row['licence'] or '-'}")
    return 0
