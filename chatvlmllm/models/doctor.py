"""The doctor report: hardware, every catalog model's plan, and the best model per task (core: no CLI, no UI)."""

from __future__ import annotations

import logging
from typing import Any

from chatvlmllm.decisions import Readiness, Task
from chatvlmllm.errors import UserError
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.choice import model_status, pick_for_task
from chatvlmllm.models.hardware import probe, simulated_gpu

log = logging.getLogger(__name__)

# The requests doctor shows a pick for: (label, task, document language).
PICK_ROWS = (
    ("transcribe", Task.TRANSCRIBE, None),
    ("table", Task.TABLE, None),
    ("layout", Task.LAYOUT, None),
    ("question", Task.QUESTION, None),
    ("transcribe (Russian)", Task.TRANSCRIBE, "ru"),
)


def doctor_report(gpu: str | None = None, assume_flash_attn: bool = False) -> dict[str, Any]:
    """The hardware profile (or a hypothetical GPU's, `gpu="CC:VRAM_GB"`), every catalog model's
    status and load plan, and the best model per task: what `chatvlmllm doctor` prints and the
    System page shows."""
    hw = probe()
    if gpu:
        try:
            hw = simulated_gpu(gpu, assume_flash_attn=assume_flash_attn, base=hw)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    models: list[dict[str, Any]] = []
    catalog = load_catalog()
    for spec in catalog.values():
        status = model_status(spec, hw)
        plan = status.plan
        models.append(
            {
                "key": spec.key,
                "family": spec.family,
                "source": spec.source,
                "licence": spec.licence,
                "params_b": spec.params_b,
                "status": status.status,
                "device": plan.device,
                "attention": plan.attention,
                "dtype": plan.dtype,
                "quantization": plan.quantization,
                "max_pixels": plan.max_pixels,
                "estimated_gb": plan.estimated_gb,
                "fits": plan.fits,
                "runnable": plan.runnable,
                "weights": status.weights.status,
                "reasons": plan.reason_texts()
                + ([status.weights.message] if status.weights.status == "missing" else []),
            }
        )
    ready = [str(m["key"]) for m in models if m["status"] == Readiness.READY]
    picks: dict[str, dict[str, Any]] = {}
    for label, task, language in PICK_ROWS:
        best = pick_for_task(task, hw, catalog, language)
        entry = best.to_dict()
        entry["pick_ready"] = pick_for_task(task, hw, catalog, language, available=ready).key
        picks[label] = entry
    return {"hardware": hw.to_dict(), "models": models, "picks": picks}
