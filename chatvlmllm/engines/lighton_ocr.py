"""LightOnOCR (LightOn, 1B): end-to-end page → Markdown, Pixtral vision + Qwen3 text, native in transformers.

The model card prompts with the page image alone (no instruction); output is Markdown with
tables in HTML or Markdown and formulas in LaTeX. It does not hold a conversation.

The hub folder's config.json says `model_type: mistral3` with `architectures:
[LightOnOCRForConditionalGeneration]`, and its processor_config.json names PixtralProcessor
(which refuses to load without torchvision). The model card loads LightOnOcrForConditionalGeneration
and LightOnOcrProcessor explicitly (the Auto class would build a Mistral3 model and leave the
LightOnOCR weights unused), so this family names both classes and is found by its architecture.
"""

from __future__ import annotations

import math
from typing import Any

from chatvlmllm.decisions import Task
from chatvlmllm.devtools.tiny_doc_models import build_tiny_lighton_ocr
from chatvlmllm.engines.doc_vlm import DocVLMEngine
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

# The Pixtral processor resizes so the longest edge is at most this (lightonai/LightOnOCR-2-1B
# processor_config.json: image_processor.size.longest_edge 1540 = 110 patches of 14 px).
LONGEST_EDGE = 1540


class LightOnOptions(LanguageModelOptions):
    """LightOnOCR takes no extra options."""


class LightOnOcrEngine(DocVLMEngine):
    max_images = 1  # one page per request, as the model card runs it

    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        if not max_pixels:
            return {}
        edge = min(LONGEST_EDGE, math.isqrt(max_pixels))
        return {"size": {"longest_edge": edge}}


FAMILIES = {
    "lighton_ocr": FamilyInfo(
        "lighton_ocr",
        LightOnOcrEngine,
        capabilities=frozenset({"ocr"}),
        default_max_pixels=LONGEST_EDGE * LONGEST_EDGE,
        cpu_max_pixels=28 * 28 * 256,
        model_types=("lighton_ocr",),
        architectures=("LightOnOCRForConditionalGeneration", "LightOnOcrForConditionalGeneration"),
        model_class="LightOnOcrForConditionalGeneration",
        processor_class="LightOnOcrProcessor",
        tiny_builder=build_tiny_lighton_ocr,
        options=LightOnOptions,
        # The page alone is the prompt for every transcription task (model card).
        prompts={Task.TRANSCRIBE: "", Task.TABLE: "", Task.FORMULA: "", Task.LAYOUT: ""},
        entries=(
            CatalogEntry(
                key="lighton_ocr",
                name="LightOnOCR-2-1B",
                hub_id="lightonai/LightOnOCR-2-1B",
                params_b=1.01,
                weights_gb=2.0,
                description=N_("1B end-to-end page → Markdown; fast, strong on olmOCR-bench."),
                licence="Apache-2.0",
                scores=Scores(olmocr=83.2, source="olmOCR-bench overall: lightonai/LightOnOCR-2-1B model card"),
            ),
        ),
    ),
}
