"""Process-wide engine cache: each (model, plan) loads once, however many callers ask.

Concurrent requests for the same key wait for one load; generation on an engine is
serialised by the engine's own lock; `unload` frees the memory.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from chatvlmllm.engines import Engine, create_engine
from chatvlmllm.errors import PlanError
from chatvlmllm.i18n import lazy_message
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.planner import LoadPlan


@dataclass(frozen=True)
class LoadedEngine:
    key: tuple
    model: str
    plan: LoadPlan
    load_s: float
    memory_mb: float | None


class EngineCache:
    def __init__(self) -> None:
        self._engines: dict[tuple, Engine] = {}
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.load_counts: Counter[str] = Counter()

    @property
    def loads(self) -> int:
        return sum(self.load_counts.values())

    @staticmethod
    def key_for(spec: ModelSpec, plan: LoadPlan) -> tuple:
        return (spec, plan.cache_key())

    def get(self, spec: ModelSpec, plan: LoadPlan) -> Engine:
        """The loaded engine for this model and plan, loading it on first use."""
        if not plan.runnable:
            raise PlanError(
                lazy_message("{model} cannot run here: {reason}", model=spec.key, reason=plan.why_not_message())
            )
        key = self.key_for(spec, plan)
        with self._guard:
            engine = self._engines.get(key)
            if engine is not None:
                return engine
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one load per key; latecomers wait here and reuse it
            engine = self._engines.get(key)
            if engine is None:
                engine = create_engine(spec)
                engine.load(plan)
                self.load_counts[spec.key] += 1
                with self._guard:
                    self._engines[key] = engine
        return engine

    def peek(self, spec: ModelSpec, plan: LoadPlan) -> Engine | None:
        return self._engines.get(self.key_for(spec, plan))

    def loaded(self) -> list[LoadedEngine]:
        with self._guard:
            items = list(self._engines.items())
        return [
            LoadedEngine(key, engine.spec.key, engine.plan, engine.load_s, _memory(engine))
            for key, engine in items
            if engine.plan is not None
        ]

    def unload(self, model_key: str | None = None) -> int:
        """Unload one model (all its plans) or everything; returns how many engines went."""
        with self._guard:
            doomed = [k for k, e in self._engines.items() if model_key is None or e.spec.key == model_key]
            engines = [self._engines.pop(k) for k in doomed]
        for engine in engines:
            engine.unload()
        return len(engines)


def _memory(engine: Engine) -> float | None:
    memory = getattr(engine, "memory_mb", None)
    return memory() if callable(memory) else None


_default_cache = EngineCache()


def default_cache() -> EngineCache:
    """The process-wide cache every interface shares."""
    return _default_cache
