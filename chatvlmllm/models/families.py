"""Model families: what each engine adapter declares, and the registry that collects them.

An adapter module in `chatvlmllm.engines` declares `FAMILIES = {name: FamilyInfo(...)}`.
A family's declaration is the only place that knows:

- which transformers `model_type`s and `architectures` it reads (for `--model-path DIR`),
- the concrete transformers model and processor classes it loads, where the Auto classes
  would pick the wrong ones from the hub folder,
- its built-in catalog entries (hub id, parameter count, licence, public scores),
- how to build a tiny random checkpoint of its architecture for tests,
- its typed options (unknown keys in the models file are refused, listing the valid ones),
- its task prompts (the wording its model card asks for).

The catalog, the tiny-checkpoint registry and the task-aware chooser derive from these, so
adding a family is adding one adapter file. Nothing here imports an adapter at module
level: `families()` imports the adapter modules (cheap: they import nothing heavy) on first use.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import pkgutil
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from chatvlmllm.decisions import Backend, Reason, Script, Task
from chatvlmllm.errors import UserError

if TYPE_CHECKING:
    from chatvlmllm.models.catalog import ModelSpec

log = logging.getLogger(__name__)

ATTENTION_PREFERENCE = ("flash_attention_2", "sdpa", "eager")
ADAPTER_PACKAGE = "chatvlmllm.engines"
# Modules of the adapter package that hold shared code, not families.
_NOT_ADAPTERS = {"base"}


class Options(BaseModel):
    """Base of every family's options: typed, and unknown keys are refused (a typo never passes silently).

    A model's options come from its catalog entry (`ModelSpec.options`, checked when the models file
    is read); one request may set some of them again (`GenerationSettings.options`). An engine reads
    both at once, typed, with `<Family>Options.of(spec.options, settings.options)`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, entry: Options, request: Mapping[str, Any] | None = None) -> Self:
        """This family's options for one answer: the entry's, with the request's over them.

        A request's keys that this family does not declare are left out: one request goes down a
        fallback chain of families that take different options (the document language is for the
        offline OCR engines, not for Qwen).
        """
        request = request or {}
        unknown = set(request) - declared_option_names()
        if unknown:  # a typo in code that builds a request: no family would ever read it
            names = ", ".join(sorted(unknown))
            raise UserError(f"options of this answer: {names}: no model family takes such an option")
        wanted = {key: value for key, value in request.items() if key in cls.model_fields}
        if isinstance(entry, cls) and not wanted:
            return entry
        try:
            return cls.model_validate({**entry.model_dump(exclude_unset=True), **wanted})
        except ValidationError as exc:  # the entry's own values were checked when the catalog was read
            raise UserError(f"options of this answer: {_problems(exc)}") from None


class LanguageModelOptions(Options):
    """What every family that runs a language model may set (all but the offline OCR engines)."""

    context_tokens: PositiveInt | None = Field(
        None,
        description="The model's context length in tokens; unset: its config.json's max_position_embeddings, "
        "else 32768.",
    )


@dataclass(frozen=True)
class Scores:
    """Public benchmark figures for one model (higher is better), each with its source in `source`.

    omnidocbench: OmniDocBench v1.5 overall; olmocr: olmOCR-bench overall; docvqa: DocVQA test ANLS (%).
    """

    omnidocbench: float | None = None
    olmocr: float | None = None
    docvqa: float | None = None
    source: str = ""


@dataclass(frozen=True)
class CatalogEntry:
    """One built-in catalog model of a family (becomes a `catalog.ModelSpec`)."""

    key: str
    name: str
    hub_id: str
    params_b: float
    description: str
    licence: str
    revision: str | None = None
    trust_remote_code: bool = False
    weights_gb: float | None = None  # download size, for the "download N GB?" question
    scores: Scores = field(default_factory=Scores)
    scripts: frozenset[Script] = frozenset({Script.LATIN})


@dataclass(frozen=True)
class FamilyInfo:
    """What the planner, catalog and tests need to know about a model family (its adapter module imports
    nothing heavy: the engine's own imports wait until a model loads)."""

    name: str
    # The adapter's engine class, called with a ModelSpec (the engine layer sits above this one, so the
    # type is not named here). Adapter modules import nothing heavy at module level.
    engine: Callable[[ModelSpec], Any]
    backend: Backend = Backend.TRANSFORMERS
    attention: tuple[str, ...] = ATTENTION_PREFERENCE
    capabilities: frozenset[str] = frozenset({"chat", "ocr"})
    default_max_pixels: int | None = None
    default_min_pixels: int | None = None
    cpu_max_pixels: int | None = None  # smaller budget on CPU, where every patch costs seconds
    # Cap on pixels when the vision tower does not run flash-attn (dense n×n attention masks).
    max_pixels_without_fa2: int | None = None
    needs_weights: bool = True
    notes: tuple[str, ...] = ()
    # Why the family cannot run on this machine right now (e.g. a missing binary), or None; asked at plan time.
    availability: Callable[[], str | None] | None = None
    # Family-specific plan check for transformers models (e.g. dots.ocr's reasons about its own vision tower):
    # (spec, dtype, vision_attention) -> extra reasons; one that is not INFO stops the plan.
    plan_check: Callable[..., tuple[Reason, ...]] | None = None
    # -- the declaration every central table derives from ------------------------------
    model_types: tuple[str, ...] = ()  # config.json model_type values this family loads
    # config.json `architectures` values this family loads, matched before model_type: a hub folder
    # may name a generic model_type (LightOnOCR-2's config says mistral3) and its own architecture.
    architectures: tuple[str, ...] = ()
    # The transformers classes the engine loads (names in the `transformers` namespace); None: the
    # Auto class. Needed where the Auto class would build another model from the folder's config.
    model_class: str | None = None
    processor_class: str | None = None
    entries: tuple[CatalogEntry, ...] = ()  # built-in catalog models
    # builder(out_dir, seed=0) -> Path: a tiny random checkpoint for tests (its heavy imports are inside it)
    tiny_builder: Callable[..., Path] | None = None
    options: type[Options] = Options
    prompts: Mapping[Task, str] = field(default_factory=dict, hash=False, compare=False)

    def prompt(self, task: Task) -> str | None:
        return self.prompts.get(task)


@functools.lru_cache(maxsize=1)
def families() -> dict[str, FamilyInfo]:
    """Every family declared by a module of the adapter package (discovered, not listed)."""
    package = importlib.import_module(ADAPTER_PACKAGE)
    found: dict[str, FamilyInfo] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name in _NOT_ADAPTERS or module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{ADAPTER_PACKAGE}.{module.name}")
        found.update(getattr(mod, "FAMILIES", {}))
    return found


def refresh() -> None:
    """Forget the discovered families (after an adapter module was added or removed)."""
    families.cache_clear()
    importlib.invalidate_caches()


def family_info(name: str) -> FamilyInfo:
    try:
        return families()[name]
    except KeyError:
        known = ", ".join(sorted(families()))
        raise KeyError(f"unknown model family {name!r}; known families: {known}") from None


def model_type_to_family() -> dict[str, str]:
    """config.json `model_type` → family, from the declarations."""
    mapping: dict[str, str] = {}
    for name, info in families().items():
        for model_type in info.model_types:
            if model_type in mapping:
                log.warning("model_type %s is claimed by %s and %s", model_type, mapping[model_type], name)
            mapping.setdefault(model_type, name)
    return mapping


def architecture_to_family() -> dict[str, str]:
    """config.json `architectures` entry → family, from the declarations."""
    mapping: dict[str, str] = {}
    for name, info in families().items():
        for architecture in info.architectures:
            mapping.setdefault(architecture, name)
    return mapping


def family_for_config(config: Mapping[str, Any]) -> str | None:
    """The family that loads a config.json: by its architectures first, then by its model_type."""
    by_architecture = architecture_to_family()
    for architecture in config.get("architectures") or ():
        if architecture in by_architecture:
            return by_architecture[architecture]
    return model_type_to_family().get(str(config.get("model_type", "")))


def catalog_entries() -> list[tuple[str, CatalogEntry]]:
    """(family, entry) for every declared built-in model."""
    return [(name, entry) for name, info in families().items() for entry in info.entries]


def tiny_builders() -> dict[str, Callable[..., Path]]:
    """family → its tiny-checkpoint builder, for the families that declare one."""
    return {name: info.tiny_builder for name, info in families().items() if info.tiny_builder}


def declared_option_names() -> frozenset[str]:
    """Every option some family declares (what a request may set for the families of its chain)."""
    return frozenset(name for info in families().values() for name in info.options.model_fields)


def validate_options(family: str, options: Mapping[str, Any], where: str) -> Options:
    """A model's options as its family's typed object; a clear one-line error naming the valid keys otherwise."""
    schema = family_info(family).options
    try:
        return schema.model_validate(dict(options))
    except ValidationError as exc:
        valid = ", ".join(sorted(schema.model_fields)) or "none"
        raise UserError(f"{where}: {_problems(exc)} (valid options for {family}: {valid})") from None


@dataclass(frozen=True)
class OptionInfo:
    """One option of a family's schema, as `chatvlmllm models --options KEY` shows it."""

    name: str
    type: str  # e.g. "int", "bool", '"plain" | "dots_ocr"' (None, "unset", is the default's business)
    default: Any  # None: unset
    description: str


def option_infos(schema: type[Options]) -> tuple[OptionInfo, ...]:
    """Every option a schema declares, in declaration order (the shared ones first)."""
    return tuple(
        OptionInfo(
            name,
            type_text(declared.annotation),
            declared.get_default(call_default_factory=True),
            declared.description or "",
        )
        for name, declared in schema.model_fields.items()
    )


def type_text(annotation: Any) -> str:
    """A type as a models-file author reads it: `int`, `list[float]`, `"plain" | "dots_ocr"` (None left out)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is Annotated:
        return type_text(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args if arg is not type(None))
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(type_text(arg) for arg in args)}]"
    return str(getattr(annotation, "__name__", annotation))


def _problems(exc: ValidationError) -> str:
    """Each problem as "key: what is wrong" (a check of the whole table has no key)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
