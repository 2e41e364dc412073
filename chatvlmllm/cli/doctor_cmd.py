"""`chatvlmllm doctor`: the hardware profile and, for every catalog model, its plan."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chatvlmllm.catalog import load_catalog
from chatvlmllm.decisions import Readiness
from chatvlmllm.families import Task
from chatvlmllm.hardware import probe, simulated_gpu
from chatvlmllm.selection import model_status
from chatvlmllm.task_choice import pick_for_task

# The requests doctor shows a pick for: (label, task, document language).
PICK_ROWS = (
    ("transcribe", Task.TRANSCRIBE, None),
    ("table", Task.TABLE, None),
    ("layout", Task.LAYOUT, None),
    ("question", Task.QUESTION, None),
    ("transcribe (Russian)", Task.TRANSCRIBE, "ru"),
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="show the hardware profile and a load plan for every model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--gpu", metavar="CC:VRAM_GB", help="plan for a hypothetical GPU, e.g. 12.0:16 (RTX 5070 Ti)")
    p.add_argument("--assume-flash-attn", action="store_true", help="with --gpu: treat flash-attn as usable")
    p.set_defaults(run=run)


def doctor_report(gpu: str | None = None, assume_flash_attn: bool = False) -> dict:
    from chatvlmllm.errors import UserError

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
    picks = {}
    for label, task, language in PICK_ROWS:
        best = pick_for_task(task, hw, catalog, language)
        entry = best.to_dict()
        entry["pick_ready"] = pick_for_task(task, hw, catalog, language, available=ready).key
        picks[label] = entry
    return {"hardware": hw.to_dict(), "models": models, "picks": picks}


def run(args: argparse.Namespace) -> int:
    report = doctor_report(args.gpu, args.assume_flash_attn)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    hw = report["hardware"]
    print("Hardware" + (" (hypothetical)" if hw["simulated"] else ""))
    for key in (
        "device",
        "gpu_name",
        "compute_capability",
        "vram_total_gb",
        "bf16_supported",
        "torch_version",
        "cuda_version",
        "torchvision_available",
        "flash_attn_version",
        "flash_attn_usable",
        "flash_attn_reason",
        "bitsandbytes_available",
        "cpu_count",
        "ram_total_gb",
    ):
        value = hw[key]
        if isinstance(value, float):
            value = f"{value:.1f}"
        print(f"  {key:22} {value}")
    print("\nBest model per task (ranked by public scores among those that fit; docs/models.md)")
    for label, pick in report["picks"].items():
        ready = f"; on disk now: {pick['pick_ready']}" if pick["pick_ready"] not in (None, pick["pick"]) else ""
        print(f"  {label:22} {pick['pick'] or '-':16} {pick['why']}{ready}")
    print("\nModels")
    for m in report["models"]:
        quant = f" {m['quantization']}" if m["quantization"] else ""
        print(f"  {m['key']:14} {m['status']:15} {m['attention']:18} {m['dtype']}{quant}  ({m['source']})")
        for reason in m["reasons"]:
            print(f"  {'':14} - {reason}")
    return 0
