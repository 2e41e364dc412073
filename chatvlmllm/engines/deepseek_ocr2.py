"""DeepSeek-OCR-2 (DeepSeek, 3B MoE): document → Markdown with grounding boxes, native in transformers.

Prompts (model card): "<|grounding|>Convert the document to markdown." (layout with boxes) and
"Free OCR." (text only). Grounded answers carry `<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>`
spans on a 0..999 grid; they are parsed into the layout structure for the page overlay, and the
Markdown without the tags is kept as the normalised text. transformers' class refuses
flash_attention_2, so the planner offers sdpa and eager only.

transformers' own conversion (deepseek-community/DeepSeek-OCR-2) writes no chat template: the
processor is called with the model card's plain prompt, "<image>\n" then the instruction.
"""

from __future__ import annotations

import re
from typing import Any

from chatvlmllm.decisions import Task
from chatvlmllm.devtools.tiny_doc_models import build_tiny_deepseek_ocr2
from chatvlmllm.documents.markup import layout_record, parse_grounding, sanitize_tables
from chatvlmllm.engines.doc_vlm import DocVLMEngine
from chatvlmllm.i18n import N_
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

GROUNDED_MARKDOWN = "<|grounding|>Convert the document to markdown."
_GROUNDING_TAGS = re.compile(r"<\|ref\|>.*?<\|/ref\|>\s*<\|det\|>.*?<\|/det\|>\s*", re.S)


class DeepseekOcr2Options(LanguageModelOptions):
    """DeepSeek-OCR-2 takes no extra options; prompts follow the request's task."""


class DeepseekOcr2Engine(DocVLMEngine):
    keep_special_tokens = True  # the grounding tags are special tokens
    max_images = 1

    def plain_prompt(self, prompt: str, image_count: int) -> str | None:
        return f"{self.processor.image_token}\n" * image_count + prompt

    def normalise(self, text: str, task: Task, image_size: tuple[int, int]) -> dict[str, Any]:
        extras: dict[str, Any] = {"normalised": sanitize_tables(_GROUNDING_TAGS.sub("", text)).strip()}
        elements = parse_grounding(text, image_size)
        if elements:
            extras["layout"] = layout_record(elements, image_size, "grounding")
        return extras


FAMILIES = {
    "deepseek_ocr2": FamilyInfo(
        "deepseek_ocr2",
        DeepseekOcr2Engine,
        attention=("sdpa", "eager"),  # DeepseekOcr2ForConditionalGeneration rejects flash_attention_2
        capabilities=frozenset({"ocr", "layout"}),
        cpu_max_pixels=1024 * 1024,
        model_types=("deepseek_ocr2",),
        tiny_builder=build_tiny_deepseek_ocr2,
        options=DeepseekOcr2Options,
        prompts={
            Task.TRANSCRIBE: GROUNDED_MARKDOWN,
            Task.LAYOUT: GROUNDED_MARKDOWN,
            Task.TABLE: GROUNDED_MARKDOWN,
            Task.FORMULA: GROUNDED_MARKDOWN,
            Task.CHART: "Free OCR.",
        },
        entries=(
            CatalogEntry(
                key="deepseek_ocr2",
                name="DeepSeek-OCR-2",
                hub_id="deepseek-community/DeepSeek-OCR-2",
                params_b=3.39,
                weights_gb=6.8,
                description=N_("3B MoE document → Markdown with grounding boxes."),
                licence="Apache-2.0",
                scores=Scores(
                    omnidocbench=91.09, source="OmniDocBench v1.5 overall: DeepSeek-OCR 2 paper / model card"
                ),
            ),
        ),
    ),
}
