"""Offline OCR engines side by side on the evaluation set: the figures behind docs/benchmark.md.

    python benchmarks/ocr_engines.py [--eval-dir ../shared/eval] [--models rapidocr,tesseract]
                                     [--limit N] [--concurrency N] [--out artifacts/ocr_engines.json]

The same run as `chatvlmllm bench`; prints the Markdown table (per kind and overall), writes the
JSON and CSV, and ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    parser.add_argument("--models", default="rapidocr,tesseract")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "artifacts" / "ocr_engines.json"))
    args = parser.parse_args()

    from tqdm import tqdm

    from chatvlmllm.evaluation import markdown_table, run_benchmark, write_results

    bar = tqdm(unit="req", file=sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_description(label)
        bar.n = done
        bar.refresh()

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = run_benchmark(args.eval_dir, models, limit=args.limit, concurrency=args.concurrency, progress=progress)
    bar.close()
    json_path, csv_path = write_results(results, args.out)
    machine = results["machine"]
    print(f"{results['created']} · {machine['platform']} · {machine['cpu_count']} cores · device {machine['device']}")
    print(markdown_table(results))
    print(f"wrote {json_path} and {csv_path}")
    headline = {
        key: {
            "cer": m.get("cer"),
            "receipt_cer": m.get("by_kind", {}).get("receipt", {}).get("cer"),
            "latency_median_s": m.get("latency_median_s"),
            "pages_per_s": m.get("pages_per_s"),
        }
        for key, m in results["models"].items()
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
