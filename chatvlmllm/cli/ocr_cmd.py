"""`chatvlmllm ocr FILE`: extract all text (the same path as `ask` with the OCR prompt)."""

from __future__ import annotations

import argparse

from chatvlmllm.cli.ask_cmd import add_common, run_question
from chatvlmllm.models.tasks import OCR_PROMPT


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ocr", help="extract all text from a document")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_question(args, OCR_PROMPT)
