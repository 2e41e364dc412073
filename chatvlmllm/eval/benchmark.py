"""The benchmark: run catalog models over an evaluation folder and measure them.

The folder has the layout of ../shared/eval:

- `manifest.jsonl`: one item per line: id, image, truth, lang, kind (receipt, text_line, table...);
- `truth/<id>.txt`: the transcript, one text line per line;
- `qa.jsonl` (optional): id, question, answers (accepted), field.

Per model: CER and word F1 (eval_metrics), QA exact match and ANLS for chat-capable models (null
for OCR-only ones), latency median/p95, pages/s, peak memory, and the same text metrics per kind
and per language. `--concurrency N` keeps N requests in flight: a server backend (`openai`) gets one
client kept busy with N requests and the server runs them in parallel; a local model is loaded once and runs one
generation at a time, so its requests queue (latency is counted from when a request starts running,
throughput over the whole run).
"""

from __future__ import annotations

import json
import platform
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

from chatvlmllm.decisions import Backend
from chatvlmllm.documents.scripts import wrong_script_words
from chatvlmllm.errors import UserError
from chatvlmllm.eval import metrics as em
from chatvlmllm.i18n import N_, SOURCE_LANGUAGE, _
from chatvlmllm.models.tasks import OCR_PROMPT
from chatvlmllm.settings import settings

QA_PROMPT = "{question}\nAnswer with the value exactly as written on the document, and nothing else."
OCR_MAX_NEW_TOKENS = 4096


def ocr_options(item: EvalItem) -> dict[str, Any]:
    """Per-request options of a benchmark OCR request: the item's language, and no OCR cache (every page is
    really read, also on a re-run)."""
    return {"lang": item.lang, "ocr_cache": False}


QA_MAX_NEW_TOKENS = 128

# progress(done, total, label): the CLI draws a tqdm bar with it, the Benchmark page a st.progress.
ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalItem:
    id: str
    image: Path
    truth: str
    lang: str
    kind: str


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    field: str = ""


@dataclass
class EvalSet:
    folder: Path
    items: list[EvalItem]
    qa: list[QaItem] = field(default_factory=list)

    def limited(self, limit: int | None) -> EvalSet:
        """At most `limit` items, taken in turn from each kind so a short run still covers them all."""
        if limit is None or limit >= len(self.items):
            return self
        by_kind: dict[str, list[EvalItem]] = {}
        for item in self.items:
            by_kind.setdefault(item.kind, []).append(item)
        interleaved = [item for group in zip_longest(*by_kind.values()) for item in group if item is not None]
        items = interleaved[:limit]
        kept = {item.id for item in items}
        return EvalSet(self.folder, items, [q for q in self.qa if q.id in kept])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                _("{file}, line {line}: not valid JSON ({error})").format(file=path, line=number, error=exc.msg)
            ) from None
        if not isinstance(row, dict):
            raise UserError(_("{file}, line {line}: expected a JSON object").format(file=path, line=number))
        rows.append(row)
    return rows


def load_eval_set(folder: str | Path) -> EvalSet:
    """Read manifest.jsonl, truth/ and qa.jsonl; every problem is a UserError naming the file."""
    folder = Path(folder).expanduser()
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        raise UserError(
            _(
                "{folder} is not an evaluation folder: no manifest.jsonl there "
                "(expected manifest.jsonl, truth/ and optionally qa.jsonl, like ../shared/eval)"
            ).format(folder=folder)
        )
    items = []
    for number, row in enumerate(_read_jsonl(manifest), start=1):
        missing = [k for k in ("id", "image", "truth") if not row.get(k)]
        if missing:
            raise UserError(
                _("{file}, item {item}: missing {fields}").format(file=manifest, item=number, fields=", ".join(missing))
            )
        image, truth = folder / row["image"], folder / row["truth"]
        for path in (image, truth):
            if not path.is_file():
                raise UserError(
                    _("{file}: item {item} points at {path}, which does not exist").format(
                        file=manifest, item=row["id"], path=path
                    )
                )
        items.append(
            EvalItem(
                id=str(row["id"]),
                image=image,
                truth=truth.read_text(encoding="utf-8"),
                lang=str(row.get("lang") or "en"),
                kind=str(row.get("kind") or "document"),
            )
        )
    if not items:
        raise UserError(_("{file} lists no items").format(file=manifest))
    qa = []
    qa_file = folder / "qa.jsonl"
    if qa_file.is_file():
        item_ids = {item.id for item in items}
        for line, row in enumerate(_read_jsonl(qa_file), start=1):
            answers = row.get("answers") or []
            if row.get("id") and str(row["id"]) not in item_ids:
                raise UserError(
                    _("{file}, question {line}: id {item} is not in {manifest}").format(
                        file=qa_file, line=line, item=repr(row["id"]), manifest=manifest.name
                    )
                )
            if row.get("id") and row.get("question") and answers:
                qa.append(
                    QaItem(str(row["id"]), str(row["question"]), tuple(map(str, answers)), str(row.get("field", "")))
                )
    return EvalSet(folder, items, qa)


# -- measuring ------------------------------------------------------------------------------


class PeakMemory:
    """Samples this process's resident memory on a thread; `peak_mb` is the highest seen."""

    def __init__(self, interval_s: float = 0.05):
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._sample, name="chatvlmllm-peak-memory", daemon=True)

    def _rss_mb(self) -> float:
        return self._process.memory_info().rss / 1e6

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())


@dataclass
class Outcome:
    """One request: the text it returned, its latency, and the error if it failed."""

    text: str = ""
    seconds: float = 0.0
    error: str | None = None
    peak_vram_mb: float | None = None
    read_by: list[str] | None = None  # offline OCR: the engine that read each page (ocr_auto's choice)


def _ask(engine: Any, prompt: str, image: Any, settings: Any) -> Outcome:
    from chatvlmllm.engines import Message

    started = time.perf_counter()
    try:
        stream = engine.stream([Message("user", prompt, [image])], settings)
        text = stream.consume()
    except Exception as exc:  # one failed page must not lose the others
        return Outcome(seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    metrics = stream.metrics
    pages = stream.extras.get("pages") if isinstance(stream.extras, dict) else None
    read_by = [str(page.get("engine")) for page in pages] if isinstance(pages, list) else None
    return Outcome(text, time.perf_counter() - started, None, metrics.peak_vram_mb if metrics else None, read_by)


def _run_all(
    jobs: Sequence[Callable[[], Outcome]],
    concurrency: int,
    progress: ProgressCallback | None,
    label: str,
    done_before: int,
    total: int,
) -> tuple[list[Outcome], float]:
    """Run the jobs `concurrency` at a time; returns outcomes in job order and the wall time."""
    outcomes: list[Outcome | None] = [None] * len(jobs)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="chatvlmllm-bench") as pool:
        futures = {pool.submit(job): index for index, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            outcomes[futures[future]] = future.result()
            if progress:
                progress(done_before + done, total, label)
    return [o for o in outcomes if o is not None], time.perf_counter() - started


def _engine_pool(spec: Any, plan: Any, cache: Any, concurrency: int) -> queue.Queue:
    """The engine, once per request allowed in flight at the same time.

    A server backend keeps several requests in flight through one client (the server runs them
    in parallel), so it is handed to every worker. A local model loads its weights once and
    generates one answer at a time: one slot, and the workers queue for it.
    """
    engine = cache.get(spec, plan)
    engines: queue.Queue = queue.Queue()
    for _copy in range(concurrency if spec.family_info().backend == Backend.OPENAI else 1):
        engines.put(engine)
    return engines


def _with_engine(engines: queue.Queue, prompt: str, image_path: Path, settings: Any) -> Outcome:
    """Open the page, wait for a free engine, ask. Latency covers the request only: not decoding the
    file, not the wait in line. Pages are opened one at a time so large scans are not all in memory."""
    try:
        image = _open_image(image_path)
    except UserError as exc:  # a corrupt scan is one failed page, not a failed run
        return Outcome(error=str(exc))
    engine = engines.get()
    try:
        return _ask(engine, prompt, image, settings)
    finally:
        engines.put(engine)


def _text_scores(outcomes: Sequence[Outcome], items: Sequence[EvalItem]) -> list[dict[str, Any]]:
    rows = []
    for item, outcome in zip(items, outcomes, strict=True):
        # A failed page counts as an empty transcript: CER 1, word F1 0.
        rows.append(
            {
                "id": item.id,
                "kind": item.kind,
                "lang": item.lang,
                "cer": round(em.cer(outcome.text, item.truth), 4),
                "cer_nocase": round(em.cer(outcome.text.casefold(), item.truth.casefold()), 4),
                "word_f1": round(em.word_f1(outcome.text, item.truth), 4),
                # Words with letters of the other alphabet (Cyrillic on an English page): look-alikes misread.
                "wrong_script_words": wrong_script_words(outcome.text, item.lang),
                "latency_s": round(outcome.seconds, 4),
                "error": outcome.error,
                "read_by": outcome.read_by,
                "text": outcome.text,
            }
        )
    return rows


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cer": _round(em.mean(r["cer"] for r in rows)),
        "word_f1": _round(em.mean(r["word_f1"] for r in rows)),
        "n": len(rows),
        # Case-insensitive CER: SROIE's receipt transcripts are all upper case, whatever the print.
        "cer_nocase": _round(em.mean(r["cer_nocase"] for r in rows)),
        "wrong_script_words": sum(r["wrong_script_words"] for r in rows),
        "latency_median_s": _round(em.percentile([r["latency_s"] for r in rows if r["error"] is None], 50)),
        "latency_p95_s": _round(em.percentile([r["latency_s"] for r in rows if r["error"] is None], 95)),
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return round(value, digits) if value is not None else None


def _grouped(rows: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return {name: _summary(members) for name, members in groups.items()}


def _open_image(path: Path) -> Any:
    from chatvlmllm.documents.loading import open_document

    return open_document(path).page(0)


def _failed_model(key: str, error: str, concurrency: int) -> dict[str, Any]:
    return {
        "error": error,
        "cer": None,
        "cer_nocase": None,
        "word_f1": None,
        "qa_exact": None,
        "anls": None,
        "latency_median_s": None,
        "latency_p95_s": None,
        "pages_per_s": None,
        "n": 0,
        "concurrency": concurrency,
        "by_kind": {},
    }


def benchmark_model(
    key: str,
    eval_set: EvalSet,
    *,
    hardware: Any,
    cache: Any,
    concurrency: int = 1,
    progress: ProgressCallback | None = None,
    done_before: int = 0,
    total: int | None = None,
) -> dict[str, Any]:
    """Measure one catalog model on the evaluation set (OCR on every item, QA when it can chat)."""
    from chatvlmllm.models.catalog import get_model
    from chatvlmllm.models.planner import plan_load

    spec = get_model(key)
    plan = plan_load(hardware, spec)
    if not plan.runnable:
        return _failed_model(key, f"cannot run here: {plan.why_not(SOURCE_LANGUAGE)}", concurrency)  # the JSON: English
    started = time.perf_counter()
    try:
        engines = _engine_pool(spec, plan, cache, concurrency)
    except Exception as exc:  # the error is the result for this model; the others still run
        return _failed_model(key, f"failed to load: {exc}", concurrency)
    load_s = time.perf_counter() - started
    qa = [q for q in eval_set.qa if "chat" in spec.caps]
    total = total if total is not None else len(eval_set.items) + len(qa)
    load_average = _load_average()
    with PeakMemory() as memory:
        ocr, wall_s = _run_all(_ocr_jobs(engines, eval_set), concurrency, progress, f"{key}: OCR", done_before, total)
        qa_outcomes, _qa_wall_s = _run_all(
            _qa_jobs(engines, eval_set, qa), concurrency, progress, f"{key}: QA", done_before + len(ocr), total
        )
    latencies = [o.seconds for o in ocr if o.error is None]
    vram = [o.peak_vram_mb for o in [*ocr, *qa_outcomes] if o.peak_vram_mb is not None]
    result = _model_result(
        ocr,
        _text_scores(ocr, eval_set.items),
        plan,
        pages_per_s=_round(len(latencies) / wall_s if wall_s > 0 else None),
        concurrency=concurrency,
        parallel_requests=engines.qsize(),
        load_average=load_average,
        load_s=load_s,
        peak_rss_mb=round(memory.peak_mb, 1),
        peak_vram_mb=max(vram) if vram else None,
    )
    if qa:
        result.update(_qa_figures(qa_outcomes, qa))
    return result


def _ocr_jobs(engines: queue.Queue, eval_set: EvalSet) -> list[Callable[[], Outcome]]:
    from chatvlmllm.engines import GenerationSettings

    image_paths = {item.id: item.image for item in eval_set.items}

    def job(item: EvalItem) -> Callable[[], Outcome]:
        settings = GenerationSettings(max_new_tokens=OCR_MAX_NEW_TOKENS, options=ocr_options(item))
        return lambda: _with_engine(engines, OCR_PROMPT, image_paths[item.id], settings)

    return [job(item) for item in eval_set.items]


def _qa_jobs(engines: queue.Queue, eval_set: EvalSet, qa: Sequence[QaItem]) -> list[Callable[[], Outcome]]:
    from chatvlmllm.engines import GenerationSettings

    image_paths = {item.id: item.image for item in eval_set.items}

    def job(question: QaItem) -> Callable[[], Outcome]:
        settings = GenerationSettings(max_new_tokens=QA_MAX_NEW_TOKENS)
        prompt = QA_PROMPT.format(question=question.question)
        return lambda: _with_engine(engines, prompt, image_paths[question.id], settings)

    return [job(question) for question in qa]


def _model_result(
    outcomes: Sequence[Outcome],
    rows: list[dict[str, Any]],
    plan: Any,
    *,
    pages_per_s: float | None,
    concurrency: int,
    parallel_requests: int,
    load_average: float | None,
    load_s: float,
    peak_rss_mb: float | None,
    peak_vram_mb: float | None,
    by_kind: dict[str, dict[str, Any]] | None = None,
    interleaved: bool = False,
) -> dict[str, Any]:
    """One model's figures from its OCR outcomes and their scored `rows` (QA left empty: `_qa_figures`
    fills it in for a model that chats)."""
    latencies = [o.seconds for o in outcomes if o.error is None]
    return {
        **_summary(rows),
        "qa_exact": None,
        "anls": None,
        "qa_n": 0,
        "latency_median_s": _round(em.percentile(latencies, 50)),
        "latency_p95_s": _round(em.percentile(latencies, 95)),
        "pages_per_s": pages_per_s,
        "errors": sum(1 for o in outcomes if o.error),
        "concurrency": concurrency,
        "parallel_requests": parallel_requests,
        **({"interleaved": True} if interleaved else {}),
        "load_average_1m_at_start": load_average,
        "load_s": round(load_s, 3),
        "peak_rss_mb": peak_rss_mb,
        "peak_vram_mb": peak_vram_mb,
        "device": plan.device,
        "attention": plan.attention,
        "dtype": plan.dtype,
        "by_kind": by_kind if by_kind is not None else _grouped(rows, "kind"),
        "by_lang": _grouped(rows, "lang"),
        "items": rows,
    }


def _qa_figures(outcomes: Sequence[Outcome], qa: Sequence[QaItem]) -> dict[str, Any]:
    pairs = list(zip(outcomes, qa, strict=True))
    return {
        "qa_exact": _round(em.mean(em.exact_match(o.text, q.answers) for o, q in pairs)),
        "anls": _round(em.mean(em.anls(o.text, q.answers) for o, q in pairs)),
        "qa_n": len(qa),
    }


def interleavable(specs: Sequence[Any], concurrency: int) -> bool:
    """Local OCR-only engines, one request at a time: run them taking turns on every item, so each
    sees the same background load (a shared machine's load drifts over a run of minutes)."""
    return concurrency == 1 and len(specs) > 1 and all(s.family_info().backend == "classic" for s in specs)


@dataclass
class _Loaded:
    """The models an interleaved run loaded (engine, plan, seconds to load), and the ones that failed."""

    engines: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    load_s: dict[str, float] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Turns:
    """What each model read in an interleaved run: outcomes in item order, peak RSS per kind, busy time."""

    outcomes: dict[str, list[Outcome]]
    rss: dict[str, dict[str, float]]
    busy_s: dict[str, float]


def benchmark_interleaved(
    specs: Sequence[Any],
    eval_set: EvalSet,
    *,
    hardware: Any,
    cache: Any,
    progress: ProgressCallback | None = None,
) -> dict[str, dict[str, Any]]:
    """Every model on every item, the models taking turns (alternating which goes first); per model the
    same figures as benchmark_model, plus the process's peak RSS while that model read each kind."""
    loaded = _load_each(specs, hardware, cache)
    load_average = _load_average()
    turns = _take_turns(loaded.engines, eval_set, progress)
    results = dict(loaded.failed)
    for key in loaded.engines:
        results[key] = _interleaved_result(key, turns, eval_set, loaded, load_average)
    return {spec.key: results[spec.key] for spec in specs}


def _load_each(specs: Sequence[Any], hardware: Any, cache: Any) -> _Loaded:
    from chatvlmllm.models.planner import plan_load

    loaded = _Loaded()
    for spec in specs:
        plan = plan_load(hardware, spec)
        if not plan.runnable:
            loaded.failed[spec.key] = _failed_model(spec.key, f"cannot run here: {plan.why_not(SOURCE_LANGUAGE)}", 1)
            continue
        started = time.perf_counter()
        try:
            loaded.engines[spec.key] = cache.get(spec, plan)
        except Exception as exc:  # the error is the result for this model; the others still run
            loaded.failed[spec.key] = _failed_model(spec.key, f"failed to load: {exc}", 1)
            continue
        loaded.plans[spec.key], loaded.load_s[spec.key] = plan, time.perf_counter() - started
    return loaded


def _take_turns(engines: dict[str, Any], eval_set: EvalSet, progress: ProgressCallback | None) -> _Turns:
    from chatvlmllm.engines import GenerationSettings

    keys = list(engines)
    turns = _Turns({key: [] for key in keys}, {key: {} for key in keys}, dict.fromkeys(keys, 0.0))
    total = len(eval_set.items) * len(keys)
    for index, item in enumerate(eval_set.items):
        try:
            image = _open_image(item.image)
        except UserError as exc:  # a corrupt scan is one failed page for every model
            for key in keys:
                turns.outcomes[key].append(Outcome(error=str(exc)))
            continue
        settings = GenerationSettings(max_new_tokens=OCR_MAX_NEW_TOKENS, options=ocr_options(item))
        for turn, key in enumerate(keys if index % 2 == 0 else keys[::-1]):
            with PeakMemory() as memory:
                outcome = _ask(engines[key], OCR_PROMPT, image, settings)
            turns.outcomes[key].append(outcome)
            turns.busy_s[key] += outcome.seconds
            turns.rss[key][item.kind] = max(turns.rss[key].get(item.kind, 0.0), round(memory.peak_mb, 1))
            if progress:
                progress(index * len(keys) + turn + 1, total, f"{key}: {item.id}")
    return turns


def _interleaved_result(
    key: str, turns: _Turns, eval_set: EvalSet, loaded: _Loaded, load_average: float | None
) -> dict[str, Any]:
    outcomes, busy_s = turns.outcomes[key], turns.busy_s[key]
    rows = _text_scores(outcomes, eval_set.items)
    by_kind = _grouped(rows, "kind")
    for kind, figures in by_kind.items():
        figures["peak_rss_mb"] = turns.rss[key].get(kind)
    pages = sum(1 for o in outcomes if o.error is None)
    return _model_result(
        outcomes,
        rows,
        loaded.plans[key],
        # Throughput of this model alone: pages over the time it spent reading them.
        pages_per_s=_round(pages / busy_s if busy_s > 0 else None),
        concurrency=1,
        parallel_requests=1,
        load_average=load_average,
        load_s=loaded.load_s[key],
        peak_rss_mb=max(turns.rss[key].values(), default=None),
        peak_vram_mb=None,
        by_kind=by_kind,
        interleaved=True,
    )


def _load_average() -> float | None:
    import os

    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ocr_versions() -> dict[str, str | None]:
    """The offline engines' versions, so a re-run on another machine can be compared."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for package in ("rapidocr", "onnxruntime"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    import subprocess

    try:
        first = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, timeout=10).stdout
        found["tesseract"] = first.splitlines()[0].split()[-1] if first else None
    except (OSError, subprocess.SubprocessError):
        found["tesseract"] = None
    return found


def machine_description(hardware: Any) -> dict[str, Any]:
    import os

    return {
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "versions": _ocr_versions(),
        "device": getattr(hardware, "device", None),
        "gpu_name": getattr(hardware, "gpu_name", None),
        "ram_total_gb": getattr(hardware, "ram_total_gb", None),
        # Latency depends on what else runs: the 1-minute load average when the run started.
        "load_average_1m": _load_average(),
    }


def run_benchmark(
    eval_dir: str | Path,
    models: Sequence[str],
    *,
    limit: int | None = None,
    concurrency: int = 1,
    progress: ProgressCallback | None = None,
    hardware: Any = None,
    cache: Any = None,
) -> dict[str, Any]:
    """Benchmark each model in turn; a model that cannot run gets an `error` and null metrics."""
    from chatvlmllm.chat.engine_cache import default_cache
    from chatvlmllm.models.catalog import get_model, load_catalog
    from chatvlmllm.models.hardware import probe

    _check_run(limit, concurrency, models)
    catalog = load_catalog()
    specs = [get_model(key, catalog) for key in models]  # unknown keys fail before any work
    eval_set = load_eval_set(eval_dir).limited(limit)
    hardware = hardware or probe()
    # The process-wide cache: a model the chat already holds is not loaded a second time, and
    # the benchmark unloads only what it loaded itself.
    cache = cache or default_cache()
    machine = machine_description(hardware)
    results = _benchmark_all(specs, eval_set, hardware, cache, concurrency, progress)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "eval_dir": str(Path(eval_dir).expanduser().resolve()),
        "limit": limit,
        "concurrency": concurrency,
        "n_items": len(eval_set.items),
        "n_questions": len(eval_set.qa),
        "machine": {**machine, "load_average_1m_at_end": machine_description(hardware)["load_average_1m"]},
        "interleaved": interleavable(specs, concurrency),
        "models": results,
    }


def _check_run(limit: int | None, concurrency: int, models: Sequence[str]) -> None:
    if limit is not None and limit < 1:
        raise UserError(_("{option} must be at least 1").format(option="--limit"))
    if concurrency < 1:
        raise UserError(_("{option} must be at least 1").format(option="--concurrency"))
    if not models:
        raise UserError(_("name at least one model to benchmark"))


def _benchmark_all(
    specs: Sequence[Any],
    eval_set: EvalSet,
    hardware: Any,
    cache: Any,
    concurrency: int,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Every model's figures: taking turns where they can, else one after the other, each unloaded
    after its run unless the cache held it before."""
    held_before = {engine.model for engine in cache.loaded()}
    if interleavable(specs, concurrency):
        try:
            return benchmark_interleaved(specs, eval_set, hardware=hardware, cache=cache, progress=progress)
        finally:
            _unload_new(specs, held_before, cache)
    totals = [len(eval_set.items) + (len(eval_set.qa) if "chat" in spec.caps else 0) for spec in specs]
    results: dict[str, Any] = {}
    done = 0
    try:
        for spec, count in zip(specs, totals, strict=True):
            results[spec.key] = benchmark_model(
                spec.key,
                eval_set,
                hardware=hardware,
                cache=cache,
                concurrency=concurrency,
                progress=progress,
                done_before=done,
                total=sum(totals),
            )
            done += count
            _unload_new([spec], held_before, cache)
    finally:
        _unload_new(specs, held_before, cache)
    return results


def _unload_new(specs: Sequence[Any], held_before: set[str], cache: Any) -> None:
    for spec in specs:
        if spec.key not in held_before:
            cache.unload(spec.key)


# -- output ---------------------------------------------------------------------------------

SUMMARY_COLUMNS = (
    "cer",
    "cer_nocase",
    "word_f1",
    "qa_exact",
    "anls",
    "latency_median_s",
    "latency_p95_s",
    "pages_per_s",
    "n",
    "peak_rss_mb",
    "peak_vram_mb",
    "error",
)


# The summary columns in plain words (the Benchmark page's headers).
# Column headers in words (marked: the Benchmark page translates them where it shows them).
SUMMARY_LABELS = {
    "model": N_("model"),
    "kind": N_("kind"),
    "cer": N_("character errors (CER)"),
    "cer_nocase": N_("CER, case ignored"),
    "word_f1": N_("words found (F1)"),
    "qa_exact": N_("answers exactly right"),
    "anls": N_("answer closeness (ANLS)"),
    "latency_median_s": N_("median s/page"),
    "latency_p95_s": N_("slowest 5%, s/page"),
    "pages_per_s": N_("pages/s"),
    "n": N_("items"),
    "peak_rss_mb": N_("peak memory (MB)"),
    "peak_vram_mb": N_("peak GPU memory (MB)"),
    "error": N_("error"),
}
# The two latency figures, named for a chart legend (marked, translated where shown).
LATENCY_MEASURES = {"latency_median_s": N_("median"), "latency_p95_s": N_("slowest 5%")}


def latency_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and latency figure (model, measure, seconds): the latency chart's data."""
    return [
        {"model": model, "measure": label, "seconds": float(metrics[key])}
        for model, metrics in results.get("models", {}).items()
        for key, label in LATENCY_MEASURES.items()
        if isinstance(metrics.get(key), int | float) and not isinstance(metrics.get(key), bool)
    ]


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and kind ("all" first): the CSV and the Benchmark page's table."""
    rows = []
    for model, metrics in results.get("models", {}).items():
        rows.append({"model": model, "kind": "all", **{c: metrics.get(c) for c in SUMMARY_COLUMNS}})
        for kind, figures in sorted(metrics.get("by_kind", {}).items()):
            rows.append({"model": model, "kind": kind, **{c: figures.get(c) for c in SUMMARY_COLUMNS}})
    return rows


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(results: dict[str, Any]) -> str:
    """Models side by side, one row per kind and one overall: the table docs/benchmark.md shows."""
    lines = [
        "| model | kind | n | CER | CER (case-insensitive) | word F1 | median s/page | p95 s | pages/s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary_rows(results):
        if row.get("error"):
            lines.append(f"| {row['model']} | all | 0 | error: {row['error']} | | | | | | |")
            continue
        lines.append(
            f"| {row['model']} | {'**all**' if row['kind'] == 'all' else row['kind']} | {row['n']} | "
            f"{_cell(row['cer'])} | {_cell(row['cer_nocase'])} | {_cell(row['word_f1'])} | "
            f"{_cell(row['latency_median_s'], 2)} | {_cell(row['latency_p95_s'], 2)} | "
            f"{_cell(row['pages_per_s'], 2)} | {_cell(row['peak_rss_mb'], 0)} |"
        )
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write the JSON and, beside it, a CSV of summary_rows (same name, .csv)."""
    import pandas as pd

    json_path = Path(out).expanduser()
    json_path = json_path if json_path.suffix.lower() == ".json" else json_path.with_suffix(".json")
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        csv_path = json_path.with_suffix(".csv")
        pd.DataFrame(summary_rows(results), columns=["model", "kind", *SUMMARY_COLUMNS]).to_csv(csv_path, index=False)
    except OSError as exc:
        raise UserError(
            _("Cannot write the results to {path}: {error}").format(path=json_path, error=exc.strerror or exc)
        ) from None
    return json_path, csv_path


def read_results(path: str | Path) -> dict[str, Any]:
    """Load a results JSON written by write_results (for the Benchmark page)."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(_("No benchmark results at {path}").format(path=path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(_("{path} is not a benchmark results file: {error}").format(path=path, error=exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise UserError(_('{path} is not a benchmark results file (no "models" object)').format(path=path))
    return data


def default_results_path() -> Path:
    """Where the app keeps the latest run: <data dir>/bench/results.json."""
    return settings().data_dir / "bench" / "results.json"
