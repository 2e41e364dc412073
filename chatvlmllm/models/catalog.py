"""Model catalog: built-in entries plus the user's TOML file.

A user entry needs only a family and a weights source:

    [models.my_tiny]
    family = "qwen2_vl"
    path = "/models/my-folder"     # or hub_id = "org/name"

The file is `$CHATVLMLLM_MODELS_FILE`, else `$XDG_CONFIG_HOME/chatvlmllm/models.toml`
(`~/.config/chatvlmllm/models.toml`).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from chatvlmllm.decisions import Backend, Script
from chatvlmllm.errors import ModelNotFoundError, UserError
from chatvlmllm.models import families as registry
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, Options, Scores
from chatvlmllm.settings import settings

DEFAULT_MODEL = "qwen_vl_2b"


@dataclass(frozen=True)
class ModelSpec:
    key: str
    family: str
    name: str = ""
    hub_id: str | None = None
    path: str | None = None
    revision: str | None = None
    params_b: float | None = None  # parameters in billions, for memory estimates
    weights_gb: float | None = None  # on-disk size when the parameter count is unknown
    capabilities: frozenset[str] | None = None  # None: the family's
    attention: tuple[str, ...] | None = None  # None: the family's
    trust_remote_code: bool = False
    max_pixels: int | None = None
    min_pixels: int | None = None
    # Remote (OpenAI-compatible) servers.
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    description: str = ""
    builtin: bool = False
    licence: str = ""
    scores: Scores = field(default_factory=Scores)
    scripts: frozenset[Script] = frozenset({Script.LATIN})
    # The family's typed options (its `FamilyInfo.options` schema), as the models file sets them.
    options: Options = field(default_factory=Options, hash=False, compare=False)

    @property
    def display_name(self) -> str:
        return self.name or self.hub_id or self.key

    @property
    def source(self) -> str:
        return self.path or self.hub_id or self.base_url or "bundled"

    def family_info(self) -> FamilyInfo:
        return registry.family_info(self.family)

    @property
    def caps(self) -> frozenset[str]:
        return self.capabilities if self.capabilities is not None else self.family_info().capabilities

    @property
    def supported_attention(self) -> tuple[str, ...]:
        return self.attention if self.attention is not None else self.family_info().attention


def _spec_from_entry(family: str, entry: CatalogEntry) -> ModelSpec:
    return ModelSpec(
        key=entry.key,
        family=family,
        name=entry.name,
        hub_id=entry.hub_id,
        revision=entry.revision,
        params_b=entry.params_b,
        weights_gb=entry.weights_gb,
        trust_remote_code=entry.trust_remote_code,
        description=entry.description,
        licence=entry.licence,
        scores=entry.scores,
        scripts=entry.scripts,
        builtin=True,
        options=registry.family_info(family).options(),
    )


def builtin_models() -> tuple[ModelSpec, ...]:
    """Every family's declared catalog entries, the default model first."""
    declared = [_spec_from_entry(family, entry) for family, entry in registry.catalog_entries()]
    declared.sort(key=lambda spec: spec.key != DEFAULT_MODEL)
    return tuple(declared)


def __getattr__(name: str) -> Any:
    # `BUILTIN_MODELS` is derived from the families on first use (they import adapter modules).
    if name == "BUILTIN_MODELS":
        return builtin_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_type_families() -> dict[str, str]:
    """config.json model_type → family, for `--model-path DIR` (declared by the adapters)."""
    return registry.model_type_to_family()


def models_file() -> Path:
    """$CHATVLMLLM_MODELS_FILE, else $XDG_CONFIG_HOME/chatvlmllm/models.toml."""
    return settings().models_file


_SPEC_FIELDS = {f.name for f in fields(ModelSpec)} - {"key", "builtin", "options"}
# Overriding any of these points an entry at other code: an inherited remote-code opt-in is dropped.
_TRUST_SENSITIVE = frozenset({"hub_id", "revision", "path"})


def _spec_from_toml(key: str, entry: dict[str, Any], base: ModelSpec | None, origin: Path) -> ModelSpec:
    if not isinstance(entry, dict):
        raise UserError(f"{origin}: [models.{key}] must be a table")
    known = {k: v for k, v in entry.items() if k in _SPEC_FIELDS}
    options = {k: v for k, v in entry.items() if k not in _SPEC_FIELDS and k != "backend"}
    for list_field in ("capabilities", "attention"):
        if list_field in known:
            value = known[list_field]
            known[list_field] = frozenset(value) if list_field == "capabilities" else tuple(value)
    if "path" in known:
        known["path"] = str(Path(known["path"]).expanduser())
    # `backend = "openai"` is shorthand for the openai family.
    if entry.get("backend") == Backend.OPENAI and "family" not in known:
        known["family"] = "openai"
    if base is not None:
        if _TRUST_SENSITIVE & known.keys() and "trust_remote_code" not in known:
            # Other weights run other code: the built-in's opt-in does not carry over to them.
            known["trust_remote_code"] = False
        spec = replace(base, **known)
        options = {**base.options.model_dump(exclude_unset=True), **options}
    else:
        if "family" not in known:
            raise UserError(f"{origin}: [models.{key}] needs a `family` (one of {', '.join(_family_names())})")
        if known["family"] not in _family_names():
            raise UserError(
                f"{origin}: [models.{key}] has unknown family {known['family']!r}; "
                f"use one of {', '.join(_family_names())}"
            )
        spec = ModelSpec(key=key, **known)
    # The family's typed options schema refuses unknown keys (a typo like `max_pixel` is an error).
    return replace(spec, options=registry.validate_options(spec.family, options, f"{origin}: [models.{key}]"))


def _family_names() -> list[str]:
    return sorted(registry.families())


def load_user_models(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or models_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the model catalog {path}: {exc}") from None
    builtins = {spec.key: spec for spec in builtin_models()}
    return {key: _spec_from_toml(key, entry, builtins.get(key), path) for key, entry in data.get("models", {}).items()}


def load_catalog() -> dict[str, ModelSpec]:
    """Built-ins, extra families' own entries (e.g. offline OCR), then the user's file."""
    catalog = {spec.key: spec for spec in builtin_models()}
    for name, info in registry.families().items():
        # Families that need no weights (bundled OCR engines) are usable under their own name.
        if not info.needs_weights and info.backend == Backend.CLASSIC and name not in catalog:
            catalog[name] = ModelSpec(
                key=name,
                family=name,
                name=name,
                builtin=True,
                description=info.notes[0] if info.notes else "",
                options=info.options(),
            )
    catalog.update(load_user_models())
    return catalog


def get_model(key: str, catalog: dict[str, ModelSpec] | None = None) -> ModelSpec:
    catalog = catalog if catalog is not None else load_catalog()
    try:
        return catalog[key]
    except KeyError:
        raise ModelNotFoundError(
            f"Unknown model {key!r}. Known models: {', '.join(sorted(catalog))}. Add your own in {models_file()}."
        ) from None


def spec_from_path(path: str | Path, key: str | None = None) -> ModelSpec:
    """A catalog entry for a local checkpoint folder, with the family read from config.json."""
    folder = Path(path).expanduser()
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder} is not a model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{config_file} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_file} is not a model config (a JSON object)")
    family = registry.family_for_config(config)
    if family is None:
        supported = sorted({*model_type_families(), *registry.architecture_to_family()})
        raise UserError(
            f"{folder}: model_type {config.get('model_type', '')!r} (architectures "
            f"{', '.join(config.get('architectures') or ()) or 'none'}) is not supported; "
            f"supported: {', '.join(supported)}"
        )
    return ModelSpec(
        key=key or folder.name,
        family=family,
        name=folder.name,
        path=str(folder),
        weights_gb=folder_weights_gb(folder),
        options=registry.family_info(family).options(),
    )


def folder_weights_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e9
