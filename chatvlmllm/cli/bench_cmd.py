"""`chatvlmllm bench`: see chatvlmllm.evaluation."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="(not built yet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chatvlmllm.errors import UserError

    raise UserError("`chatvlmllm bench` is not built yet")
