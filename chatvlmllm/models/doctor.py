"""The doctor report: hardware, every catalog model's plan, and the best model per task (core: no CLI, no UI)."""

from __future__ import annotations

import logging
from typing import Any

from chatvlmllm.decisions import Readiness, Task
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_, _, format_number
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
                + ([str(status.weights.message)] if status.weights.status == "missing" else []),
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


# -- the report in words (the System page) ----------------------------------------------------
# Labels and words are marked here and translated when shown (`_()` at call time: a language per call).

HARDWARE_LABELS = {
    "device": N_("Runs on"),
    "gpu_name": "GPU",
    "compute_capability": N_("Compute capability"),
    "vram_total_gb": N_("GPU memory (GB)"),
    "vram_free_gb": N_("GPU memory free (GB)"),
    "bf16_supported": N_("bfloat16 supported"),
    "torch_version": "PyTorch",
    "cuda_version": "CUDA",
    "torchvision_available": N_("torchvision installed"),
    "flash_attn_version": N_("flash-attn version"),
    "flash_attn_usable": N_("flash-attn usable"),
    "flash_attn_reason": "flash-attn",
    "bitsandbytes_available": N_("bitsandbytes installed"),
    "cpu_count": N_("CPU cores"),
    "ram_total_gb": N_("Memory (GB)"),
    "simulated": N_("Hypothetical"),
}
MODEL_LABELS = {
    "key": N_("Model"),
    "status": N_("Status"),
    "family": N_("Family"),
    "device": N_("Runs on"),
    "attention": N_("Attention"),
    "dtype": N_("Precision"),
    "estimated_gb": N_("Memory (GB)"),
    "reasons": N_("Why"),
}
READINESS_WORDS = {
    Readiness.READY: N_("ready"),
    Readiness.NEEDS_DOWNLOAD: N_("needs download"),
    Readiness.WONT_FIT: N_("won't fit"),
    Readiness.INCOMPATIBLE: N_("incompatible"),
    Readiness.UNAVAILABLE: N_("unavailable"),
}
# Facts about a GPU: on a machine without one, they say so instead of staying blank.
GPU_FACTS = frozenset({"gpu_name", "compute_capability", "vram_total_gb", "vram_free_gb"})
# What an empty value means for the facts where it means something else than "not measured".
MISSING_WORDS = {
    "torch_version": N_("not installed"),
    "cuda_version": N_("none"),
    "flash_attn_version": N_("not installed"),
}
NOT_MEASURED = N_("not measured")


def readiness_words(status: Readiness | str | None) -> str:
    """A model's readiness in the interface language ("ready", "нужна загрузка")."""
    word = READINESS_WORDS.get(Readiness(status)) if status in set(Readiness) else None
    return _(word) if word else str(status)


def hardware_facts(hardware: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value in words) for every hardware fact: "no GPU", "not installed" or "not measured" where
    the profile has no value, never a blank or "None"."""
    return [
        (
            _(HARDWARE_LABELS[key]) if key in HARDWARE_LABELS else key.replace("_", " ").capitalize(),
            _fact(key, value, hardware),
        )
        for key, value in hardware.items()
    ]


def model_facts(model: dict[str, Any]) -> dict[str, str]:
    """One row of the models table, by label; a model without a size estimate says "unknown"."""
    row = {}
    for key, label in MODEL_LABELS.items():
        value = model.get(key)
        if isinstance(value, list):
            words = "; ".join(value)
        elif key == "status":
            words = readiness_words(value)
        else:
            words = in_words(value, missing=_("unknown"))
        row[_(label)] = words
    return row


def memory_words(megabytes: float | None) -> str:
    """A loaded engine's memory: "1,234" (MB), or "not measured" (the offline engines, a remote server)."""
    return format_number(megabytes, 0) if megabytes else _(NOT_MEASURED)


def in_words(value: Any, missing: str | None = None) -> str:
    if value is None or value == "":
        return missing if missing is not None else _(NOT_MEASURED)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float):
        return format_number(value, 1)
    if isinstance(value, list | tuple):
        return ".".join(map(str, value))
    return str(value)


def _fact(key: str, value: Any, hardware: dict[str, Any]) -> str:
    if value is None and key in GPU_FACTS and hardware.get("device") != "cuda":
        return _("no GPU")
    if key == "flash_attn_reason" and isinstance(value, str) and value:
        return _(value)  # the fixed reasons are marked in models.hardware
    return in_words(value, _(MISSING_WORDS.get(key, NOT_MEASURED)))
