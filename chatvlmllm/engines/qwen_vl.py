"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL through transformers' own classes.

AutoModelForImageTextToText + the model's processor + apply_chat_template(tokenize=True)
+ TextIteratorStreamer: nothing of the model's preprocessing is rewritten here.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import Any

from chatvlmllm.decisions import Script, Task
from chatvlmllm.devtools.tiny_models import build_tiny_qwen2_vl, build_tiny_qwen3_vl, build_tiny_qwen25_vl
from chatvlmllm.engines.base import GenerationSettings, GenerationStats, Message
from chatvlmllm.engines.hf_common import (
    TransformersEngine,
    chat_messages,
    image_only_processor,
    load_weights,
    pixel_bounds_kwargs,
    stream_generate,
)
from chatvlmllm.i18n import N_
from chatvlmllm.models import weights
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores

_APACHE = "Apache-2.0"
# Qwen-VL models are prompted in plain words; these are the task wordings of the Qwen cookbooks.
QWEN_PROMPTS = {
    Task.TRANSCRIBE: "Read all the text in the image.",
    Task.TABLE: "Convert the table in the image to HTML.",
    Task.FORMULA: "Write the formula in the image as LaTeX.",
    Task.CHART: "Describe the chart and give its data as a table.",
    Task.LAYOUT: "Parse the document layout: give each block's bbox_2d, category and text as JSON.",
}
_QWEN3_SCRIPTS = frozenset({Script.LATIN, Script.CYRILLIC, Script.CJK})  # 32 OCR languages (model card)


class QwenOptions(LanguageModelOptions):
    """Qwen-VL takes no extra options: pixel budgets are the catalog's max_pixels/min_pixels."""


# Pixel budgets: Qwen2/2.5-VL patches are 28 px after merging, Qwen3-VL 32 px. The defaults are the
# real processors' bounds (Qwen2/2.5-VL preprocessor_config.json: min_pixels 3136, max_pixels 12845056);
# the planner lowers the maximum for memory without flash-attn or on a CPU, and says so.
_QWEN2_MIN_PIXELS = 3_136
_QWEN2_MAX_PIXELS = 12_845_056


class QwenVLEngine(TransformersEngine):
    def _load(self, plan) -> None:
        from transformers import AutoModelForImageTextToText

        path = weights.resolve(self.spec)
        self.processor = image_only_processor(path)
        model = load_weights(AutoModelForImageTextToText, path, **self.model_kwargs(plan))
        self.model = self.place(model, plan)

    def prepare_inputs(self, messages: Sequence[Message], max_pixels: int | None) -> Any:
        images_kwargs = pixel_bounds_kwargs(self.loaded_plan(), max_pixels)
        inputs = self.processor.apply_chat_template(
            chat_messages(messages),
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images_kwargs": images_kwargs},
        )
        return self.on_model(inputs)

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        inputs = self.prepare_inputs(messages, settings.max_pixels or self.loaded_plan().max_pixels)
        stats = yield from stream_generate(self.model, self.processor.tokenizer, inputs, settings, cancel)
        image_token_id = self.model.config.image_token_id
        stats.extras["image_tokens"] = int((inputs["input_ids"] == image_token_id).sum())
        if "image_grid_thw" in inputs:
            stats.extras["image_grid_thw"] = inputs["image_grid_thw"].tolist()
        return stats


FAMILIES = {
    "qwen2_vl": FamilyInfo(
        "qwen2_vl",
        QwenVLEngine,
        default_max_pixels=_QWEN2_MAX_PIXELS,
        default_min_pixels=_QWEN2_MIN_PIXELS,
        max_pixels_without_fa2=28 * 28 * 1280,
        cpu_max_pixels=28 * 28 * 256,
        model_types=("qwen2_vl",),
        tiny_builder=build_tiny_qwen2_vl,
        options=QwenOptions,
        prompts=QWEN_PROMPTS,
        entries=(
            CatalogEntry(
                key="qwen_vl_2b",
                name="Qwen2-VL-2B-Instruct",
                hub_id="Qwen/Qwen2-VL-2B-Instruct",
                params_b=2.21,
                weights_gb=4.4,
                description=N_("General document chat and OCR; the default."),
                licence=_APACHE,
                scores=Scores(docvqa=90.1, source="DocVQA test: Qwen/Qwen2-VL-2B-Instruct model card"),
            ),
        ),
    ),
    "qwen25_vl": FamilyInfo(
        "qwen25_vl",
        QwenVLEngine,
        default_max_pixels=_QWEN2_MAX_PIXELS,
        default_min_pixels=_QWEN2_MIN_PIXELS,
        max_pixels_without_fa2=28 * 28 * 1280,
        cpu_max_pixels=28 * 28 * 256,
        model_types=("qwen2_5_vl",),
        tiny_builder=build_tiny_qwen25_vl,
        options=QwenOptions,
        prompts=QWEN_PROMPTS,
        entries=(
            CatalogEntry(
                key="qwen25_vl_3b",
                name="Qwen2.5-VL-3B-Instruct",
                hub_id="Qwen/Qwen2.5-VL-3B-Instruct",
                params_b=3.75,
                weights_gb=7.5,
                description=N_("Qwen2.5-VL; good at tables, charts and key-value extraction."),
                licence="Qwen Research License (non-commercial)",
                scores=Scores(docvqa=93.9, source="DocVQA test: Qwen/Qwen2.5-VL-3B-Instruct model card"),
            ),
        ),
    ),
    "qwen3_vl": FamilyInfo(
        "qwen3_vl",
        QwenVLEngine,
        # Qwen3-VL's processor (preprocessor_config.json size): shortest_edge 65536, longest_edge 16777216.
        default_max_pixels=16_777_216,
        default_min_pixels=65_536,
        max_pixels_without_fa2=32 * 32 * 1280,
        cpu_max_pixels=32 * 32 * 256,
        model_types=("qwen3_vl",),
        tiny_builder=build_tiny_qwen3_vl,
        options=QwenOptions,
        prompts=QWEN_PROMPTS,
        entries=(
            CatalogEntry(
                key="qwen3_vl_2b",
                name="Qwen3-VL-2B-Instruct",
                hub_id="Qwen/Qwen3-VL-2B-Instruct",
                params_b=2.13,
                weights_gb=4.3,
                description=N_("Newer Qwen VLM; stronger OCR and long documents."),
                licence=_APACHE,
                scores=Scores(docvqa=93.3, source="DocVQA test: Qwen3-VL-2B-Instruct model card"),
                scripts=_QWEN3_SCRIPTS,
            ),
            CatalogEntry(
                key="qwen3_vl_4b",
                name="Qwen3-VL-4B-Instruct",
                hub_id="Qwen/Qwen3-VL-4B-Instruct",
                params_b=4.44,
                weights_gb=8.9,
                description=N_("Document Q&A and chat for 12–16 GB GPUs."),
                licence=_APACHE,
                scores=Scores(docvqa=95.3, source="DocVQA test: Qwen3-VL-4B-Instruct model card"),
                scripts=_QWEN3_SCRIPTS,
            ),
            CatalogEntry(
                key="qwen3_vl_8b",
                name="Qwen3-VL-8B-Instruct",
                hub_id="Qwen/Qwen3-VL-8B-Instruct",
                params_b=8.77,
                weights_gb=17.5,
                description=N_("The strongest document chat that fits 24 GB GPUs."),
                licence=_APACHE,
                scores=Scores(docvqa=96.1, source="DocVQA test: Qwen3-VL-8B-Instruct model card"),
                scripts=_QWEN3_SCRIPTS,
            ),
        ),
    ),
}
