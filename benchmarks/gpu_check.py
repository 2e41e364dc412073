"""One prepared GPU check for a session that is lent a CUDA machine (tiny checkpoints, no hub access).

    python benchmarks/gpu_check.py [--out artifacts/gpu_check.json]

Reports:
- the flash-attn probe's verdict (chatvlmllm.models.hardware.probe: importable is not runnable);
- dots.ocr (chatvlmllm's own model code) on CUDA with the vision tower on sdpa, in bf16 and fp16:
  new tokens, and the prefill logits' distance from the CPU float32 run of the same weights;
- Qwen2-VL with sdpa and with eager on CUDA: max abs difference of the prefill logits;
- peak VRAM as the app reports it (AnswerMetrics.peak_vram_mb).
Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_engine(folder: Path, key: str, hw: Any, **overrides: Any) -> tuple[Any, Any]:
    from PIL import Image, ImageDraw

    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.engines import GenerationSettings, Message
    from chatvlmllm.models.catalog import spec_from_path
    from chatvlmllm.models.planner import PlanOverrides, plan_load

    page = Image.new("RGB", (640, 480), "white")
    ImageDraw.Draw(page).text((20, 20), "TOTAL 12.50", fill="black", font_size=28)
    spec = spec_from_path(folder, key=key)
    plan = plan_load(hw, spec, PlanOverrides(**overrides))
    engine = EngineCache().get(spec, plan)
    stream = engine.stream(
        [Message("user", "Extract all text", [page])],
        GenerationSettings(max_new_tokens=16, options={"prompt_mode": "prompt_ocr"}),
    )
    stream.consume()
    return engine, stream


def prefill_logits(engine: Any, folder_kind: str) -> Any:
    """Logits of a fixed prompt through the engine's own input preparation."""
    import torch
    from PIL import Image

    page = Image.new("RGB", (448, 336), "white")
    with torch.no_grad():
        if folder_kind == "dots":
            inputs = engine.prepare_inputs([page], "Extract the text content from this image.", 28 * 28 * 256)
        else:
            from chatvlmllm.engines import Message

            inputs = engine.prepare_inputs([Message("user", "read", [page])], 28 * 28 * 256)
        return engine.model(**inputs).logits.float().cpu()


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/gpu_check.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device here (torch.cuda.is_available() is False): nothing to check; run this on a GPU machine.")
        return 0

    from chatvlmllm.devtools.tiny_models import build_tiny_dots_ocr, build_tiny_qwen2_vl
    from chatvlmllm.models.hardware import HardwareProfile, probe

    hw = probe()
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": list(torch.cuda.get_device_capability(0)),
        "flash_attn_usable": hw.flash_attn_usable,
        "flash_attn_reason": hw.flash_attn_reason,
    }
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    dots = build_tiny_dots_ocr(work / "dots")
    qwen = build_tiny_qwen2_vl(work / "qwen2")
    cpu = HardwareProfile(device="cpu", ram_total_gb=32.0, cpu_count=2)

    cpu_engine, _ = run_engine(dots, "dots_cpu", cpu)
    reference = prefill_logits(cpu_engine, "dots")
    for dtype in ("bfloat16", "float16"):
        engine, stream = run_engine(dots, f"dots_{dtype}", hw, dtype=dtype, attention="sdpa")
        logits = prefill_logits(engine, "dots")
        report[f"dots_{dtype}"] = {
            "new_tokens": stream.metrics.new_tokens,
            "vision_attention": stream.extras.get("vision_attention"),
            "peak_vram_mb": stream.metrics.peak_vram_mb,
            "prefill_max_abs_diff_vs_cpu_fp32": float((logits - reference).abs().max()),
        }
    logits = {}
    for attention in ("sdpa", "eager"):
        engine, stream = run_engine(qwen, f"qwen_{attention}", hw, attention=attention)
        logits[attention] = prefill_logits(engine, "qwen")
        report[f"qwen2_vl_{attention}"] = {
            "new_tokens": stream.metrics.new_tokens,
            "peak_vram_mb": stream.metrics.peak_vram_mb,
        }
    report["qwen2_vl_sdpa_vs_eager_max_abs_diff"] = float((logits["sdpa"] - logits["eager"]).abs().max())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
