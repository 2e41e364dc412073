"""Each speed setting of the offline readers against the defaults, in one run on the dev split.

    python benchmarks/ocr_tuning.py [--eval-dir ../shared/eval] [--limit N] [--out artifacts/ocr_tuning.json]

RapidOCR settings are added one at a time (cumulative: defaults → + detector side limit → + no
angle classifier → + onnxruntime threads = cores → + recogniser input ≥ 160 px; recognition batch 12
on the threads setting); Tesseract's as
defaults (OpenMP unrestricted, layout analysis psm 3) → + OMP_THREAD_LIMIT=1 → + psm by page shape.
All configurations take turns on every item (alternating order), so they see the same background
load. Reported per configuration and kind: CER, word F1, median wall seconds and median CPU seconds
(CPU time is steadier than wall time on a shared machine). RapidOCR runs on the English items (its
bundled models have no Cyrillic); Tesseract on all of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, write_report  # benchmarks/ is first on sys.path

REPO = Path(__file__).resolve().parents[1]


def rapid_configs() -> dict[str, dict[str, Any]]:
    from chatvlmllm.engines._ocr_readers import (
        DEFAULT_RAPID_PARAMS,
        DETECTOR_MAX_SIDE,
        REC_HEIGHT,
        REC_MIN_WIDTH,
        available_cores,
    )

    det = {**DEFAULT_RAPID_PARAMS, "Det.limit_type": "max", "Det.limit_side_len": DETECTOR_MAX_SIDE}
    no_cls = {**det, "Global.use_cls": False}
    threads = {
        **no_cls,
        "EngineConfig.onnxruntime.intra_op_num_threads": available_cores(),
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    return {
        "rapidocr defaults": dict(DEFAULT_RAPID_PARAMS),
        "+ detector long side ≤ 1280": det,
        "+ angle classifier off": no_cls,
        "+ onnxruntime threads = cores": threads,
        "+ recogniser input ≥ 160 px (adopted; lines sorted by shape in every configuration)": {
            **threads,
            "Rec.rec_img_shape": [3, REC_HEIGHT, REC_MIN_WIDTH],
        },
        "+ recognition batch 12": {**threads, "Rec.rec_batch_num": 12},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", default=str(REPO / "artifacts" / "ocr_tuning.json"))
    args = parser.parse_args()

    from chatvlmllm.documents.loading import open_document
    from chatvlmllm.documents.reading_order import lines_text
    from chatvlmllm.engines._ocr_readers import Psm, RapidReader, TesseractReader
    from chatvlmllm.eval import metrics as em
    from chatvlmllm.eval.benchmark import load_eval_set

    eval_set = load_eval_set(args.eval_dir).limited(args.limit)
    rapid = {name: RapidReader(params) for name, params in rapid_configs().items()}
    tesseract = {
        "tesseract defaults (OpenMP unrestricted, psm 3)": TesseractReader(threads=0, psm=Psm.AUTO),
        "+ OMP_THREAD_LIMIT=1": TesseractReader(threads=1, psm=Psm.AUTO),
        "+ psm by page shape (adopted)": TesseractReader(threads=1),
    }
    language = {"en": "eng", "ru": "rus"}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in [*rapid, *tesseract]}
    load_start = round(os.getloadavg()[0], 2)
    for index, item in enumerate(eval_set.items):
        image = open_document(item.image).page(0).convert("RGB")
        jobs: list[tuple[str, Any, str | None]] = [
            (name, reader, None) for name, reader in rapid.items() if item.lang == "en"
        ]
        jobs += [(name, reader, language.get(item.lang, "eng")) for name, reader in tesseract.items()]
        for name, reader, lang in jobs if index % 2 == 0 else jobs[::-1]:
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            lines = reader.read(image) if lang is None else reader.read(image, lang)
            wall = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            text = lines_text(lines)
            rows[name].append(
                {
                    "id": item.id,
                    "kind": item.kind,
                    "cer": em.cer(text, item.truth),
                    "word_f1": em.word_f1(text, item.truth),
                    "wall_s": wall,
                    "cpu_s": cpu,
                }
            )
        print(f"{index + 1}/{len(eval_set.items)} {item.id}", file=sys.stderr, flush=True)
    report = {
        "n_items": len(eval_set.items),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_start": load_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "configs": {name: summarise(measured) for name, measured in rows.items()},
    }
    out = write_report(report, args.out)
    print_report(report)
    print(f"wrote {out}")
    return 0


def summarise(measured: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in measured:
        by_kind.setdefault("page" if row["kind"] not in ("receipt", "text_line") else row["kind"], []).append(row)
    return {kind: _figures(group) for kind, group in sorted(by_kind.items())}


def _figures(group: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "n": len(group),
        "cer": round(statistics.mean(r["cer"] for r in group), 4),
        "word_f1": round(statistics.mean(r["word_f1"] for r in group), 4),
        "median_wall_s": round(statistics.median(r["wall_s"] for r in group), 3),
        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in group), 3),
        "total_cpu_s": round(sum(r["cpu_s"] for r in group), 2),
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{report['n_items']} items, {report['cpu_count']} cores, load average "
        f"{report['load_average_1m_at_start']} → {report['load_average_1m_at_end']}"
    )
    print("| configuration | kind | n | CER | word F1 | median wall s | median CPU s | total CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, kinds in report["configs"].items():
        for kind, f in kinds.items():
            print(
                f"| {name} | {kind} | {f['n']} | {f['cer']:.3f} | {f['word_f1']:.3f} | {f['median_wall_s']:.2f} | "
                f"{f['median_cpu_s']:.2f} | {f['total_cpu_s']:.1f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
