"""Which of an answer's extras can be written as JSON: the one rule the store, the CLI and the server share."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def is_json_value(value: object) -> bool:
    """True when `json.dumps` writes `value` as it is: scalars, and lists, tuples and string-keyed dicts of them."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json_value(item) for key, item in value.items())
    return False


def json_extras(extras: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `extras` that are JSON all the way down (dicts included); the rest (images,
    model objects) are left out, by name in the debug log."""
    kept = {key: value for key, value in extras.items() if is_json_value(value)}
    if dropped := sorted(set(extras) - set(kept)):
        log.debug("extras not written as JSON: %s", ", ".join(dropped))
    return kept
