"""`chatvlmllm bench EVAL_DIR`: measure catalog models on an evaluation folder (see chatvlmllm.eval.benchmark)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from chatvlmllm.i18n import _

DEFAULT_MODELS = "rapidocr,tesseract,ocr_auto"
DEFAULT_OUT = "artifacts/bench.json"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure models on an evaluation folder (CER, word F1, QA, latency)",
        description="Run models over an evaluation folder laid out like ../shared/eval (manifest.jsonl, truth/, "
        "qa.jsonl) and write JSON plus a CSV beside it.",
    )
    p.add_argument("eval_dir", metavar="EVAL_DIR", help="folder with manifest.jsonl, truth/ and qa.jsonl")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated catalog keys (default {DEFAULT_MODELS})")
    p.add_argument("--limit", type=int, help="at most N items, taken in turn from each kind")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"results JSON; the CSV goes beside it (default {DEFAULT_OUT})")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight at once (server backends run them in parallel; local engines queue them)",
    )
    p.set_defaults(run=run)


def _progress_bar() -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(done: int, total: int, label: str) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="req", file=sys.stderr, dynamic_ncols=True)
        bar["bar"].set_description(label)
        bar["bar"].n = done
        bar["bar"].refresh()

    def close() -> None:
        if "bar" in bar:
            bar["bar"].close()

    return update, close


def run(args: argparse.Namespace) -> int:
    from chatvlmllm.errors import UserError
    from chatvlmllm.eval.benchmark import run_benchmark, write_results

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    update, close = _progress_bar()
    try:
        results = run_benchmark(args.eval_dir, models, limit=args.limit, concurrency=args.concurrency, progress=update)
    finally:
        close()
    json_path, csv_path = write_results(results, args.out)
    print_table(results)
    print("\n" + _("wrote {json} and {csv}").format(json=json_path, csv=csv_path))
    if all(m.get("error") for m in results["models"].values()):
        raise UserError(
            "no model could be benchmarked: " + "; ".join(f"{k}: {m['error']}" for k, m in results["models"].items())
        )
    return 0


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_table(results: dict[str, Any]) -> None:
    """Models as rows: overall figures, then CER / word F1 per kind."""
    models = results["models"]
    kinds = sorted({kind for m in models.values() for kind in m.get("by_kind", {})})
    header = ["model", "n", "CER", "wordF1", "QA EM", "ANLS", "median s", "p95 s", "pages/s", "peak MB"]
    header += [f"{kind} CER/F1" for kind in kinds]
    print("\n" + " | ".join(header))
    for key, m in models.items():
        if m.get("error"):
            print(f"{key} | error: {m['error']}")
            continue
        cells = [key, str(m["n"]), _fmt(m["cer"]), _fmt(m["word_f1"]), _fmt(m["qa_exact"]), _fmt(m["anls"])]
        cells += [_fmt(m["latency_median_s"], 2), _fmt(m["latency_p95_s"], 2), _fmt(m["pages_per_s"], 2)]
        cells.append(_fmt(m.get("peak_rss_mb"), 0))
        for kind in kinds:
            figures = m["by_kind"].get(kind)
            cells.append(f"{_fmt(figures['cer'])} / {_fmt(figures['word_f1'])}" if figures else "—")
        print(" | ".join(cells))
