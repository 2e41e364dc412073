"""Engine registry: one adapter module per family, discovered from this package.

Each adapter module declares `FAMILIES = {name: FamilyInfo(...)}` and imports nothing
heavy at module level, so listing families is cheap. Adding a family means adding one
file here; the registry itself is `chatvlmllm.models.families`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatvlmllm.engines.base import (
    AnswerMetrics,
    AnswerStream,
    BaseEngine,
    Engine,
    GenerationSettings,
    GenerationStats,
    Message,
    Progress,
    reader_summary,
)
from chatvlmllm.models.families import FamilyInfo, families, family_info

if TYPE_CHECKING:
    from chatvlmllm.models.catalog import ModelSpec

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
    "reader_summary",
]


def create_engine(spec: ModelSpec) -> Engine:
    """Instantiate (not load) the adapter for a catalog entry."""
    engine: Engine = family_info(spec.family).engine(spec)
    return engine
