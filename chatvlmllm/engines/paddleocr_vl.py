"""PaddleOCR-VL (PaddlePaddle, 0.9B): NaViT vision encoder + ERNIE-4.5-0.3B, native in transformers.

Reads 109 languages including Cyrillic; one prompt per element kind (model card):
"OCR:", "Table Recognition:", "Formula Recognition:", "Chart Recognition:". Tables come back
as HTML-like OTSL-free markup, formulas as LaTeX. It does not hold a conversation.
"""

from __future__ import annotations

from typing import Any

from chatvlmllm.decisions import Script, Task
from chatvlmllm.devtools.tiny_doc_models import build_tiny_paddleocr_vl
from chatvlmllm.engines.doc_vlm import DocVLMEngine
from chatvlmllm.engines.hf_common import pixel_bounds_kwargs
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

# Patch 14 × merge 2: the processor's budget in pixels is a multiple of 28².
_PATCH = 28


class PaddleOptions(LanguageModelOptions):
    """PaddleOCR-VL takes no extra options; prompts follow the request's task."""


class PaddleOcrVlEngine(DocVLMEngine):
    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        return pixel_bounds_kwargs(self.loaded_plan(), max_pixels)


FAMILIES = {
    "paddleocr_vl": FamilyInfo(
        "paddleocr_vl",
        PaddleOcrVlEngine,
        capabilities=frozenset({"ocr"}),
        # The class declares sdpa and flash-attention support (PaddleOCRVLPreTrainedModel).
        # The real processor's bounds (preprocessor_config.json min_pixels 147384, max_pixels 2822400);
        # the planner lowers the maximum for memory, saying why.
        default_max_pixels=2_822_400,
        default_min_pixels=147_384,
        max_pixels_without_fa2=_PATCH * _PATCH * 2048,
        cpu_max_pixels=_PATCH * _PATCH * 256,
        model_types=("paddleocr_vl",),
        tiny_builder=build_tiny_paddleocr_vl,
        options=PaddleOptions,
        prompts={
            Task.TRANSCRIBE: "OCR:",
            Task.TABLE: "Table Recognition:",
            Task.FORMULA: "Formula Recognition:",
            Task.CHART: "Chart Recognition:",
        },
        entries=(
            CatalogEntry(
                key="paddleocr_vl",
                name="PaddleOCR-VL",
                hub_id="PaddlePaddle/PaddleOCR-VL",
                params_b=0.96,
                weights_gb=1.9,
                description=N_("0.9B document parser: text, tables, formulas, charts; 109 languages incl. Cyrillic."),
                licence="Apache-2.0",
                scores=Scores(
                    omnidocbench=92.86,
                    source="OmniDocBench v1.5 overall: PaddlePaddle/PaddleOCR-VL model card (arXiv 2510.14528)",
                ),
                scripts=frozenset({Script.LATIN, Script.CYRILLIC, Script.CJK}),
            ),
        ),
    ),
}
