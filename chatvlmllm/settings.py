"""The one settings object: every value the environment can change, read when it is asked for.

`settings()` builds a fresh `Settings` from the environment on each call (pydantic-settings, prefix
`CHATVLMLLM_`), so a value set after import (a test, a front end, a server started with `--env`) is
seen at once; nothing is fixed at import time. The Hugging Face and XDG variables keep their own
names. Derived paths (`data_dir`, `database_path`, `models_file`) and the hub helpers live here too,
so no other module reads `os.environ` for configuration.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatvlmllm.errors import UserError

DB_NAME = "chats.sqlite3"
HUB_ENDPOINT = "https://huggingface.co"
_TRUE = frozenset({"1", "true", "yes", "on"})


class Settings(BaseSettings):
    """Configuration from the environment (`CHATVLMLLM_<NAME>`; see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="CHATVLMLLM_", extra="ignore", env_ignore_empty=True)

    # -- where things are kept -----------------------------------------------------------------
    data_dir_override: Path | None = Field(
        None, validation_alias="CHATVLMLLM_DATA_DIR", description="Chats, uploads and caches."
    )
    models_file_override: Path | None = Field(
        None, validation_alias="CHATVLMLLM_MODELS_FILE", description="The user's models file (TOML)."
    )
    xdg_data_home: Path | None = Field(None, validation_alias="XDG_DATA_HOME")
    xdg_config_home: Path | None = Field(None, validation_alias="XDG_CONFIG_HOME")

    # -- models ----------------------------------------------------------------------------------
    default_model: str | None = Field(None, description="The model to start with, instead of the automatic pick.")
    fallback: str = Field("", description="A fixed fallback chain: model keys separated by commas.")
    hf_hub_offline: str = Field("", validation_alias="HF_HUB_OFFLINE")
    hf_endpoint: str = Field("", validation_alias="HF_ENDPOINT")

    # -- documents -------------------------------------------------------------------------------
    max_upload_mb: float = Field(50.0, gt=0, description="Largest upload accepted.")
    # Decoded-size cap against decompression bombs (a 40 kB PNG can claim 50,000² pixels).
    max_image_pixels: int = Field(80_000_000, gt=0)
    # A rendered PDF page never exceeds this (150 DPI A4 is 2.2 MP; a poster page is scaled down).
    max_page_pixels: int = Field(16_000_000, gt=0)
    # Pixels of page images one question (or one server request) may use.
    max_request_pixels: int = Field(64_000_000, gt=0)

    # -- chat and server -------------------------------------------------------------------------
    partial_save_s: float = Field(2.0, ge=0, description="How often a streaming answer is saved.")
    max_request_mb: float | None = Field(None, gt=0, description="The server's body limit (default: uploads + 1/3).")
    body_timeout_s: float = Field(30.0, gt=0, description="The server's limit for receiving a request body.")
    api_key: str | None = Field(None, description="The server's API key (clients send it as a bearer token).")
    log_level: str = ""

    # -- interface language (chatvlmllm.i18n) -----------------------------------------------------
    ui_lang: str | None = Field(
        None, description="Force the interface language (en, ru): default, the browser's (app) or LANG (CLI)."
    )
    # The POSIX locale variables, in gettext's order of precedence (the CLI follows them).
    language_list: str = Field("", validation_alias="LANGUAGE")
    lc_all: str = Field("", validation_alias="LC_ALL")
    lc_messages: str = Field("", validation_alias="LC_MESSAGES")
    lang: str = Field("", validation_alias="LANG")

    # -- derived -----------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """Where chats and uploads are kept: $CHATVLMLLM_DATA_DIR, else $XDG_DATA_HOME/chatvlmllm
        (~/.local/share/chatvlmllm)."""
        if self.data_dir_override is not None and str(self.data_dir_override):
            return self.data_dir_override.expanduser()
        return (self.xdg_data_home or Path.home() / ".local" / "share") / "chatvlmllm"

    @property
    def database_path(self) -> Path:
        """The one SQLite file: chats, their documents, the OCR cache."""
        return self.data_dir / DB_NAME

    @property
    def models_file(self) -> Path:
        if self.models_file_override is not None and str(self.models_file_override):
            return self.models_file_override.expanduser()
        return (self.xdg_config_home or Path.home() / ".config") / "chatvlmllm" / "models.toml"

    @property
    def max_body_bytes(self) -> int:
        """A request carries pages base64-encoded (4/3 of the upload) plus its messages."""
        mb = self.max_request_mb if self.max_request_mb is not None else self.max_upload_mb * 4 / 3 + 4
        return int(mb * 1e6)

    @property
    def hub_offline(self) -> bool:
        return self.hf_hub_offline.strip().lower() in _TRUE

    @property
    def hub_endpoint(self) -> str:
        return self.hf_endpoint.strip().rstrip("/") or HUB_ENDPOINT


def settings() -> Settings:
    """The settings as the environment says now (cheap: a few dozen variables are read).

    A value that does not parse is a `UserError` naming the variable, never a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise UserError(f"Bad setting in the environment: {problems}") from None


def _variable(location: tuple[int | str, ...]) -> str:
    name = str(location[0]) if location else "?"
    return name if name.isupper() else f"CHATVLMLLM_{name.upper()}"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: nothing may be fetched from the hub."""
    return settings().hub_offline
