"""Engine overhead: the same tiny-model answers through the engine and through plain `model.generate`.

Both paths turn the same messages into inputs with the same processor call and produce the
same number of new tokens; the raw path is what one writes by hand with transformers
(processor + generate), the engine adds its worker thread, streamer, stopping criteria,
locking and metrics. Also counts model loads over 10 asks in one process (the cache must load once).

    python benchmarks/overhead.py [--repeats 15] [--new-tokens 64] [--out artifacts/overhead.json]

The last line printed is a JSON object with `ratio` (engine / raw, median) and `loads`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The engine generates on a worker thread: OpenMP settings made on the main thread do not reach
# it, so fix the thread count for the whole process before torch loads (both paths alike).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", default="artifacts/overhead.json")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from chatvlmllm.chat.engine_cache import default_cache
    from chatvlmllm.chat.router import answer
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl
    from chatvlmllm.engines import GenerationSettings, Message
    from chatvlmllm.models.catalog import spec_from_path
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    folder = build_tiny_qwen2_vl(Path(tempfile.mkdtemp()) / "tiny_qwen2_vl")
    hw = probe()
    spec = spec_from_path(folder)
    plan = plan_load(hw, spec)
    page = Image.new("RGB", (640, 480), "white")
    messages = [Message("user", "Extract all text", [page])]
    # The guard is off so both paths always generate exactly --new-tokens (random weights may loop).
    settings = GenerationSettings(max_new_tokens=args.new_tokens, repetition_guard=False)

    engine = default_cache().get(spec, plan)
    model = engine.model
    prompt_tokens = int(engine.prepare_inputs(messages, plan.max_pixels)["input_ids"].shape[1])
    eos = model.generation_config.eos_token_id

    def raw() -> int:
        inputs = engine.prepare_inputs(messages, plan.max_pixels)  # processor.apply_chat_template + .to()
        out = model.generate(**inputs, max_new_tokens=args.new_tokens, do_sample=False)
        return int(out.shape[1] - inputs["input_ids"].shape[1])

    def through_engine() -> int:
        stream = engine.stream(messages, settings)
        stream.consume()
        return stream.metrics.new_tokens

    # Same answers: force the full length on both sides by ignoring EOS (random weights may end early).
    model.generation_config.eos_token_id = None
    try:
        for fn in (raw, through_engine):  # warm-up
            fn()
        raw_times, engine_times, tokens = [], [], set()
        for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
            for fn, times in ((raw, raw_times), (through_engine, engine_times)):
                started = time.perf_counter()
                tokens.add(fn())
                times.append(time.perf_counter() - started)
    finally:
        model.generation_config.eos_token_id = eos
    assert tokens == {args.new_tokens}, f"token counts differ: {tokens}"

    # Loads over 10 asks in one process, through the same router path as the CLI and the app.
    for i in range(10):
        answer([Message("user", f"question {i}", [page])], [spec], hw, GenerationSettings(max_new_tokens=4)).consume()
    loads = default_cache().load_counts[spec.key]

    raw_median, engine_median = statistics.median(raw_times), statistics.median(engine_times)
    result = {
        "benchmark": "engine_overhead",
        "model": "tiny qwen2_vl (random weights)",
        "device": plan.device,
        "attention": plan.attention,
        "dtype": plan.dtype,
        "new_tokens": args.new_tokens,
        "prompt_tokens": prompt_tokens,
        "repeats": args.repeats,
        "raw_median_s": round(raw_median, 5),
        "engine_median_s": round(engine_median, 5),
        "raw_all_s": [round(t, 5) for t in raw_times],
        "engine_all_s": [round(t, 5) for t in engine_times],
        "ratio": round(engine_median / raw_median, 4),
        "loads": loads,
        "cpu_count": os.cpu_count(),
        "omp_threads": int(os.environ["OMP_NUM_THREADS"]),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"raw generate   median {raw_median * 1000:8.2f} ms for {args.new_tokens} tokens")
    print(f"through engine median {engine_median * 1000:8.2f} ms for {args.new_tokens} tokens")
    print(f"model loads over 10 asks: {loads}   (written to {out})")
    print(
        json.dumps(
            {
                "ratio": result["ratio"],
                "loads": loads,
                "raw_median_s": result["raw_median_s"],
                "engine_median_s": result["engine_median_s"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
