"""What the benchmark scripts share: writing their JSON report, and CPU seconds that count child processes
(Tesseract runs as one). Imported by the scripts run as `python benchmarks/NAME.py` (this folder is then
first on sys.path)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any


def children_cpu() -> float:
    """CPU seconds used by finished child processes (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds() -> float:
    """This process's CPU seconds plus its finished children's."""
    return time.process_time() + children_cpu()


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Write `report` as indented JSON to `out` (its folder made if needed); the path written."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path
