"""`chatvlmllm` command line: doctor | ask | index | ocr | bench | serve | models | pull."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from chatvlmllm import __version__, i18n, logs
from chatvlmllm.errors import ChatVlmError
from chatvlmllm.i18n import _

# Subcommand modules, each with `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("doctor", "ask", "index", "ocr", "bench", "serve", "models", "pull")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatvlmllm", description="Chat with your documents through local VLMs.")
    parser.add_argument("--version", action="version", version=f"chatvlmllm {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"chatvlmllm.cli.{name}_cmd")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Never hang on hub retries from a terminal: weights.resolve() checks reachability itself.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logs.configure(logging.WARNING)  # quiet unless CHATVLMLLM_LOG_LEVEL asks for more
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        language = _language(args)
    except ChatVlmError as exc:  # CHATVLMLLM_UI_LANG names a language this app does not speak
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with i18n.use_language(language):
        return _run(args)


def _language(args: argparse.Namespace) -> str:
    """Human output follows LANG/LC_MESSAGES (or CHATVLMLLM_UI_LANG); a `--json` run stays in English from
    start to end, so every key and value a script reads is the same whatever the user's locale."""
    if getattr(args, "json", False):
        return i18n.SOURCE_LANGUAGE
    return i18n.environment_language()


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except ChatVlmError as exc:  # a user error or an engine failure: one line, never a traceback
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_("interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
