"""Planner: (hardware, model, user overrides) → a load plan with the reasons for each choice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from chatvlmllm.decisions import Backend, Reason, ReasonKind
from chatvlmllm.models.catalog import ModelSpec
from chatvlmllm.models.families import FamilyInfo
from chatvlmllm.models.hardware import HardwareProfile

ATTENTION_CHOICES = ("auto", "flash_attention_2", "sdpa", "eager")
BYTES_PER_PARAM = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "8bit": 1.0, "4bit": 0.55}
# Activations, KV cache, CUDA context and image patches on top of the weights.
OVERHEAD_FACTOR = 1.2
OVERHEAD_GB = 1.0
VRAM_RESERVE_GB = 0.5
# On a CPU a model may use this share of the RAM; the OS and the app keep the rest.
RAM_SHARE_FOR_MODELS = 0.8


@dataclass(frozen=True)
class PlanOverrides:
    attention: str = "auto"
    dtype: str = "auto"
    quantization: str = "auto"  # auto | none | 8bit | 4bit
    max_pixels: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class LoadPlan:
    model_key: str
    family: str
    device: str
    dtype: str
    attention: str
    quantization: str | None = None
    max_pixels: int | None = None
    min_pixels: int | None = None
    estimated_gb: float | None = None
    fits: bool = True
    runnable: bool = True
    reasons: tuple[Reason, ...] = field(default=(), compare=False)
    # Family-specific adjustments the engine must apply (e.g. dots.ocr's vision attention).
    vision_attention: str | None = None

    def cache_key(self) -> tuple:
        return (
            self.model_key,
            self.device,
            self.dtype,
            self.attention,
            self.quantization,
            self.max_pixels,
            self.min_pixels,
            self.vision_attention,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reasons"] = self.reason_texts()
        return data

    def reason_texts(self) -> list[str]:
        return [reason.text for reason in self.reasons]

    def why_not(self) -> str | None:
        """Why this plan cannot run, in words for a person; None when it can."""
        if self.runnable:
            return None
        problems = [reason for reason in self.reasons if reason.is_problem] or list(self.reasons)
        return "; ".join(reason.text for reason in problems) or "the planner gave no reason"


def estimate_gb(spec: ModelSpec, precision: str) -> float | None:
    if spec.params_b is not None:
        weights = spec.params_b * BYTES_PER_PARAM[precision]
    elif spec.weights_gb:
        # On-disk safetensors are usually 16-bit.
        weights = spec.weights_gb * BYTES_PER_PARAM[precision] / 2.0
    else:
        return None
    return round(weights * OVERHEAD_FACTOR + OVERHEAD_GB, 2)


def plan_load(hw: HardwareProfile, spec: ModelSpec, overrides: PlanOverrides | None = None) -> LoadPlan:
    overrides = overrides or PlanOverrides()
    family = spec.family_info()
    if family.backend is not Backend.TRANSFORMERS:
        return _plan_without_torch(spec, family, overrides)

    reasons: list[Reason] = []
    runnable = True
    device = overrides.device or hw.device

    dtype = _choose_dtype(hw, device, overrides, reasons)
    quantization, estimated, fits = _choose_quantization(hw, spec, device, dtype, overrides, reasons)
    if not fits:
        runnable = False
    if quantization and not hw.bitsandbytes_available:
        reasons.append(
            Reason(ReasonKind.NEEDS, f"needs bitsandbytes for {quantization} quantization: pip install bitsandbytes")
        )
        runnable = False

    attention, attention_ok = _choose_attention(hw, spec, device, dtype, overrides, reasons)
    runnable = runnable and attention_ok

    min_pixels, max_pixels = _pixel_budget(hw, spec, family, device, attention, overrides, reasons)
    # dots.ocr's own vision tower attends one image at a time: eager stays eager, anything else
    # runs torch's sdpa (it never needs flash-attn).
    vision_attention = ("eager" if attention == "eager" else "sdpa") if family.plan_check is not None else None
    if family.plan_check is not None:
        extra = family.plan_check(spec, dtype, vision_attention)
        reasons.extend(extra)
        # A family's check that names a problem stops the plan.
        runnable = runnable and not any(reason.is_problem for reason in extra)
    reasons.extend(Reason.info(note) for note in family.notes)

    return LoadPlan(
        model_key=spec.key,
        family=spec.family,
        device=device,
        dtype=dtype,
        attention=attention,
        quantization=quantization,
        max_pixels=max_pixels,
        min_pixels=min_pixels,
        estimated_gb=estimated,
        fits=fits,
        runnable=runnable,
        reasons=tuple(reasons),
        vision_attention=vision_attention,
    )


def _pixel_budget(
    hw: HardwareProfile,
    spec: ModelSpec,
    family: FamilyInfo,
    device: str,
    attention: str,
    overrides: PlanOverrides,
    reasons: list[Reason],
) -> tuple[int | None, int | None]:
    """(min_pixels, max_pixels) per page.

    The minimum is the real processor's (a catalog entry may raise it, never lower it): below it a
    page becomes fewer image tokens than the model was trained on. The maximum is the processor's
    unless the user sets one or memory asks for less, and then a reason says why.
    """
    declared = [value for value in (spec.min_pixels, family.default_min_pixels) if value]
    min_pixels = max(declared) if declared else None
    max_pixels = overrides.max_pixels or spec.max_pixels or family.default_max_pixels
    chosen = bool(overrides.max_pixels or spec.max_pixels)
    cpu_cap = family.cpu_max_pixels
    if not chosen and device == "cpu" and cpu_cap and (max_pixels is None or max_pixels > cpu_cap):
        max_pixels = cpu_cap
        reasons.append(Reason.info(f"pixels capped at {_megapixels(cpu_cap)}: CPU, to keep answers within seconds"))
    cap = family.max_pixels_without_fa2
    if cap and attention != "flash_attention_2" and (max_pixels is None or max_pixels > cap):
        max_pixels = cap
        memory = f"{hw.vram_total_gb:.0f} GB" if device == "cuda" and hw.vram_total_gb else device.upper()
        reasons.append(
            Reason.info(
                f"pixels capped at {_megapixels(cap)}: no flash-attn, {memory} (without it a page's vision "
                "attention costs memory in the square of its patches)"
            )
        )
    if min_pixels and max_pixels is not None and max_pixels < min_pixels:
        max_pixels = min_pixels
        reasons.append(
            Reason.info(f"pixels raised to {_megapixels(min_pixels)}: the processor's minimum for {spec.family}")
        )
    return min_pixels, max_pixels


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP ({pixels:,} px)"


def _plan_without_torch(spec: ModelSpec, family: FamilyInfo, overrides: PlanOverrides) -> LoadPlan:
    reasons: list[Reason] = []
    runnable = True
    if overrides.attention not in ("auto", None):
        reasons.append(
            Reason(
                ReasonKind.REFUSED, f"refused attention {overrides.attention}: {spec.key} is not a transformers model"
            )
        )
        runnable = False
    problem = family.availability() if family.availability else None
    if problem:
        reasons.append(Reason(ReasonKind.CANNOT, f"cannot run here: {problem}"))
        runnable = False
    where = "remote server" if family.backend is Backend.OPENAI else "CPU (onnxruntime / tesseract)"
    reasons.append(Reason.info(f"runs on the {where}; no attention, dtype or quantization to choose"))
    return LoadPlan(
        model_key=spec.key,
        family=spec.family,
        device="remote" if family.backend is Backend.OPENAI else "cpu",
        dtype="n/a",
        attention="n/a",
        max_pixels=overrides.max_pixels or spec.max_pixels or family.default_max_pixels,
        runnable=runnable,
        reasons=(*reasons, *(Reason.info(note) for note in family.notes)),
    )


def _choose_dtype(hw: HardwareProfile, device: str, overrides: PlanOverrides, reasons: list[Reason]) -> str:
    if overrides.dtype != "auto":
        reasons.append(Reason.info(f"dtype {overrides.dtype} (your choice)"))
        return overrides.dtype
    if device == "cuda":
        cc = hw.capability_str
        if hw.compute_capability and hw.compute_capability >= (8, 0):
            reasons.append(Reason.info(f"bfloat16: compute capability {cc} supports it"))
            return "bfloat16"
        reasons.append(Reason.info(f"float16: compute capability {cc} has no fast bfloat16"))
        return "float16"
    if device == "mps":
        reasons.append(Reason.info("float16 on Apple MPS"))
        return "float16"
    reasons.append(Reason.info("float32 on CPU: bfloat16 matmuls are slow or unsupported on most CPUs"))
    return "float32"


@dataclass(frozen=True)
class _Memory:
    """The memory a model may use on a device: the total, less what the system keeps (the OS and this
    app on a CPU, the CUDA context on a GPU)."""

    kind: str  # "RAM" or "VRAM"
    total_gb: float | None
    budget_gb: float
    kept_for: str  # who needs the rest

    def describe(self) -> str:
        return f"{self.total_gb:.0f} GB {self.kind}" if self.total_gb else self.kind

    def too_small(self, needed_gb: float, how: str) -> str:
        """ "needs about 22.3 GB of the 25 GB RAM in float32, and the OS and the app need the rest: …" """
        if not self.total_gb:
            return f"needs about {needed_gb:.1f} GB {how}, and the {self.kind} size could not be measured"
        if needed_gb > self.total_gb:
            return f"needs about {needed_gb:.1f} GB {how}, more than the {self.total_gb:.0f} GB {self.kind}"
        return (
            f"needs about {needed_gb:.1f} GB of the {self.total_gb:.0f} GB {self.kind} {how}, and {self.kept_for} "
            f"need the rest: a model may use about {max(self.budget_gb, 0.0):.1f} GB here"
        )


def _memory(hw: HardwareProfile, device: str) -> _Memory:
    if device == "cuda":
        total = hw.vram_total_gb
        return _Memory("VRAM", total, (total or 0.0) - VRAM_RESERVE_GB, "the CUDA context and the activations")
    total = hw.ram_total_gb
    return _Memory("RAM", total, (total or 0.0) * RAM_SHARE_FOR_MODELS, "the OS and the app")


def _choose_quantization(
    hw: HardwareProfile, spec: ModelSpec, device: str, dtype: str, overrides: PlanOverrides, reasons: list[Reason]
) -> tuple[str | None, float | None, bool]:
    estimated = estimate_gb(spec, dtype)
    memory = _memory(hw, device)
    budget, where = memory.budget_gb, memory.describe()

    if overrides.quantization in ("8bit", "4bit"):
        if device != "cuda":
            reasons.append(
                Reason(ReasonKind.REFUSED, f"refused {overrides.quantization} quantization: bitsandbytes needs CUDA")
            )
            return None, estimated, estimated is None or estimated <= budget
        est = estimate_gb(spec, overrides.quantization)
        reasons.append(Reason.info(f"{overrides.quantization} quantization (your choice), about {est} GB"))
        return overrides.quantization, est, est is None or est <= budget

    if estimated is None:
        reasons.append(Reason.info("size unknown: assuming it fits"))
        return None, None, True
    if estimated <= budget:
        reasons.append(Reason.info(f"fits: about {estimated:.1f} GB in {dtype} of {where}"))
        return None, estimated, True
    if device != "cuda" or overrides.quantization == "none":
        reasons.append(Reason(ReasonKind.NO_FIT, memory.too_small(estimated, f"in {dtype}")))
        return None, estimated, False
    for precision in ("8bit", "4bit"):
        est = estimate_gb(spec, precision)
        if est is not None and est <= budget:
            reasons.append(
                Reason.info(
                    f"{precision} quantization: {dtype} needs about {estimated:.1f} GB, {where}; "
                    f"{precision} about {est:.1f} GB"
                )
            )
            return precision, est, True
    reasons.append(Reason(ReasonKind.NO_FIT, memory.too_small(estimate_gb(spec, "4bit") or 0.0, "even in 4-bit")))
    return None, estimated, False


def _choose_attention(
    hw: HardwareProfile, spec: ModelSpec, device: str, dtype: str, overrides: PlanOverrides, reasons: list[Reason]
) -> tuple[str, bool]:
    supported = spec.supported_attention
    fa2_problem = _flash_attention_problem(hw, device, dtype)
    wanted = overrides.attention or "auto"

    if wanted != "auto":
        if wanted not in ATTENTION_CHOICES:
            reasons.append(
                Reason(
                    ReasonKind.REFUSED, f"refused attention {wanted!r}: choose one of {', '.join(ATTENTION_CHOICES)}"
                )
            )
            return wanted, False
        if wanted not in supported:
            reasons.append(
                Reason(
                    ReasonKind.REFUSED,
                    f"refused attention {wanted}: {spec.family} supports only {', '.join(supported)}",
                )
            )
            return wanted, False
        if wanted == "flash_attention_2" and fa2_problem:
            reasons.append(Reason(ReasonKind.REFUSED, f"refused attention flash_attention_2: {fa2_problem}"))
            return wanted, False
        reasons.append(Reason.info(f"attention {wanted} (your choice)"))
        return wanted, True

    if "flash_attention_2" in supported and not fa2_problem:
        reasons.append(Reason.info("flash_attention_2: " + hw.flash_attn_reason))
        return "flash_attention_2", True
    skipped = (
        f"flash_attention_2 not used: {fa2_problem}"
        if "flash_attention_2" in supported
        else f"{spec.family} does not support flash_attention_2"
    )
    for choice in ("sdpa", "eager"):
        if choice in supported:
            reasons.append(
                Reason.info(
                    f"{choice}: {skipped}"
                    if choice == "sdpa"
                    else f"eager: {spec.family} accepts only {', '.join(supported)}"
                )
            )
            return choice, True
    reasons.append(
        Reason(ReasonKind.CANNOT, f"cannot choose attention: {spec.family} supports none of {', '.join(supported)}")
    )
    return "eager", False


def _flash_attention_problem(hw: HardwareProfile, device: str, dtype: str) -> str | None:
    if device != "cuda":
        return "flash-attn needs a CUDA GPU"
    if not hw.flash_attn_usable:
        return hw.flash_attn_reason
    if dtype not in ("bfloat16", "float16"):
        return f"flash-attn needs float16 or bfloat16, not {dtype}"
    if hw.compute_capability and hw.compute_capability < (8, 0):
        return f"flash-attn 2 needs compute capability 8.0 or newer (this GPU is {hw.capability_str})"
    return None
