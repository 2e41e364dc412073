"""One place that sets up logging for the CLI, the server and the app.

Every module logs through `logging.getLogger(__name__)`; nothing is printed unless a
front end calls `configure()`. The level comes from `CHATVLMLLM_LOG_LEVEL` (DEBUG, INFO,
WARNING, ...). Front ends pass their own quiet default: the app says nothing below WARNING
unless asked, the server reports INFO like other API servers.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from chatvlmllm.settings import settings

LEVEL_VARIABLE = "CHATVLMLLM_LOG_LEVEL"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_from_env(default: int = logging.WARNING) -> int:
    """The level named by CHATVLMLLM_LOG_LEVEL, or `default` when unset or unknown."""
    name = settings().log_level.strip().upper()
    if not name:
        return default
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else default


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (pytest and Streamlit swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # the base class sets it once; we always look it up


def configure(default: int = logging.WARNING) -> int:
    """Give the `chatvlmllm` logger a stderr handler (once) at the configured level; returns it."""
    level = level_from_env(default)
    root = logging.getLogger("chatvlmllm")
    root.setLevel(level)
    if not any(getattr(handler, "_chatvlmllm", False) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._chatvlmllm = True  # type: ignore[attr-defined]  # marks our handler, so reruns add none
        root.addHandler(handler)
    return level
