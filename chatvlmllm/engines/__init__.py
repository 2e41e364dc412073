"""Engine registry: one adapter module per family, discovered from this package.

Each adapter module declares `FAMILIES = {name: FamilyInfo(...)}` and imports nothing
heavy at module level, so listing families is cheap. Adding a family means adding one
file here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING

from chatvlmllm.engines.base import (
    AnswerMetrics,
    AnswerStream,
    BaseEngine,
    Engine,
    FamilyInfo,
    GenerationSettings,
    GenerationStats,
    Message,
    Progress,
)

if TYPE_CHECKING:
    from chatvlmllm.catalog import ModelSpec

__all__ = [
    "AnswerMetrics",
    "AnswerStream",
    "BaseEngine",
    "Engine",
    "FamilyInfo",
    "GenerationSettings",
    "GenerationStats",
    "Message",
    "Progress",
    "create_engine",
    "families",
    "family_info",
]

_NOT_ADAPTERS = {"base"}


@functools.lru_cache(maxsize=1)
def families() -> dict[str, FamilyInfo]:
    found: dict[str, FamilyInfo] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name in _NOT_ADAPTERS or module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{module.name}")
        found.update(getattr(mod, "FAMILIES", {}))
    return found


def family_info(name: str) -> FamilyInfo:
    try:
        return families()[name]
    except KeyError:
        known = ", ".join(sorted(families()))
        raise KeyError(f"unknown model family {name!r}; known families: {known}") from None


def create_engine(spec: ModelSpec) -> Engine:
    """Instantiate (not load) the adapter for a catalog entry."""
    module_name, _, class_name = family_info(spec.family).engine.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(spec)
