"""Which evaluation pages the offline "Table → Markdown" answer reads as a table: the figures behind
chatvlmllm.documents.box_table's threshold.

    python benchmarks/box_tables.py [--eval-dir ../shared/eval] [--out artifacts/box_tables.json]

Reads every receipt and page of the evaluation set with RapidOCR, downscaled as the `rapidocr` engine
does, and prints, per item, the share of its text lines that are grid rows, whether it is read as a
table and the table's size, then the range of the share per kind. Writes the figures as JSON.
The Russian single lines are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    parser.add_argument("--out", default=str(REPO / "artifacts" / "box_tables.json"))
    args = parser.parse_args()

    from chatvlmllm.documents.box_table import TABLE_LINE_SHARE, read_table
    from chatvlmllm.documents.loading import open_document
    from chatvlmllm.engines._ocr_readers import RapidReader
    from chatvlmllm.engines.base import fit_to_budget
    from chatvlmllm.models.catalog import load_catalog
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    reader = RapidReader()
    budget = plan_load(probe(), load_catalog()["rapidocr"]).max_pixels  # the engine's own downscale
    items = []
    for line in (Path(args.eval_dir) / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["id"].startswith("ru_line"):
            continue
        started = time.perf_counter()
        page = open_document(Path(args.eval_dir) / item["image"]).page(0).convert("RGB")
        rows = reader.read(fit_to_budget(page, budget))
        table = read_table(rows)
        items.append(
            {
                "id": item["id"],
                "kind": item["kind"],
                "lines": len(rows),
                "line_share": round(table.line_share, 3),
                "table": table.found,
                "table_rows": len(table.cells),
                "grid_columns": table.columns,
                "read_s": round(time.perf_counter() - started, 2),
            }
        )
        row = items[-1]
        print(
            f"{row['id']:22} {row['kind']:8} lines {row['lines']:3}  on grid {row['line_share']:.2f}  "
            + (
                f"table {row['table_rows']}×{row['grid_columns']}"
                if row["table"]
                else f"no table ({row['grid_columns']} column(s))"
            ),
            flush=True,
        )
    kinds = sorted({row["kind"] for row in items})
    ranges = {}
    for kind in kinds:
        shares = [row["line_share"] for row in items if row["kind"] == kind]
        ranges[kind] = {"min": min(shares), "max": max(shares), "n": len(shares)}
        print(f"{kind:8} on-grid share {min(shares):.2f}–{max(shares):.2f} over {len(shares)} items")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threshold": TABLE_LINE_SHARE, "ranges": ranges, "items": items}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
