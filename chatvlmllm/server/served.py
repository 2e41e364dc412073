"""The served models, their counters and the server's shared state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.engines import Engine
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.hardware import HardwareProfile, probe
from chatvlmllm.models.planner import LoadPlan, PlanOverrides, plan_load

log = logging.getLogger(__name__)


@dataclass
class ModelCounters:
    requests: int = 0
    active: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0


@dataclass
class ServedModel:
    spec: ModelSpec
    plan: LoadPlan
    counters: ModelCounters = field(default_factory=ModelCounters)

    @property
    def id(self) -> str:
        return self.spec.key


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    cache: EngineCache
    api_key: str | None
    max_pending: int
    started: int = field(default_factory=lambda: int(time.time()))
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self, served: ServedModel) -> Engine:
        return self.cache.get(served.spec, served.plan)


def plan_models(
    specs: Sequence[ModelSpec], hardware: HardwareProfile | None = None, overrides: PlanOverrides | None = None
) -> list[ServedModel]:
    """Plan every model with the same planner the app uses."""
    hardware = hardware or probe()
    return [ServedModel(spec, plan_load(hardware, spec, overrides)) for spec in specs]
