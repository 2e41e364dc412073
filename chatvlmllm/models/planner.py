"""Planner: (hardware, model, user overrides) → a load plan with the reasons for each choice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from chatvlmllm.decisions import Backend, Reason, ReasonKind
from chatvlmllm.i18n import SOURCE_LANGUAGE, Message, lazy_message
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
        data["reasons"] = self.reason_texts(SOURCE_LANGUAGE)  # JSON stays English
        return data

    def reason_texts(self, language: str | None = None) -> list[str]:
        """The reasons in `language` (by default the interface's)."""
        return [_in(reason, language) for reason in self.reasons]

    def why_not(self, language: str | None = None) -> str | None:
        """Why this plan cannot run, in words for a person (in `language`, by default the interface's);
        None when it can."""
        message = self.why_not_message()
        return message.render(language) if message is not None else None

    def why_not_message(self) -> Message | None:
        """`why_not` as a Message, for an error that may be stored (English) and shown (translated)."""
        if self.runnable:
            return None
        problems = [reason for reason in self.reasons if reason.is_problem] or list(self.reasons)
        if not problems:
            return lazy_message("the planner gave no reason")
        said = [r.message if isinstance(r.message, Message) else Message(r.message) for r in problems]
        joined = said[0]
        for message in said[1:]:  # "a; b": a list joined the same way in every language (not in the catalogue)
            joined = Message("{first}; {then}", (("first", joined), ("then", message)))
        return joined


def _in(reason: Reason, language: str | None) -> str:
    message = reason.message
    return message if isinstance(message, str) else message.render(language)


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
            Reason(
                ReasonKind.NEEDS,
                lazy_message(
                    "needs bitsandbytes for {quantization} quantization: `pip install bitsandbytes`",
                    quantization=quantization,
                ),
            )
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
    reasons.extend(Reason.info(Message(note)) for note in family.notes)  # marked N_ where declared

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
        reasons.append(
            Reason.info(
                lazy_message(
                    "pixels capped at {pixels}: CPU, to keep answers within seconds", pixels=_megapixels(cpu_cap)
                )
            )
        )
    cap = family.max_pixels_without_fa2
    if cap and attention != "flash_attention_2" and (max_pixels is None or max_pixels > cap):
        max_pixels = cap
        memory = _gigabytes(hw.vram_total_gb, 0) if device == "cuda" and hw.vram_total_gb else device.upper()
        reasons.append(
            Reason.info(
                lazy_message(
                    "pixels capped at {pixels}: no flash-attn, {memory} (without it a page's vision attention "
                    "costs memory in the square of its patches)",
                    pixels=_megapixels(cap),
                    memory=memory,
                )
            )
        )
    if min_pixels and max_pixels is not None and max_pixels < min_pixels:
        max_pixels = min_pixels
        reasons.append(
            Reason.info(
                lazy_message(
                    "pixels raised to {pixels}: the processor's minimum for {family}",
                    pixels=_megapixels(min_pixels),
                    family=spec.family,
                )
            )
        )
    return min_pixels, max_pixels


def _megapixels(pixels: int) -> Message:
    return lazy_message(
        "{megapixels} MP ({pixels} px)", megapixels=format(pixels / 1e6, ".1f"), pixels=format(pixels, ",")
    )


def _gigabytes(size: float, decimals: int = 1) -> Message:
    return lazy_message("{size} GB", size=format(size, f".{decimals}f"))


def _plan_without_torch(spec: ModelSpec, family: FamilyInfo, overrides: PlanOverrides) -> LoadPlan:
    reasons: list[Reason] = []
    runnable = True
    if overrides.attention not in ("auto", None):
        reasons.append(
            Reason(
                ReasonKind.REFUSED,
                lazy_message(
                    "refused attention {attention}: {model} is not a transformers model",
                    attention=overrides.attention,
                    model=spec.key,
                ),
            )
        )
        runnable = False
    problem = family.availability() if family.availability else None
    if problem:
        reasons.append(Reason(ReasonKind.CANNOT, lazy_message("cannot run here: {problem}", problem=problem)))
        runnable = False
    reasons.append(
        Reason.info(
            lazy_message("runs on a remote server; no attention, dtype or quantization to choose")
            if family.backend is Backend.OPENAI
            else lazy_message(
                "runs on the CPU (onnxruntime / tesseract); no attention, dtype or quantization to choose"
            )
        )
    )
    return LoadPlan(
        model_key=spec.key,
        family=spec.family,
        device="remote" if family.backend is Backend.OPENAI else "cpu",
        dtype="n/a",
        attention="n/a",
        max_pixels=overrides.max_pixels or spec.max_pixels or family.default_max_pixels,
        runnable=runnable,
        reasons=(*reasons, *(Reason.info(Message(note)) for note in family.notes)),
    )


def _choose_dtype(hw: HardwareProfile, device: str, overrides: PlanOverrides, reasons: list[Reason]) -> str:
    if overrides.dtype != "auto":
        reasons.append(Reason.info(lazy_message("dtype {dtype} (your choice)", dtype=overrides.dtype)))
        return overrides.dtype
    if device == "cuda":
        cc = hw.capability_str
        if hw.compute_capability and hw.compute_capability >= (8, 0):
            reasons.append(Reason.info(lazy_message("bfloat16: compute capability {cc} supports it", cc=cc)))
            return "bfloat16"
        reasons.append(Reason.info(lazy_message("float16: compute capability {cc} has no fast bfloat16", cc=cc)))
        return "float16"
    if device == "mps":
        reasons.append(Reason.info(lazy_message("float16 on Apple MPS")))
        return "float16"
    reasons.append(Reason.info(lazy_message("float32 on CPU: bfloat16 matmuls are slow or unsupported on most CPUs")))
    return "float32"


@dataclass(frozen=True)
class _Memory:
    """The memory a model may use on a device: the total, less what the system keeps (the OS and this
    app on a CPU, the CUDA context on a GPU)."""

    kind: str  # "RAM" or "VRAM"
    total_gb: float | None
    budget_gb: float
    kept_for: Message  # who needs the rest

    def describe(self) -> str | Message:
        return (
            lazy_message("{size} {memory}", size=_gigabytes(self.total_gb, 0), memory=self.kind)
            if self.total_gb
            else self.kind
        )

    def too_small(self, needed_gb: float, how: Message) -> Message:
        """ "needs about 22.3 GB of the 25 GB RAM in float32, and the OS and the app need the rest: …" """
        needed = _gigabytes(needed_gb)
        if not self.total_gb:
            return lazy_message(
                "needs about {needed} {how}, and the {memory} size could not be measured",
                needed=needed,
                how=how,
                memory=self.kind,
            )
        total = _gigabytes(self.total_gb, 0)
        if needed_gb > self.total_gb:
            return lazy_message(
                "needs about {needed} {how}, more than the {total} {memory}",
                needed=needed,
                how=how,
                total=total,
                memory=self.kind,
            )
        return lazy_message(
            "needs about {needed} of the {total} {memory} {how}, and {kept_for} need the rest: "
            "a model may use about {budget} here",
            needed=needed,
            total=total,
            memory=self.kind,
            how=how,
            kept_for=self.kept_for,
            budget=_gigabytes(max(self.budget_gb, 0.0)),
        )


def _memory(hw: HardwareProfile, device: str) -> _Memory:
    if device == "cuda":
        total = hw.vram_total_gb
        return _Memory(
            "VRAM", total, (total or 0.0) - VRAM_RESERVE_GB, lazy_message("the CUDA context and the activations")
        )
    total = hw.ram_total_gb
    return _Memory("RAM", total, (total or 0.0) * RAM_SHARE_FOR_MODELS, lazy_message("the OS and the app"))


def _choose_quantization(
    hw: HardwareProfile, spec: ModelSpec, device: str, dtype: str, overrides: PlanOverrides, reasons: list[Reason]
) -> tuple[str | None, float | None, bool]:
    estimated = estimate_gb(spec, dtype)
    memory = _memory(hw, device)
    budget, where = memory.budget_gb, memory.describe()

    if overrides.quantization in ("8bit", "4bit"):
        return _quantization_asked(spec, device, estimated, budget, overrides.quantization, reasons)

    if estimated is None:
        reasons.append(Reason.info(lazy_message("size unknown: assuming it fits")))
        return None, None, True
    if estimated <= budget:
        reasons.append(
            Reason.info(
                lazy_message(
                    "fits: about {size} in {dtype} of {memory}", size=_gigabytes(estimated), dtype=dtype, memory=where
                )
            )
        )
        return None, estimated, True
    if device != "cuda" or overrides.quantization == "none":
        reasons.append(Reason(ReasonKind.NO_FIT, memory.too_small(estimated, lazy_message("in {dtype}", dtype=dtype))))
        return None, estimated, False
    for precision in ("8bit", "4bit"):
        est = estimate_gb(spec, precision)
        if est is not None and est <= budget:
            reasons.append(
                Reason.info(
                    lazy_message(
                        "{precision} quantization: {dtype} needs about {size}, {memory}; {precision} about {quantized}",
                        precision=precision,
                        dtype=dtype,
                        size=_gigabytes(estimated),
                        memory=where,
                        quantized=_gigabytes(est),
                    )
                )
            )
            return precision, est, True
    reasons.append(
        Reason(ReasonKind.NO_FIT, memory.too_small(estimate_gb(spec, "4bit") or 0.0, lazy_message("even in 4-bit")))
    )
    return None, estimated, False


def _quantization_asked(
    spec: ModelSpec, device: str, estimated: float | None, budget: float, quantization: str, reasons: list[Reason]
) -> tuple[str | None, float | None, bool]:
    """The quantization the user asked for: refused without CUDA, else used whatever the size."""
    if device != "cuda":
        reasons.append(
            Reason(
                ReasonKind.REFUSED,
                lazy_message(
                    "refused {quantization} quantization: bitsandbytes needs CUDA",
                    quantization=quantization,
                ),
            )
        )
        return None, estimated, estimated is None or estimated <= budget
    est = estimate_gb(spec, quantization)
    reasons.append(
        Reason.info(
            lazy_message(
                "{quantization} quantization (your choice), about {size}",
                quantization=quantization,
                size=_gigabytes(est) if est is not None else "?",
            )
        )
    )
    return quantization, est, est is None or est <= budget


def _choose_attention(
    hw: HardwareProfile, spec: ModelSpec, device: str, dtype: str, overrides: PlanOverrides, reasons: list[Reason]
) -> tuple[str, bool]:
    supported = spec.supported_attention
    fa2_problem = _flash_attention_problem(hw, device, dtype)
    wanted = overrides.attention or "auto"

    if wanted != "auto":
        return _attention_asked(spec, wanted, supported, fa2_problem, reasons)

    if "flash_attention_2" in supported and not fa2_problem:
        reasons.append(Reason.info(lazy_message("flash_attention_2: {why}", why=Message(hw.flash_attn_reason))))
        return "flash_attention_2", True
    listed = ", ".join(supported)
    if "sdpa" in supported:
        reasons.append(
            Reason.info(
                lazy_message("sdpa: flash_attention_2 not used: {problem}", problem=fa2_problem)
                if "flash_attention_2" in supported and fa2_problem is not None
                else lazy_message("sdpa: {family} does not support flash_attention_2", family=spec.family)
            )
        )
        return "sdpa", True
    if "eager" in supported:
        reasons.append(
            Reason.info(lazy_message("eager: {family} accepts only {supported}", family=spec.family, supported=listed))
        )
        return "eager", True
    reasons.append(
        Reason(
            ReasonKind.CANNOT,
            lazy_message(
                "cannot choose attention: {family} supports none of {supported}", family=spec.family, supported=listed
            ),
        )
    )
    return "eager", False


def _attention_asked(
    spec: ModelSpec, wanted: str, supported: tuple[str, ...], fa2_problem: str | Message | None, reasons: list[Reason]
) -> tuple[str, bool]:
    """The attention the user asked for: refused when unknown, unsupported or (flash-attn) not usable here."""
    if wanted not in ATTENTION_CHOICES:
        reasons.append(
            Reason(
                ReasonKind.REFUSED,
                lazy_message(
                    "refused attention {attention}: choose one of {choices}",
                    attention=repr(wanted),
                    choices=", ".join(ATTENTION_CHOICES),
                ),
            )
        )
        return wanted, False
    if wanted not in supported:
        reasons.append(
            Reason(
                ReasonKind.REFUSED,
                lazy_message(
                    "refused attention {attention}: {family} supports only {supported}",
                    attention=wanted,
                    family=spec.family,
                    supported=", ".join(supported),
                ),
            )
        )
        return wanted, False
    if wanted == "flash_attention_2" and fa2_problem:
        reasons.append(
            Reason(
                ReasonKind.REFUSED,
                lazy_message("refused attention flash_attention_2: {problem}", problem=fa2_problem),
            )
        )
        return wanted, False
    reasons.append(Reason.info(lazy_message("attention {attention} (your choice)", attention=wanted)))
    return wanted, True


def _flash_attention_problem(hw: HardwareProfile, device: str, dtype: str) -> str | Message | None:
    if device != "cuda":
        return lazy_message("flash-attn needs a CUDA GPU")
    if not hw.flash_attn_usable:
        return Message(hw.flash_attn_reason)  # translated where shown when it is one of the marked reasons
    if dtype not in ("bfloat16", "float16"):
        return lazy_message("flash-attn needs float16 or bfloat16, not {dtype}", dtype=dtype)
    if hw.compute_capability and hw.compute_capability < (8, 0):
        return lazy_message(
            "flash-attn 2 needs compute capability 8.0 or newer (this GPU is {cc})", cc=hw.capability_str
        )
    return None
