"""Offline OCR engines side by side on the evaluation set: the figures behind docs/benchmark.md.

    python benchmarks/ocr_engines.py [--eval-dir ../shared/eval] [--models rapidocr,tesseract,ocr_auto]
                                     [--limit N] [--out artifacts/ocr_engines.json] [--no-rss-page]

The same run as `chatvlmllm bench`: the engines take turns on every item (interleaved, so each sees
the same background load); prints the Markdown table (per kind and overall: CER, word F1, median and
p95 s/page, peak RSS), writes the JSON and CSV, and ends with one JSON line of the headline figures.
It then reads the 2000×2468 page (page_multicol_02) once per engine, each in a fresh process, and
records that process's peak RSS (`rss_page` in the JSON): the memory a user's machine needs.
The machine (CPU model, cores, load average at start and end, engine versions) is in `machine`.

`--paired` adds a latency comparison that is fair on a shared machine: the engines, and raw RapidOCR
with its library defaults (no project code: the baseline of the speed target), take turns on every
item (alternating which goes first), so all see the same background load; it reports each engine's
median over raw RapidOCR's on the same pages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _common import cpu_seconds, write_report  # benchmarks/ is first on sys.path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    parser.add_argument("--models", default="rapidocr,tesseract,ocr_auto")
    parser.add_argument("--no-rss-page", action="store_true", help="skip the fresh-process peak RSS on the large page")
    parser.add_argument(
        "--rss-page-only", action="store_true", help="only the fresh-process peak RSS on the large page"
    )
    parser.add_argument("--limit", type=int)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "artifacts" / "ocr_engines.json"))
    parser.add_argument("--paired", action="store_true", help="also time the engines taking turns on each item")
    parser.add_argument("--paired-only", action="store_true", help="only the paired latency comparison")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.rss_page_only:
        print(json.dumps(rss_on_large_page(Path(args.eval_dir) / "images" / RSS_PAGE, models), indent=2))
        return 0
    if args.paired_only:
        paired = paired_latency(args.eval_dir, models, args.limit)
        print_paired(paired)
        print(f"wrote {write_report(paired, Path(args.out).with_name(Path(args.out).stem + '_paired.json'))}")
        return 0

    from tqdm import tqdm

    from chatvlmllm.eval.benchmark import markdown_table, run_benchmark, write_results

    bar = tqdm(unit="req", file=sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_description(label)
        bar.n = done
        bar.refresh()

    results = run_benchmark(args.eval_dir, models, limit=args.limit, concurrency=args.concurrency, progress=progress)
    bar.close()
    if args.paired:
        results["paired_latency"] = paired_latency(args.eval_dir, models, args.limit)
    if not args.no_rss_page:
        results["rss_page"] = rss_on_large_page(Path(args.eval_dir) / "images" / RSS_PAGE, models)
    json_path, csv_path = write_results(results, args.out)
    machine = results["machine"]
    print(
        f"{results['created']} · {machine.get('cpu_model')} · {machine['cpu_count']} cores · {machine['platform']} · "
        f"load average {machine['load_average_1m']} → {machine['load_average_1m_at_end']} · {machine.get('versions')}"
    )
    print(markdown_table(results))
    for key, figures in results.get("rss_page", {}).items():
        print(f"peak RSS reading {RSS_PAGE} in a fresh process, {key}: {figures}")
    if args.paired:
        print_paired(results["paired_latency"])
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
    print("\nREADME table:\n" + readme_table(results))
    print(json.dumps(headline))
    return 0


def readme_table(results: dict) -> str:
    """Kinds as rows, engines as columns: CER / word F1 / median s / p95 s / peak RSS MB; the best CER in bold."""
    models = {key: m for key, m in results["models"].items() if not m.get("error")}
    kinds = sorted({kind for m in models.values() for kind in m.get("by_kind", {})})
    header = "| kind (n) | " + " | ".join(f"{key} CER / word F1 / median s / p95 s / RSS MB" for key in models) + " |"
    lines = [header, "|---|" + "---|" * len(models)]
    for kind in [*kinds, "all"]:
        figures = {key: (m if kind == "all" else m["by_kind"].get(kind, {})) for key, m in models.items()}
        best = min((f["cer"] for f in figures.values() if f.get("cer") is not None), default=None)
        n = next((f.get("n") for f in figures.values() if f.get("n")), 0)
        cells = []
        for f in figures.values():
            if f.get("cer") is None:
                cells.append("—")
                continue
            cer = f"**{f['cer']:.3f}**" if f["cer"] == best else f"{f['cer']:.3f}"
            cells.append(
                f"{cer} / {f['word_f1']:.3f} / {f['latency_median_s']:.2f} / {f['latency_p95_s']:.2f} / "
                f"{f.get('peak_rss_mb') or 0:.0f}"
            )
        lines.append(f"| {'**all**' if kind == 'all' else kind} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


RSS_PAGE = "page_multicol_02.png"  # 2000×2468, the reference page
_RSS_SCRIPT = """
import json, sys, threading, time
import psutil
from chatvlmllm.chat.engine_cache import EngineCache
from chatvlmllm.models.catalog import get_model
from chatvlmllm.documents.loading import open_document
from chatvlmllm.engines import GenerationSettings, Message
from chatvlmllm.models.hardware import probe
from chatvlmllm.models.planner import plan_load
me = psutil.Process()
peak = {"process": 0, "tree": 0}
done = threading.Event()
def sample():  # this process, and this process plus its children (a Tesseract subprocess) at the same moment
    while not done.wait(0.02):
        try:
            own = me.memory_info().rss
            children = sum(c.memory_info().rss for c in me.children(recursive=True))
        except psutil.Error:
            continue
        peak["process"] = max(peak["process"], own)
        peak["tree"] = max(peak["tree"], own + children)
threading.Thread(target=sample, daemon=True).start()
spec = get_model(sys.argv[1])
engine = EngineCache().get(spec, plan_load(probe(), spec))
image = open_document(sys.argv[2]).page(0)
started = time.perf_counter()
settings = GenerationSettings(options={"ocr_cache": False})
stream = engine.stream([Message("user", "Extract all text", [image])], settings)
text = stream.consume()
seconds = time.perf_counter() - started
done.set()
mb = lambda value: round(value / 1e6, 1)
print(json.dumps({"peak_rss_mb": mb(peak["process"]), "peak_rss_with_children_mb": mb(peak["tree"]),
                  "seconds": round(seconds, 2), "chars": len(text), "size": list(image.size),
                  "read_by": [p["engine"] for p in stream.extras.get("pages", [])]}))
"""


def rss_on_large_page(page: Path, models: list[str]) -> dict:
    """Each engine reads the page in its own fresh process; that process's peak RSS (ru_maxrss) is the figure."""
    import subprocess

    found: dict = {}
    for key in models:
        done = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, key, str(page)], capture_output=True, text=True, cwd=REPO, check=False
        )
        last = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
        found[key] = json.loads(last[0]) if last else {"error": done.stderr.strip().splitlines()[-1:]}
    return found


def paired_latency(eval_dir: str, models: list[str], limit: int | None) -> dict:
    """Seconds per page (and CER) for each engine and raw RapidOCR, taking turns on every item."""
    from chatvlmllm.eval.benchmark import load_eval_set

    eval_set = load_eval_set(eval_dir).limited(limit)
    load_start = round(os.getloadavg()[0], 2)
    measured = _paired_run(eval_set.items, models)
    report: dict = {
        "n_items": len(eval_set.items),
        "load_average_1m_at_start": load_start,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "models": {key: _paired_figures(rows) for key, rows in measured.items()},
    }
    report["ratio_to_raw_rapidocr"] = _ratios(report["models"])
    return report


def _paired_run(items: list, models: list[str]) -> dict[str, list[dict]]:
    """Every item read by every engine in turn (alternating which goes first): kind, seconds, CER, word F1."""
    import time

    from tqdm import tqdm

    from chatvlmllm.chat.engine_cache import EngineCache
    from chatvlmllm.documents.loading import open_document
    from chatvlmllm.documents.scripts import wrong_script_words
    from chatvlmllm.engines import GenerationSettings, Message
    from chatvlmllm.eval import metrics as em
    from chatvlmllm.eval.benchmark import OCR_PROMPT
    from chatvlmllm.models.catalog import get_model
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    cache = EngineCache()
    engines = {key: cache.get(get_model(key), plan_load(probe(), get_model(key))) for key in models}
    raw = raw_rapidocr()

    def read(key: str, image, settings) -> str:
        if key == RAW_RAPIDOCR:
            return raw(image)
        return engines[key].stream([Message("user", OCR_PROMPT, [image])], settings).consume()

    names = [*models, RAW_RAPIDOCR]
    warm = open_document(items[0].image).page(0)
    for key in names:  # warm-up: the first call pays one-off costs
        read(key, warm, GenerationSettings(options={"ocr_cache": False}))
    measured: dict[str, list[dict]] = {key: [] for key in names}
    for index, item in enumerate(tqdm(items, unit="item", file=sys.stderr)):
        image = open_document(item.image).page(0)
        settings = GenerationSettings(options={"lang": item.lang, "ocr_cache": False})
        for key in names if index % 2 == 0 else names[::-1]:
            started, cpu_started = time.perf_counter(), cpu_seconds()
            text = read(key, image, settings)
            seconds, cpu_s = time.perf_counter() - started, cpu_seconds() - cpu_started
            measured[key].append(
                {
                    "id": item.id,
                    "kind": item.kind,
                    "seconds": seconds,
                    "cpu_s": cpu_s,
                    "cer": em.cer(text, item.truth),
                    "word_f1": em.word_f1(text, item.truth),
                    "wrong_script_words": wrong_script_words(text, item.lang),
                }
            )
    cache.unload()
    return measured


def _paired_figures(rows: list[dict]) -> dict:
    import statistics

    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    pages = [row["seconds"] for row in rows if row["kind"] not in ("receipt", "text_line")]

    def figures(group: list[dict]) -> dict:
        return {
            "n": len(group),
            "cer": round(statistics.mean(r["cer"] for r in group), 4),
            "word_f1": round(statistics.mean(r["word_f1"] for r in group), 4),
            "wrong_script_words": sum(r["wrong_script_words"] for r in group),
            "median_s": round(statistics.median(r["seconds"] for r in group), 3),
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in group), 3),
        }

    return {
        **figures(rows),
        "full_page_median_s": round(statistics.median(pages), 3) if pages else None,
        "by_kind": {kind: figures(group) for kind, group in sorted(by_kind.items())},
        "items": rows,
    }


RAW_RAPIDOCR = "raw rapidocr (library defaults)"


def raw_rapidocr():
    """RapidOCR as a user would call it out of the box: its default settings, the whole page, no project code."""
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})

    def read(image) -> str:
        result = engine(image.convert("RGB"))
        return "\n".join(result.txts or ()) if getattr(result, "txts", None) else ""

    return read


def _ratios(models: dict) -> dict:
    """Each engine's median seconds over raw RapidOCR's on the same pages (full pages, and every item)."""
    raw = models[RAW_RAPIDOCR]
    raw_page = raw["full_page_median_s"]
    return {
        key: {
            "full_page": round(m["full_page_median_s"] / raw_page, 3) if raw_page and m["full_page_median_s"] else None,
            "all": round(m["median_s"] / raw["median_s"], 3),
            "receipt": round(m["by_kind"]["receipt"]["median_s"] / raw["by_kind"]["receipt"]["median_s"], 3)
            if "receipt" in m["by_kind"]
            else None,
        }
        for key, m in models.items()
        if key != RAW_RAPIDOCR
    }


def print_paired(paired: dict) -> None:
    print(
        f"\nPaired run (engines take turns on each of {paired['n_items']} items; load average "
        f"{paired['load_average_1m_at_start']} → {paired['load_average_1m_at_end']}): "
        "CER / word F1 / median s / median CPU s"
    )
    kinds = sorted({kind for m in paired["models"].values() for kind in m["by_kind"]})
    print("| engine | " + " | ".join(kinds) + " | all | full pages median s |")
    print("|---|" + "---|" * (len(kinds) + 2))
    for key, m in paired["models"].items():
        cells = [_cell(m["by_kind"][kind]) if kind in m["by_kind"] else "—" for kind in kinds]
        overall = _cell(m)
        print(f"| {key} | " + " | ".join(cells) + f" | {overall} | {m['full_page_median_s'] or 0:.2f} |")
    for key, ratio in paired.get("ratio_to_raw_rapidocr", {}).items():
        print(f"  {key} / {RAW_RAPIDOCR}: full pages {ratio['full_page']}, all items {ratio['all']}")
    for key, m in paired["models"].items():
        print(f"  {key}: words in the other alphabet's letters: {m['wrong_script_words']}")


def _cell(figures: dict) -> str:
    return (
        f"{figures['cer']:.3f} / {figures['word_f1']:.3f} / {figures['median_s']:.2f} / {figures['median_cpu_s']:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
