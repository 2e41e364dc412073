"""`chatvlmllm doctor`: the hardware profile and, for every catalog model, its plan."""

from __future__ import annotations

import argparse
import json

from chatvlmllm.i18n import _
from chatvlmllm.models.doctor import doctor_report, readiness_words


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="show the hardware profile and a load plan for every model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--gpu", metavar="CC:VRAM_GB", help="plan for a hypothetical GPU, e.g. 12.0:16 (RTX 5070 Ti)")
    p.add_argument("--assume-flash-attn", action="store_true", help="with --gpu: treat flash-attn as usable")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = doctor_report(args.gpu, args.assume_flash_attn)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    hw = report["hardware"]
    print(_("Hardware (hypothetical)") if hw["simulated"] else _("Hardware"))
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
    print("\n" + _("Best model per task (ranked by public scores among those that fit; docs/models.md)"))
    for label, pick in report["picks"].items():
        ready = (
            "; " + _("on disk now: {model}").format(model=pick["pick_ready"])
            if pick["pick_ready"] not in (None, pick["pick"])
            else ""
        )
        print(f"  {label:22} {pick['pick'] or '-':16} {pick['why']}{ready}")
    print("\n" + _("Models"))
    for m in report["models"]:
        quant = f" {m['quantization']}" if m["quantization"] else ""
        status = readiness_words(m["status"])
        print(f"  {m['key']:14} {status:15} {m['attention']:18} {m['dtype']}{quant}  ({m['source']})")
        for reason in m["reasons"]:
            print(f"  {'':14} - {reason}")
    return 0
