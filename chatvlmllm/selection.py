"""Which models can run here, and which one to start with.

Status per model, as the app's picker shows it: a `Readiness` (ready, needs download, won't fit,
incompatible, unavailable: weights missing with no way to fetch them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from chatvlmllm.catalog import DEFAULT_MODEL, ModelSpec, load_catalog
from chatvlmllm.decisions import Readiness
from chatvlmllm.errors import ModelNotFoundError
from chatvlmllm.hardware import HardwareProfile
from chatvlmllm.ocr_policy import offline_engine_for
from chatvlmllm.planner import LoadPlan, PlanOverrides, plan_load
from chatvlmllm.weights import WeightsLocation, locate

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
        status, reason = Readiness.UNAVAILABLE, weights.message
    elif weights.status == "downloadable":
        status, reason = Readiness.NEEDS_DOWNLOAD, weights.message
    else:
        status, reason = Readiness.READY, plan.reasons[0].text if plan.reasons else weights.message
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
    chosen = os.environ.get("CHATVLMLLM_DEFAULT_MODEL")
    if chosen:
        if chosen not in catalog:
            raise ModelNotFoundError(f"CHATVLMLLM_DEFAULT_MODEL={chosen} is not in the catalog")
        return chosen, "set by CHATVLMLLM_DEFAULT_MODEL"
    problems = []
    for key in VLM_PREFERENCE:
        if key not in catalog:
            continue
        status = (statuses or {}).get(key) or model_status(catalog[key], hw)
        if status.status.usable:
            return key, f"{key} can run here ({status.status})"
        problems.append(f"{key}: {status.status} ({status.reason})")
    offline = offline_engine_for(language)
    if offline in catalog:
        return offline, "no VLM can run here right now — " + "; ".join(problems)
    return DEFAULT_MODEL, "; ".join(problems)
