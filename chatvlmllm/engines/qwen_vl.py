"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL through transformers' own classes.

AutoModelForImageTextToText + the model's processor + apply_chat_template(tokenize=True)
+ TextIteratorStreamer: nothing of the model's preprocessing is rewritten here.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import Any

from chatvlmllm import weights
from chatvlmllm.engines.base import FamilyInfo, GenerationSettings, GenerationStats, Message
from chatvlmllm.engines.hf_common import TransformersEngine, image_only_processor, stream_generate

_ENGINE = "chatvlmllm.engines.qwen_vl:QwenVLEngine"
# Pixel budgets: Qwen2/2.5-VL patches are 28 px after merging, Qwen3-VL 32 px.
FAMILIES = {
    "qwen2_vl": FamilyInfo(
        "qwen2_vl",
        _ENGINE,
        default_max_pixels=28 * 28 * 1280,
        default_min_pixels=28 * 28 * 4,
        cpu_max_pixels=28 * 28 * 256,
    ),
    "qwen25_vl": FamilyInfo(
        "qwen25_vl",
        _ENGINE,
        default_max_pixels=28 * 28 * 1280,
        default_min_pixels=28 * 28 * 4,
        cpu_max_pixels=28 * 28 * 256,
    ),
    "qwen3_vl": FamilyInfo(
        "qwen3_vl",
        _ENGINE,
        default_max_pixels=32 * 32 * 1280,
        default_min_pixels=32 * 32 * 4,
        cpu_max_pixels=32 * 32 * 256,
    ),
}


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages in the chat-template format: images first, then the text."""
    converted = []
    for message in messages:
        content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in message.images]
        if message.text:
            content.append({"type": "text", "text": message.text})
        converted.append({"role": message.role, "content": content})
    return converted


class QwenVLEngine(TransformersEngine):
    def _load(self, plan) -> None:
        from transformers import AutoModelForImageTextToText

        path = weights.resolve(self.spec)
        self.processor = image_only_processor(path)
        model = AutoModelForImageTextToText.from_pretrained(path, **self.model_kwargs(plan))
        self.model = self.place(model, plan)

    def prepare_inputs(self, messages: Sequence[Message], max_pixels: int | None) -> Any:
        images_kwargs = {}
        if max_pixels:
            min_pixels = min(self.plan.min_pixels or max_pixels, max_pixels)
            images_kwargs["size"] = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
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
        inputs = self.prepare_inputs(messages, settings.max_pixels or self.plan.max_pixels)
        stats = yield from stream_generate(self.model, self.processor.tokenizer, inputs, settings, cancel)
        image_token_id = self.model.config.image_token_id
        stats.extras["image_tokens"] = int((inputs["input_ids"] == image_token_id).sum())
        if "image_grid_thw" in inputs:
            stats.extras["image_grid_thw"] = inputs["image_grid_thw"].tolist()
        return stats
