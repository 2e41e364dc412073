"""granite-docling (IBM): page → DocTags (text, tables as OTSL, formulas, each with its box), on a CPU too.

Two model types carry it: `idefics3` (ibm-granite/granite-docling-258M, an Idefics3 checkpoint)
and the native `granite_docling` class. Prompts are the model card's: "Convert this page to
docling.", "Convert this table to OTSL.", "Convert formula to LaTeX.", "Convert chart to table.".
DocTags are special tokens, so they are decoded with special tokens kept and parsed into the
layout structure (boxes on a 0..500 grid) for the page overlay.
"""

from __future__ import annotations

import math
from typing import Any

from chatvlmllm.decisions import Task
from chatvlmllm.devtools.tiny_doc_models import build_tiny_granite_docling, build_tiny_granite_docling_idefics3
from chatvlmllm.documents.markup import layout_record, parse_doctags, sanitize_tables
from chatvlmllm.engines.doc_vlm import DocVLMEngine
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

GRANITE_PROMPTS = {
    Task.TRANSCRIBE: "Convert this page to docling.",
    Task.LAYOUT: "Convert this page to docling.",
    Task.TABLE: "Convert this table to OTSL.",
    Task.FORMULA: "Convert formula to LaTeX.",
    Task.CHART: "Convert chart to table.",
}
# Tiles are 512 px; a page is split into at most 4×4 of them (longest edge 2048).
LONGEST_EDGE = 2048


class GraniteDoclingOptions(LanguageModelOptions):
    """granite-docling takes no extra options; prompts follow the request's task."""


class GraniteDoclingEngine(DocVLMEngine):
    keep_special_tokens = True

    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        if not max_pixels:
            return {}
        return {"size": {"longest_edge": min(LONGEST_EDGE, math.isqrt(max_pixels))}}

    def normalise(self, text: str, task: Task, image_size: tuple[int, int]) -> dict[str, Any]:
        elements = parse_doctags(text, image_size)
        extras: dict[str, Any] = {"normalised": sanitize_tables(text)}
        if elements:
            extras["layout"] = layout_record(elements, image_size, "doctags")
            extras["normalised"] = extras["layout"]["markdown"]
        return extras


class GraniteDoclingEngineNative(GraniteDoclingEngine):
    """The native class tiles pages itself (fixed 512 px tiles); the page is only downscaled to the budget."""

    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        return {}


FAMILIES = {
    "granite_docling": FamilyInfo(
        "granite_docling",
        GraniteDoclingEngine,
        capabilities=frozenset({"ocr", "layout"}),
        default_max_pixels=LONGEST_EDGE * LONGEST_EDGE,
        cpu_max_pixels=1024 * 1024,
        model_types=("idefics3",),
        tiny_builder=build_tiny_granite_docling_idefics3,
        options=GraniteDoclingOptions,
        prompts=GRANITE_PROMPTS,
        entries=(
            CatalogEntry(
                key="granite_docling",
                name="granite-docling-258M",
                hub_id="ibm-granite/granite-docling-258M",
                params_b=0.258,
                weights_gb=0.5,
                description=N_("258M page → DocTags (layout boxes, OTSL tables, formulas); usable on a CPU."),
                licence="Apache-2.0",
                scores=Scores(source="no OmniDocBench / olmOCR-bench / DocVQA figure published on its model card"),
            ),
        ),
    ),
    "granite_docling_native": FamilyInfo(
        "granite_docling_native",
        GraniteDoclingEngineNative,
        capabilities=frozenset({"ocr", "layout"}),
        default_max_pixels=LONGEST_EDGE * LONGEST_EDGE,
        cpu_max_pixels=1024 * 1024,
        model_types=("granite_docling",),
        tiny_builder=build_tiny_granite_docling,
        options=GraniteDoclingOptions,
        prompts=GRANITE_PROMPTS,
    ),
}
