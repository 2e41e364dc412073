"""`chatvlmllm serve`: see chatvlmllm.server."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help="(not built yet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chatvlmllm.errors import UserError

    raise UserError("`chatvlmllm serve` is not built yet")
