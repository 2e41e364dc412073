"""Concurrency against `chatvlmllm serve`: throughput and latency at 1, 2 and 4 requests in flight.

Starts `chatvlmllm serve` on 127.0.0.1 with the tiny Qwen2-VL (built here, offline) or the
checkpoint given with --model-path, points an `openai` catalog entry at it and runs
`chatvlmllm bench`'s own runner (chatvlmllm.eval.benchmark.run_benchmark) over the evaluation set
at each concurrency. The server has one engine per model, so generations queue behind its
lock: what concurrency buys here is the overlap of image encoding, transfer and decoding
with generation. Quality figures of the random tiny model are meaningless; only timings count.

    python benchmarks/serve_concurrency.py [--eval-dir ../shared/eval] [--limit 12] [--levels 1,2,4]
                                           [--rounds 3] [--model-path DIR] [--out artifacts/serve_concurrency.json]

Levels run interleaved for `--rounds` rounds; each figure is the median over the rounds (every run
is kept in the JSON), which tames the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
ENTRY = "served_tiny"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    parser.add_argument("--limit", type=int, default=12, help="items per run (taken in turn from each kind)")
    parser.add_argument("--levels", default="1,2,4", help="concurrency levels, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs per level; figures are their medians")
    parser.add_argument("--model-path", help="checkpoint to serve (default: a tiny Qwen2-VL built now)")
    parser.add_argument("--out", default="artifacts/serve_concurrency.json")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    load_before = os.getloadavg()[0]  # other jobs on the machine skew every figure: record how busy it was

    from chatvlmllm.devtools.servers import running_server
    from chatvlmllm.eval.benchmark import run_benchmark

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.model_path) if args.model_path else tiny_model(Path(scratch) / "tiny_qwen2_vl")
        models_file = Path(scratch) / "models.toml"
        with running_server(["--model-path", str(folder)]) as base_url:
            models_file.write_text(
                f'[models.{ENTRY}]\nbackend = "openai"\nbase_url = "{base_url}"\nserved_model = "{folder.name}"\n',
                encoding="utf-8",
            )
            os.environ["CHATVLMLLM_MODELS_FILE"] = str(models_file)
            run_benchmark(args.eval_dir, [ENTRY], limit=1)  # warm-up: first-request costs stay out of the figures
            runs: list[dict] = []
            for round_number in range(1, args.rounds + 1):
                for level in levels:
                    figures = run_benchmark(args.eval_dir, [ENTRY], limit=args.limit, concurrency=level)
                    runs.append(run_row(round_number, level, figures["models"][ENTRY]))
                    print_row(runs[-1])
    rows = [median_row(level, [run for run in runs if run["concurrency"] == level]) for level in levels]
    print("\nmedians over the rounds:")
    for row in rows:
        print_row(row)

    result = {
        "what": "chatvlmllm serve, one model, OCR requests over the evaluation set through the openai engine",
        "model": str(args.model_path or "tiny Qwen2-VL (random weights, built offline)"),
        "eval_dir": args.eval_dir,
        "limit": args.limit,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [load_before, os.getloadavg()[0]],
        },
        "rounds": args.rounds,
        "rows": rows,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    print(json.dumps(result))
    return 0


def tiny_model(folder: Path) -> Path:
    from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(folder)


def run_row(round_number: int, level: int, figures: dict) -> dict:
    if figures.get("error"):
        raise SystemExit(f"benchmark failed: {figures['error']}")
    return {
        "round": round_number,
        "concurrency": level,
        "pages": figures["n"],
        "pages_per_s": figures["pages_per_s"],
        "latency_p50_s": figures["latency_median_s"],
        "latency_p95_s": figures["latency_p95_s"],
        "errors": figures["errors"],
    }


def median_row(level: int, runs: list[dict]) -> dict:
    row = {"concurrency": level, "pages": runs[0]["pages"], "errors": sum(run["errors"] for run in runs)}
    for key in ("pages_per_s", "latency_p50_s", "latency_p95_s"):
        row[key] = round(statistics.median(run[key] for run in runs), 3)
    return row


def print_row(row: dict) -> None:
    where = f"round {row['round']}, " if "round" in row else ""
    print(
        f"{where}concurrency {row['concurrency']}: {row['pages_per_s']:.2f} pages/s, "
        f"latency p50 {row['latency_p50_s']:.2f} s, p95 {row['latency_p95_s']:.2f} s "
        f"({row['pages']} pages, {row['errors']} errors)",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
