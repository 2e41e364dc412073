"""GLM-OCR (Z.ai, 0.9B): GLM-4.6V-style vision + a small GLM text model, native in transformers.

Prompts (model card): "Text Recognition:", "Table Recognition:", "Formula Recognition:";
tables come back as HTML. Its processor (Glm46VProcessor) carries a video sub-processor that
needs torchvision, so it loads image-only, as Qwen-VL's does.
"""

from __future__ import annotations

from typing import Any

from chatvlmllm.decisions import Script, Task
from chatvlmllm.devtools.tiny_doc_models import build_tiny_glm_ocr
from chatvlmllm.engines.doc_vlm import DocVLMEngine
from chatvlmllm.engines.hf_common import pixel_bounds_kwargs
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

_PATCH = 28  # patch 14 × merge 2


class GlmOcrOptions(LanguageModelOptions):
    """GLM-OCR takes no extra options; prompts follow the request's task."""


class GlmOcrEngine(DocVLMEngine):
    # The processor (Glm46VProcessor, from the folder) loads image-only: see hf_common.load_processor.
    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        return pixel_bounds_kwargs(self.loaded_plan(), max_pixels)


FAMILIES = {
    "glm_ocr": FamilyInfo(
        "glm_ocr",
        GlmOcrEngine,
        capabilities=frozenset({"ocr"}),
        # The real processor's bounds (processor_config.json size: shortest_edge 12544 = 16 merged
        # patches, longest_edge 9633792); the planner lowers the maximum for memory, saying why.
        default_max_pixels=9_633_792,
        default_min_pixels=12_544,
        max_pixels_without_fa2=_PATCH * _PATCH * 2048,
        cpu_max_pixels=_PATCH * _PATCH * 256,
        model_types=("glm_ocr",),
        tiny_builder=build_tiny_glm_ocr,
        options=GlmOcrOptions,
        prompts={
            Task.TRANSCRIBE: "Text Recognition:",
            Task.TABLE: "Table Recognition:",
            Task.FORMULA: "Formula Recognition:",
        },
        entries=(
            CatalogEntry(
                key="glm_ocr",
                name="GLM-OCR",
                hub_id="zai-org/GLM-OCR",
                params_b=0.9,
                weights_gb=1.8,
                description=N_("0.9B OCR specialist; top of OmniDocBench v1.5 among small models."),
                licence="MIT",
                scores=Scores(omnidocbench=94.62, source="OmniDocBench v1.5 overall: zai-org/GLM-OCR model card"),
                scripts=frozenset({Script.LATIN, Script.CJK}),
            ),
        ),
    ),
}
