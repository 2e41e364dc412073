"""`chatvlmllm models`: every catalog model with its download status, size on disk and licence."""

from __future__ import annotations

import argparse
import json

from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.downloads import human_bytes, model_row


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list models: downloaded or not, size on disk, licence")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


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
