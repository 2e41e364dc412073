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
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from chatvlmllm.errors import ModelNotFoundError, UserError

DEFAULT_MODEL = "qwen_vl_2b"

# model_type in config.json → catalog family, for `--model-path DIR`.
MODEL_TYPE_TO_FAMILY = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen25_vl",
    "qwen3_vl": "qwen3_vl",
    "got_ocr2": "got_ocr2",
    "dots_ocr": "dots_ocr",
}


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
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def display_name(self) -> str:
        return self.name or self.hub_id or self.key

    @property
    def source(self) -> str:
        return self.path or self.hub_id or self.base_url or "bundled"

    def family_info(self):
        from chatvlmllm.engines import family_info

        return family_info(self.family)

    @property
    def caps(self) -> frozenset[str]:
        return self.capabilities if self.capabilities is not None else self.family_info().capabilities

    @property
    def supported_attention(self) -> tuple[str, ...]:
        return self.attention if self.attention is not None else self.family_info().attention


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="qwen_vl_2b",
        family="qwen2_vl",
        name="Qwen2-VL-2B-Instruct",
        hub_id="Qwen/Qwen2-VL-2B-Instruct",
        params_b=2.21,
        description="General document chat and OCR; the default.",
        builtin=True,
    ),
    ModelSpec(
        key="qwen3_vl_2b",
        family="qwen3_vl",
        name="Qwen3-VL-2B-Instruct",
        hub_id="Qwen/Qwen3-VL-2B-Instruct",
        params_b=2.13,
        description="Newer Qwen VLM; stronger OCR and long documents.",
        builtin=True,
    ),
    ModelSpec(
        key="qwen25_vl_3b",
        family="qwen25_vl",
        name="Qwen2.5-VL-3B-Instruct",
        hub_id="Qwen/Qwen2.5-VL-3B-Instruct",
        params_b=3.75,
        description="Qwen2.5-VL; good at tables, charts and key-value extraction.",
        builtin=True,
    ),
    ModelSpec(
        key="got_ocr_hf",
        family="got_ocr2",
        name="GOT-OCR-2.0-hf",
        hub_id="stepfun-ai/GOT-OCR-2.0-hf",
        params_b=0.56,
        description="OCR specialist: transcribes (plain or formatted), does not answer questions.",
        builtin=True,
    ),
    ModelSpec(
        key="dots_ocr",
        family="dots_ocr",
        name="dots.ocr",
        hub_id="rednote-hilab/dots.ocr",
        revision="c0111ce6bc07803dbc267932ffef0ae3a51dc951",  # pinned weights; their Python code is never run
        params_b=3.04,
        description="Layout-aware OCR (boxes, tables as HTML, formulas as LaTeX); chatvlmllm's own model code.",
        builtin=True,
    ),
)


def models_file() -> Path:
    explicit = os.environ.get("CHATVLMLLM_MODELS_FILE")
    if explicit:
        return Path(explicit).expanduser()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return config_home / "chatvlmllm" / "models.toml"


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
    if entry.get("backend") == "openai" and "family" not in known:
        known["family"] = "openai"
    if base is not None:
        if _TRUST_SENSITIVE & known.keys() and "trust_remote_code" not in known:
            # Other weights run other code: the built-in's opt-in does not carry over to them.
            known["trust_remote_code"] = False
        return replace(base, **known, options={**base.options, **options})
    if "family" not in known:
        raise UserError(f"{origin}: [models.{key}] needs a `family` (one of {', '.join(_family_names())})")
    if known["family"] not in _family_names():
        raise UserError(
            f"{origin}: [models.{key}] has unknown family {known['family']!r}; use one of {', '.join(_family_names())}"
        )
    return ModelSpec(key=key, options=options, **known)


def _family_names() -> list[str]:
    from chatvlmllm.engines import families

    return sorted(families())


def load_user_models(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or models_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the model catalog {path}: {exc}") from None
    builtins = {spec.key: spec for spec in BUILTIN_MODELS}
    return {key: _spec_from_toml(key, entry, builtins.get(key), path) for key, entry in data.get("models", {}).items()}


def load_catalog() -> dict[str, ModelSpec]:
    """Built-ins, extra families' own entries (e.g. offline OCR), then the user's file."""
    from chatvlmllm.engines import families

    catalog = {spec.key: spec for spec in BUILTIN_MODELS}
    for name, info in families().items():
        # Families that need no weights (bundled OCR engines) are usable under their own name.
        if not info.needs_weights and info.backend == "classic" and name not in catalog:
            catalog[name] = ModelSpec(
                key=name, family=name, name=name, builtin=True, description=info.notes[0] if info.notes else ""
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
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type", "")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{config_file} is not valid JSON: {exc}") from None
    family = MODEL_TYPE_TO_FAMILY.get(model_type)
    if family is None:
        raise UserError(
            f"{folder}: model_type {model_type!r} is not supported; "
            f"supported: {', '.join(sorted(MODEL_TYPE_TO_FAMILY))}"
        )
    return ModelSpec(
        key=key or folder.name,
        family=family,
        name=folder.name,
        path=str(folder),
        weights_gb=folder_weights_gb(folder),
    )


def folder_weights_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e9
