"""Which model runs: each model's status here, the default model, and the best model per task.

Status per model (`model_status`), as the app's picker shows it: a `Readiness` (ready, needs download,
won't fit, incompatible, unavailable: weights missing with no way to fetch them).

Task-aware choice (`choose`, `pick_for_task`): the best model for the job that fits this machine.

Ranking (docs/models.md "How the app picks"):

1. Candidates: catalog models that can do the task (transcription, table, formula, chart and
   layout requests → models with "ocr", layout preferring "layout"; questions → "chat").
2. They must fit at the planned dtype, without quantization (VRAM on a GPU, RAM on a CPU);
   on a CPU, models above CPU_MAX_PARAMS_B are left out (minutes per page).
3. A document in a script (Russian → Cyrillic) keeps the models that read it, when any fits.
4. Order by the public score for the task, from each catalog entry's declaration with its
   source: documents by OmniDocBench v1.5, then olmOCR-bench, then DocVQA (a figure on an
   earlier benchmark ranks above one on a later); questions by DocVQA. Unscored models last,
   smaller first on ties.

The fallback chain is the same ranking restricted to models whose weights are on disk (a
fallback never downloads), then the offline engine for the language, then rapidocr. The
user's explicit pick always goes first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chatvlmllm.decisions import Backend, Readiness, Script, Task
from chatvlmllm.errors import ModelNotFoundError
from chatvlmllm.i18n import _
from chatvlmllm.models.catalog import DEFAULT_MODEL, ModelSpec, load_catalog
from chatvlmllm.models.hardware import HardwareProfile
from chatvlmllm.models.planner import LoadPlan, PlanOverrides, plan_load
from chatvlmllm.models.tasks import classify, needs_understanding, offline_engine_for, offline_engines, script_for
from chatvlmllm.models.weights import WeightsLocation, locate
from chatvlmllm.settings import settings

log = logging.getLogger(__name__)

CPU_MAX_PARAMS_B = 2.5
DOCUMENT_BENCHMARKS = ("omnidocbench", "olmocr", "docvqa")
QUESTION_BENCHMARKS = ("docvqa",)
BENCHMARK_NAMES = {"omnidocbench": "OmniDocBench v1.5", "olmocr": "olmOCR-bench", "docvqa": "DocVQA"}


@dataclass(frozen=True)
class Candidate:
    spec: ModelSpec
    plan: LoadPlan
    benchmark: str | None
    score: float | None

    @property
    def key(self) -> str:
        return self.spec.key

    def score_text(self) -> str:
        if self.benchmark is None or self.score is None:
            return _("no public score")
        return f"{BENCHMARK_NAMES[self.benchmark]} {self.score:g}"


@dataclass(frozen=True)
class TaskPick:
    task: Task
    language: str | None
    key: str | None
    why: str
    ranked: tuple[Candidate, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "task": str(self.task),
            "language": self.language,
            "pick": self.key,
            "why": self.why,
            "ranked": [
                {"model": c.key, "score": c.score_text(), "estimated_gb": c.plan.estimated_gb} for c in self.ranked
            ],
        }


def _can_do(spec: ModelSpec, task: Task) -> bool:
    info = spec.family_info()
    if info.backend != Backend.TRANSFORMERS:
        return False
    needed = "chat" if needs_understanding(task) else "ocr"
    return needed in spec.caps


def _score(spec: ModelSpec, task: Task) -> tuple[int, str | None, float | None]:
    benchmarks = QUESTION_BENCHMARKS if needs_understanding(task) else DOCUMENT_BENCHMARKS
    for tier, name in enumerate(benchmarks):
        value = getattr(spec.scores, name)
        if value is not None:
            return tier, name, value
    return len(benchmarks), None, None


def _fits(plan: LoadPlan, spec: ModelSpec, hw: HardwareProfile) -> str | None:
    """Why the model is left out on this machine, or None when it fits."""
    if not plan.runnable:
        return plan.why_not()
    if plan.quantization:
        return _("needs {quantization} quantization to fit").format(quantization=plan.quantization)
    if plan.device == "cpu" and (spec.params_b or 0) > CPU_MAX_PARAMS_B:
        return _("{size}B parameters is too slow on a CPU (limit {limit}B)").format(
            size=spec.params_b, limit=CPU_MAX_PARAMS_B
        )
    return None


def rank(
    task: Task, hw: HardwareProfile, catalog: Mapping[str, ModelSpec], language: str | None = None
) -> tuple[list[Candidate], list[str]]:
    """(candidates best first, notes on what was left out and why)."""
    notes: list[str] = []
    fitting: list[Candidate] = []
    for spec in catalog.values():
        if not _can_do(spec, task):
            continue
        plan = plan_load(hw, spec)
        problem = _fits(plan, spec, hw)
        if problem:
            notes.append(f"{spec.key}: {problem}")
            continue
        _tier, benchmark, score = _score(spec, task)
        fitting.append(Candidate(spec, plan, benchmark, score))
    if task is Task.LAYOUT and any("layout" in c.spec.caps for c in fitting):
        fitting = [c for c in fitting if "layout" in c.spec.caps]
    script = script_for(language)
    if script is not Script.LATIN:
        readers = [c for c in fitting if script in c.spec.scripts]
        if readers:
            fitting = readers
        else:
            notes.append(_("no model that fits reads {script} well; ranking all").format(script=script))
    fitting.sort(key=lambda c: (_score(c.spec, task)[0], -(c.score or 0.0), c.spec.params_b or 0.0))
    return fitting, notes


def pick_for_task(
    task: Task,
    hw: HardwareProfile,
    catalog: Mapping[str, ModelSpec],
    language: str | None = None,
    available: Sequence[str] | None = None,
) -> TaskPick:
    """The best model for `task` here; with `available` (keys whose weights are on disk), the best of those."""
    ranked, notes = rank(task, hw, catalog, language)
    if available is not None:
        ranked = [c for c in ranked if c.key in available]
    if not ranked:
        return TaskPick(task, language, None, _("nothing fits: {notes}").format(notes="; ".join(notes)), ())
    best = ranked[0]
    where = (
        _("{size} GB VRAM").format(size=format(hw.vram_total_gb, ".0f"))
        if best.plan.device == "cuda" and hw.vram_total_gb
        else best.plan.device
    )
    script = script_for(language)
    reader = _(", reads {script}").format(script=script) if script is not Script.LATIN else ""
    why = _("best {score} among {count} that fit ({size} GB in {dtype} on {where}{reader})").format(
        score=best.score_text(),
        count=len(ranked),
        size=best.plan.estimated_gb,
        dtype=best.plan.dtype,
        where=where,
        reader=reader,
    )
    return TaskPick(task, language, best.key, why, tuple(ranked))


def fallback_keys(pick: TaskPick, available: Sequence[str]) -> list[str]:
    """The ranked models whose weights are on disk (a fallback never starts a download)."""
    return [c.key for c in pick.ranked if c.key in available]


@dataclass(frozen=True)
class Choice:
    """What `ask` (or any caller without an explicit model) runs: the first model, the fallback
    chain after it, why, and a hint when a better model would need a download first."""

    key: str | None
    why: str
    chain: tuple[str, ...]
    hint: str = ""


def weights_on_disk(catalog: Mapping[str, ModelSpec], keys: Sequence[str]) -> list[str]:
    from chatvlmllm.models.weights import locate

    return [key for key in keys if locate(catalog[key]).available]


def choose(text: str, hw: HardwareProfile, catalog: Mapping[str, ModelSpec], language: str | None = None) -> Choice:
    """The model for this request: the best for its task with weights on disk (never a silent
    download), the same ranking as fallbacks, then the offline engine for the language."""
    task = classify(text)
    best = pick_for_task(task, hw, catalog, language)
    available = weights_on_disk(catalog, [c.key for c in best.ranked])
    ready = pick_for_task(task, hw, catalog, language, available=available)
    offline = [key for key in _offline_tail(language) if key in catalog]
    hint = ""
    if best.key and best.key != ready.key:
        hint = _("{model} would be better for this ({why}); download it first: chatvlmllm pull {model}").format(
            model=best.key, why=best.why
        )
    chain = tuple(dict.fromkeys([*fallback_keys(ready, available), *offline]))
    why = (
        _("{task} request: {why}").format(task=task, why=ready.why)
        if ready.key
        else _("{task} request: no ranked model has its weights here").format(task=task)
    )
    return Choice(ready.key, why, chain, hint)


def _offline_tail(language: str | None) -> list[str]:
    """The bundled OCR engines in the order that reads `language` best (Tesseract for Russian)."""
    return offline_engines(language)


# -- model status and the default model ------------------------------------------------------------

# Preference when the user did not choose: the catalog default, then other chat VLMs.
VLM_PREFERENCE = (DEFAULT_MODEL, "qwen3_vl_2b", "qwen25_vl_3b")


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    plan: LoadPlan
    weights: WeightsLocation
    status: Readiness
    reason: str

    @property
    def usable_now(self) -> bool:
        return self.status == Readiness.READY

    def label(self) -> str:
        return f"{self.spec.key} — {self.status}"


def model_status(
    spec: ModelSpec, hw: HardwareProfile, overrides: PlanOverrides | None = None, check_hub: bool = True
) -> ModelStatus:
    plan = plan_load(hw, spec, overrides)
    weights = locate(spec, check_hub=check_hub)
    status: Readiness
    why_not = plan.why_not()
    if why_not is not None:
        status, reason = (Readiness.WONT_FIT if not plan.fits else Readiness.INCOMPATIBLE), why_not
    elif weights.status == "missing":
        status, reason = Readiness.UNAVAILABLE, str(weights.message)
    elif weights.status == "downloadable":
        status, reason = Readiness.NEEDS_DOWNLOAD, str(weights.message)
    else:
        status, reason = Readiness.READY, str(plan.reasons[0] if plan.reasons else weights.message)
    return ModelStatus(spec, plan, weights, status, reason)


def default_model(
    hw: HardwareProfile,
    catalog: dict[str, ModelSpec] | None = None,
    language: str | None = None,
    statuses: Mapping[str, ModelStatus] | None = None,
) -> tuple[str, str]:
    """(model key, why). $CHATVLMLLM_DEFAULT_MODEL wins; then a VLM that can run with weights
    on disk (or a reachable hub); then the offline OCR engine that reads `language` best
    (ocr_auto: script probe and per-page choice, docs/benchmark.md). `statuses` already computed
    for this machine are reused instead of looking at disk and network again."""
    catalog = catalog if catalog is not None else load_catalog()
    chosen = settings().default_model
    if chosen:
        if chosen not in catalog:
            raise ModelNotFoundError(
                _("{setting} is not in the catalog").format(setting=f"CHATVLMLLM_DEFAULT_MODEL={chosen}")
            )
        return chosen, _("set by {variable}").format(variable="CHATVLMLLM_DEFAULT_MODEL")
    problems = []
    for key in VLM_PREFERENCE:
        if key not in catalog:
            continue
        status = (statuses or {}).get(key) or model_status(catalog[key], hw)
        if status.status.usable:
            return key, _("{model} can run here ({status})").format(model=key, status=status.status)
        problems.append(f"{key}: {status.status} ({status.reason})")
    offline = offline_engine_for(language)
    if offline in catalog:
        return offline, _("no VLM can run here right now — {problems}").format(problems="; ".join(problems))
    return DEFAULT_MODEL, "; ".join(problems)
