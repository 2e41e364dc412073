"""What the native transformers document models share (PaddleOCR-VL, LightOnOCR, GLM-OCR,
DeepSeek-OCR-2, granite-docling): the family's model class (AutoModelForImageTextToText unless it
names one) + the model's own processor (built without torchvision) and chat template, or the
model card's plain prompt where the checkpoint has no template; the family's task prompt for
transcriptions, streaming through `stream_generate`, and output normalisation (sanitised tables,
boxes into `extras["layout"]`).

Each family's adapter file declares its FamilyInfo and subclasses `DocVLMEngine` for what
differs (processor loading, pixel budget keywords, output format).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from chatvlmllm.decisions import Task
from chatvlmllm.documents.markup import sanitize_tables
from chatvlmllm.engines.base import (
    GenerationSettings,
    GenerationStats,
    Message,
    fit_to_budget,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.engines.hf_common import (
    TransformersEngine,
    chat_messages,
    load_processor,
    load_weights,
    model_class,
    stream_generate,
)
from chatvlmllm.errors import EngineError
from chatvlmllm.models import weights
from chatvlmllm.models.families import FamilyInfo, family_info
from chatvlmllm.models.tasks import classify, needs_understanding

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.planner import LoadPlan

log = logging.getLogger(__name__)

FAMILIES: dict[str, FamilyInfo] = {}  # shared code, no family of its own


def specialist_note(model_name: str, question: str) -> str:
    shown = question.strip().replace("\n", " ")
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return (
        f"*{model_name} reads documents; it does not answer questions like “{shown}”. "
        "Here is the page's text; choose a chat model (e.g. Qwen3-VL) for questions.*\n\n"
    )


class DocVLMEngine(TransformersEngine):
    """A transformers-native document model; subclasses adjust the hooks below."""

    # Pages one request may carry (None: any number).
    max_images: int | None = None
    # Output formats made of special tokens (DocTags, grounding tags) keep them in the text.
    keep_special_tokens: bool = False

    @property
    def info(self) -> FamilyInfo:
        return family_info(self.spec.family)

    # -- hooks -------------------------------------------------------------------------
    def load_processor(self, path: str) -> Any:
        return load_processor(path, self.info.processor_class)

    def images_kwargs(self, max_pixels: int | None) -> dict[str, Any]:
        """Processor image keywords for the pixel budget (pages are downscaled to it anyway)."""
        return {}

    def normalise(self, text: str, task: Task, image_size: tuple[int, int]) -> dict[str, Any]:
        """Extras from the finished answer: by default, its tables sanitised."""
        return {"normalised": sanitize_tables(text)}

    def plain_prompt(self, prompt: str, image_count: int) -> str | None:
        """The prompt text for a model card that prompts without a chat template; None: use the template."""
        return None

    def end_tokens(self) -> list[str]:
        """Tokens that end or pad an answer: removed from text decoded with special tokens kept."""
        if not self.keep_special_tokens:
            return []
        tokenizer = self.processor.tokenizer
        return [t for t in {tokenizer.eos_token, tokenizer.pad_token} if t]

    # -- the protocol ----------------------------------------------------------------------
    def _load(self, plan: LoadPlan) -> None:
        path = weights.resolve(self.spec)
        self.processor = self.load_processor(path)
        model = load_weights(model_class(self.info.model_class), path, **self.model_kwargs(plan))
        self.model = self.place(model, plan)

    def request(self, messages: Sequence[Message]) -> tuple[Task, str, str]:
        """(task, prompt sent, note shown before the answer)."""
        text = latest_user_text(messages)
        task = classify(text)
        prompt = self.info.prompt(task)
        if prompt is not None:
            return task, prompt, ""
        if needs_understanding(task) and "chat" in self.spec.caps:
            return task, text, ""
        fallback = self.info.prompt(Task.TRANSCRIBE) or text
        note = specialist_note(self.spec.display_name, text) if needs_understanding(task) else ""
        return task, fallback, note

    def conversation(self, messages: Sequence[Message], task: Task, prompt: str, images: list[Image.Image]) -> list:
        """The chat-template messages: a question keeps the conversation; a task prompt is one turn."""
        if needs_understanding(task) and "chat" in self.spec.caps:
            return chat_messages(messages)
        content = [{"type": "image", "image": image} for image in images]
        if prompt:
            content.append({"type": "text", "text": prompt})
        return [{"role": "user", "content": content}]

    def prepare_inputs(
        self, messages: Sequence[Message], max_pixels: int | None
    ) -> tuple[Task, str, str, list[Image.Image], Any]:
        """(task, prompt, note, pages read, the processor's output on the model's device)."""
        images = [fit_to_budget(image, max_pixels) for image in latest_user_images(messages)]
        if self.max_images is not None:
            images = images[: self.max_images]
        task, prompt, note = self.request(messages)
        images_kwargs = self.images_kwargs(max_pixels)
        plain = self.plain_prompt(prompt, len(images))
        if plain is not None:
            inputs = self.processor(text=plain, images=images or None, return_tensors="pt", **images_kwargs)
        elif getattr(self.processor, "chat_template", None) is None:
            raise EngineError(f"{self.spec.key}: the checkpoint has no chat template and its family no plain prompt")
        else:
            inputs = self.processor.apply_chat_template(
                self.conversation(messages, task, prompt, images),
                tokenize=True,
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
                processor_kwargs={"images_kwargs": images_kwargs},
            )
        inputs = self.on_model(inputs)
        inputs.pop("token_type_ids", None)
        return task, prompt, note, images, inputs

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        assert self.plan is not None
        task, prompt, note, images, inputs = self.prepare_inputs(messages, settings.max_pixels or self.plan.max_pixels)
        chunks = stream_generate(
            self.model,
            self.processor.tokenizer,
            inputs,
            settings,
            cancel,
            skip_special_tokens=not self.keep_special_tokens,
        )
        parts: list[str] = []
        shown_note = False
        end_tokens = self.end_tokens()
        try:
            while True:
                chunk = next(chunks)
                for token in end_tokens:
                    chunk = chunk.replace(token, "")
                parts.append(chunk)
                if note and not shown_note and chunk.strip():
                    shown_note = True
                    chunk = note + chunk
                yield chunk
        except StopIteration as stop:
            stats = stop.value or GenerationStats()
        image_token_id = getattr(self.model.config, "image_token_id", None)
        if image_token_id is not None:
            stats.extras["image_tokens"] = int((inputs["input_ids"] == image_token_id).sum())
        stats.extras.update({"task": str(task), "prompt": prompt, "pages_read": len(images)})
        if images:
            stats.extras.update(self.normalise("".join(parts), task, images[0].size))
        return stats
