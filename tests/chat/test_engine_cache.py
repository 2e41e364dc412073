"""Engine cache: one load per key, concurrent loads coalesce, generation is serialised, unload."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.models.catalog import spec_from_path
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import PlanOverrides, plan_load


def test_loads_once_per_key(tiny_qwen2_vl):
    cache = EngineCache()
    spec = spec_from_path(tiny_qwen2_vl)
    plan = plan_load(probe(), spec)
    engines = {id(cache.get(spec, plan)) for _ in range(10)}
    assert len(engines) == 1 and cache.loads == 1
    other = plan_load(probe(), spec, PlanOverrides(attention="eager"))
    assert cache.get(spec, other) is not cache.get(spec, plan)
    assert cache.load_counts[spec.key] == 2
    assert {e.plan.attention for e in cache.loaded()} == {"sdpa", "eager"}


def test_concurrent_requests_wait_for_one_load(tiny_qwen3_vl):
    cache = EngineCache()
    spec = spec_from_path(tiny_qwen3_vl)
    plan = plan_load(probe(), spec)
    barrier = threading.Barrier(4)

    def get():
        barrier.wait()
        return cache.get(spec, plan)

    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: get(), range(4)))
    assert len({id(e) for e in engines}) == 1
    assert cache.loads == 1


def test_generation_is_serialised(looping_qwen2_vl):
    """A second answer on the same engine produces nothing while the first is open, then all of it."""
    cache = EngineCache()
    spec = spec_from_path(looping_qwen2_vl)
    engine = cache.get(spec, plan_load(probe(), spec))
    settings = GenerationSettings(max_new_tokens=30, repetition_guard=False)
    order: list[str] = []  # chunk arrivals, in order, from both answers
    first = engine.stream([Message("user", "a")], settings)
    first_chunks = iter(first)
    order.append("first:" + next(first_chunks))  # the first answer is now under way
    second = engine.stream([Message("user", "b")], settings)
    second_started, second_chunk = threading.Event(), threading.Event()

    def read_second() -> None:
        second_started.set()
        for chunk in second:
            order.append("second:" + chunk)
            second_chunk.set()

    worker = threading.Thread(target=read_second)
    worker.start()
    assert second_started.wait(30)
    # While the first answer is open, the second gets nothing, however long it waits.
    assert not second_chunk.wait(0.5)
    order.extend("first:" + chunk for chunk in first_chunks)
    worker.join(60)
    assert not worker.is_alive()
    kinds = [entry.split(":", 1)[0] for entry in order]
    assert kinds == ["first"] * kinds.count("first") + ["second"] * kinds.count("second")
    assert first.metrics.new_tokens == second.metrics.new_tokens == 30
    assert first.text == second.text  # the same constant token, thirty times each


def test_unload(tiny_qwen2_vl):
    cache = EngineCache()
    spec = spec_from_path(tiny_qwen2_vl)
    plan = plan_load(probe(), spec)
    engine = cache.get(spec, plan)
    assert cache.loaded()[0].memory_mb > 0
    assert cache.unload(spec.key) == 1
    assert engine.model is None and engine.plan is None
    assert cache.loaded() == []
    cache.get(spec, plan)
    assert cache.loads == 2
