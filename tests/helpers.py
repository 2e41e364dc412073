"""Helpers the tests share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from chatvlmllm.devtools.hub_tiny import shared_dir

SHARED = shared_dir()
SHARED_EVAL = SHARED / "eval"
HUBFILES = SHARED / "hubfiles"
# Built-in models whose hub files are not in ../shared/hubfiles, and why (hubfiles/SOURCES.md).
NO_REAL_FILES = {"qwen25_vl_3b": "no public copy of Qwen2.5-VL-3B-Instruct's hub files was found"}
TESSERACT_REQUIRED = os.environ.get("CHATVLMLLM_REQUIRE_TESSERACT") == "1"


def require_tesseract() -> None:
    """Skip without the tesseract binary, except in CI (CHATVLMLLM_REQUIRE_TESSERACT=1), where it must run."""
    if shutil.which("tesseract") is None:
        if TESSERACT_REQUIRED:
            pytest.fail("CHATVLMLLM_REQUIRE_TESSERACT=1 but the tesseract binary is missing")
        pytest.skip("tesseract binary not installed (apt-get install tesseract-ocr tesseract-ocr-rus)")


def require_hubfiles() -> Path:
    """The real hub files of the built-in models (../shared/hubfiles); their absence is a failure."""
    if not (HUBFILES / "SOURCES.md").is_file():
        pytest.fail(f"the real hub files are not at {HUBFILES} (../shared/hubfiles beside the checkout)")
    return HUBFILES


def text_image(lines: list[str], size: tuple[int, int] = (640, 360)) -> Image.Image:
    """A white page with black text, for OCR and upload tests."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((20, 20 + 40 * i), line, fill="black", font_size=28)
    return image


def image_bytes(image: Image.Image, fmt: str = "PNG", **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def pdf_of(images: list[Image.Image]) -> bytes:
    """A PDF with one page per image (Pillow's PDF writer)."""
    buffer = io.BytesIO()
    first, *rest = [image.convert("RGB") for image in images]
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=100)
    return buffer.getvalue()


def write_models_file(path: Path, entries: dict[str, dict]) -> Path:
    """Write a user catalog TOML (the same file format users write)."""
    lines = []
    for key, entry in entries.items():
        lines.append(f"[models.{key}]")
        for field, value in entry.items():
            rendered = (
                f'"{value}"'
                if isinstance(value, str)
                else repr(value).lower()
                if isinstance(value, bool)
                else repr(value)
            )
            lines.append(f"{field} = {rendered}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def engine_for(cache, key: str):
    """A catalog model loaded the production way: planned for this machine, held by `cache`."""
    from chatvlmllm.models.catalog import load_catalog
    from chatvlmllm.models.hardware import probe
    from chatvlmllm.models.planner import plan_load

    spec = load_catalog()[key]
    return cache.get(spec, plan_load(probe(), spec))
