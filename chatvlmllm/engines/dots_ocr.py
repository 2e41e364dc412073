"""dots.ocr (rednote-hilab): layout-aware OCR through chatvlmllm's own dots.ocr model code.

dots.ocr has no transformers class, and its hub repository's Python code fails under the
pinned transformers (one token, then an assertion) and cannot run its vision tower on CPU.
This adapter runs no code from the hub: `chatvlmllm.engines._dots_vision` holds the vision
tower written here and joins it to transformers' own `Qwen2ForCausalLM`; the checkpoint's
safetensors load by their own parameter names, and the processor settings and chat template
come from the checkpoint folder. The vision tower never needs flash-attn: it attends one image
at a time with torch's `scaled_dot_product_attention` (or `eager` when the plan says eager)
and runs in the plan's dtype (bfloat16, float16 or float32).

Prompts are dots.ocr's own (its `dots_ocr/utils/prompts.py`), chosen with
the `prompt_mode` option (`DotsOptions`). Without one, an empty message or a transcription
request gets `prompt_layout_all_en`, and any other message is a free question, sent as the
prompt itself. Layout answers are parsed (`chatvlmllm.documents.layout`) into
`extras["layout"]` = {"elements", "image_size", "input_size", "truncated", "markdown", ...}
with boxes on the ORIGINAL image.

Conversation: dots.ocr reads one page at a time by default: image `image_index`
(default 0) of the latest user message that has images. The option `all_images = true`
sends every image of that message in one prompt. The question is the latest user message's
text; earlier turns are not sent (the model has no use for them).

Length: a transcription or layout answer gets DOTS_MAX_NEW_TOKENS unless the user set
`max_new_tokens` (settings or options); a free question gets the usual default.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from chatvlmllm.decisions import Reason, Script
from chatvlmllm.devtools.tiny_models import build_tiny_dots_ocr
from chatvlmllm.engines._dots_prompts import LAYOUT_MODES, DotsRequestOptions, answer_budget, choose_prompt, dots_page
from chatvlmllm.engines.base import (
    GenerationSettings,
    GenerationStats,
    Message,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.engines.hf_common import TransformersEngine, stream_generate, torch_dtype
from chatvlmllm.errors import EngineError, UserError
from chatvlmllm.i18n import N_, lazy_message
from chatvlmllm.models import weights
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, Scores

if TYPE_CHECKING:
    from chatvlmllm.models.catalog import ModelSpec
    from chatvlmllm.models.planner import LoadPlan

log = logging.getLogger(__name__)

# Pinned revision of the built-in entry: a snapshot of rednote-hilab/dots.ocr on the hub.
PINNED_REVISION = "c0111ce6bc07803dbc267932ffef0ae3a51dc951"


def vision_attention_for(attention: str) -> str:
    """The vision tower's attention for the language model's: eager stays eager, anything else is sdpa."""
    return "eager" if attention == "eager" else "sdpa"


def plan_check(spec: ModelSpec, dtype: str, vision_attention: str | None) -> tuple[Reason, ...]:
    """The planner's dots.ocr reasons: which code runs (ours, no remote code) and how it attends."""
    tower = vision_attention or "sdpa"
    kernel = "torch scaled_dot_product_attention" if tower == "sdpa" else lazy_message("explicit matmul + softmax")
    return (
        Reason.info(
            lazy_message(
                "dots.ocr runs chatvlmllm's own model code (no remote code from the hub): vision tower {tower} one "
                "image at a time ({kernel}, flash-attn not needed), in {dtype}; language model: transformers' Qwen2",
                tower=tower,
                kernel=kernel,
                dtype=dtype,
            )
        ),
    )


class DotsOptions(DotsRequestOptions):
    """What a dots.ocr entry (or one answer) may set; see the module docstring."""

    all_images: bool = Field(
        False, description="Send every image of the latest message with images in one prompt (not only image_index)."
    )


# -- loading -------------------------------------------------------------------------------


def read_config(path: str | Path) -> dict[str, Any]:
    config_file = Path(path) / "config.json"
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EngineError(f"cannot read dots.ocr's config {config_file}: {exc}") from exc
    if raw.get("model_type") != "dots_ocr" or not isinstance(raw.get("vision_config"), dict):
        raise EngineError(f"{config_file} is not a dots.ocr config (model_type dots_ocr with a vision_config)")
    return raw


def load_model(path: str | Path, dtype: str, attention: str, vision_attention: str, **kwargs: Any) -> Any:
    """dots.ocr's weights into our model classes; refuses a checkpoint whose parameter names differ."""
    from chatvlmllm.engines._dots_vision import DotsOcrForGeneration, VisionAttention, language_config

    config = language_config(read_config(path))
    loaded: Any = DotsOcrForGeneration.from_pretrained(
        str(path),
        config=config,
        dtype=torch_dtype(dtype),
        attn_implementation=attention,
        output_loading_info=True,
        **kwargs,
    )
    model, info = loaded
    missing = [
        name for name in info.get("missing_keys", ()) if name != "lm_head.weight" or not config.tie_word_embeddings
    ]
    unexpected = sorted(info.get("unexpected_keys", ()))
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or unexpected or mismatched:
        raise EngineError(
            f"{path} does not hold dots.ocr's parameters: missing {sorted(missing)[:5]}, "
            f"unexpected {unexpected[:5]}, mismatched {mismatched[:5]}"
        )
    model.vision_tower.set_attention(VisionAttention(vision_attention))
    return model


def read_chat_template(path: str | Path) -> str | None:
    """The checkpoint's chat template: chat_template.jinja, else chat_template.json (the hub's file)."""
    folder = Path(path)
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    return None


def load_processor(path: str | Path, image_token_id: int) -> Any:
    """dots.ocr's processor (Qwen2.5-VL's class) from the folder's own files, without remote code.

    The parts are loaded by their concrete classes: an Auto* loader would read config.json's
    `auto_map` and offer to run the hub's Python code. No video sub-processor (it needs
    torchvision; dots.ocr reads images). Its image token is <|imgpad|>, not Qwen's <|image_pad|>.
    """
    import transformers
    from transformers import Qwen2_5_VLProcessor, Qwen2Tokenizer
    from transformers.utils import is_torchvision_available

    # Without torchvision the library falls back to the PIL class anyway; naming it avoids the warning.
    image_processor_class = (
        transformers.Qwen2VLImageProcessor if is_torchvision_available() else transformers.Qwen2VLImageProcessorPil
    )

    class DotsImageOnlyProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    tokenizer = Qwen2Tokenizer.from_pretrained(str(path))
    template = read_chat_template(path) or tokenizer.chat_template
    if not template:
        raise EngineError(f"{path} has no chat template for dots.ocr's processor")
    image_processor = image_processor_class.from_pretrained(str(path))
    processor = DotsImageOnlyProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    processor.image_token = tokenizer.convert_ids_to_tokens(image_token_id)
    processor.image_token_id = image_token_id
    return processor


def collect(chunks: Generator[str, None, GenerationStats], sink: list[str]) -> Generator[str, None, GenerationStats]:
    """Pass chunks through, keeping a copy (the layout parser needs the whole answer)."""
    try:
        while True:
            chunk = next(chunks)
            sink.append(chunk)
            yield chunk
    except StopIteration as stop:
        return stop.value or GenerationStats()
    finally:
        chunks.close()


class DotsOcrEngine(TransformersEngine):
    """dots.ocr through chatvlmllm's own model code (see the module docstring)."""

    vision_attention = "sdpa"

    def _load(self, plan: LoadPlan) -> None:
        path = weights.resolve(self.spec)
        self.vision_attention = plan.vision_attention or vision_attention_for(plan.attention)
        kwargs = {k: v for k, v in self.model_kwargs(plan).items() if k not in ("dtype", "attn_implementation")}
        kwargs.pop("trust_remote_code", None)  # never: this adapter runs only its own code
        model = load_model(path, plan.dtype, plan.attention, self.vision_attention, **kwargs)
        self.processor = load_processor(path, model.config.image_token_id)
        self.model = self.place(model, plan)

    def pixel_budget(self, max_pixels: int | None) -> tuple[int, int]:
        """(min_pixels, max_pixels) per page: the plan's (or this answer's) over the processor's defaults."""
        size = self.processor.image_processor.size
        shortest = self.loaded_plan().min_pixels or size.shortest_edge
        # Never below the processor's minimum: a smaller page would be fewer tokens than dots.ocr trained on.
        return shortest, max(max_pixels or size.longest_edge, shortest)

    def input_size(self, width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
        """(width, height) the processor will resize this page to."""
        from chatvlmllm.documents.layout import model_input_size

        image_processor = self.processor.image_processor
        min_pixels, max_pixels = self.pixel_budget(max_pixels)
        return model_input_size(
            width, height, min_pixels, max_pixels, image_processor.patch_size * image_processor.merge_size
        )

    def prepare_inputs(self, images: list[Any], prompt: str, max_pixels: int | None) -> Any:
        min_pixels, max_pixels = self.pixel_budget(max_pixels)
        images_kwargs = {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}
        content = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": prompt}]
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images_kwargs": images_kwargs},
        )
        inputs.pop("mm_token_type_ids", None)  # a Qwen2.5-VL processor output the Qwen2 forward does not take
        return self.on_model(inputs)

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        options = DotsOptions.of(self.spec.options, settings.options)
        images = self.images(messages, options)
        max_pixels = settings.max_pixels or self.loaded_plan().max_pixels
        width, height = images[0].size
        original_size = (width, height)
        mode, prompt = choose_prompt(
            latest_user_text(messages), options, original_size, self.input_size(width, height, max_pixels)
        )
        inputs = self.prepare_inputs(images, prompt, max_pixels)
        grids = [[int(v) for v in row] for row in inputs["image_grid_thw"].tolist()]
        patch = self.processor.image_processor.patch_size
        input_size = (grids[0][2] * patch, grids[0][1] * patch)  # what the model saw, from the processor itself
        budget = answer_budget(mode, settings, options)
        parts: list[str] = []
        settings = replace(settings, max_new_tokens=budget)
        stats = yield from collect(
            stream_generate(self.model, self.processor.tokenizer, inputs, settings, cancel), parts
        )
        stats.extras.update(
            image_tokens=int((inputs["input_ids"] == self.model.config.image_token_id).sum()),
            image_grid_thw=grids[0] if len(grids) == 1 else grids,
            images=len(images),
            prompt_mode=mode,
            max_new_tokens=budget,
            vision_attention=self.vision_attention,
            model_code="chatvlmllm",
        )
        if mode in LAYOUT_MODES and len(images) == 1:
            from chatvlmllm.documents.layout import layout_extras

            stats.extras["layout"] = layout_extras("".join(parts), original_size, input_size, mode)
        return stats

    @classmethod
    def images(cls, messages: Sequence[Message], options: DotsOptions) -> list[Any]:
        """The page (or, with the option all_images, every image) this answer reads."""
        if options.all_images:
            images = latest_user_images(messages)
            if not images:
                raise UserError("dots.ocr needs a page image: upload an image or a PDF first.")
            return [image.convert("RGB") for image in images]
        return [cls.page(messages, options)]

    page = staticmethod(dots_page)


FAMILIES = {
    "dots_ocr": FamilyInfo(
        "dots_ocr",
        DotsOcrEngine,
        options=DotsOptions,
        capabilities=frozenset({"ocr", "layout", "chat"}),
        default_max_pixels=11_289_600,
        default_min_pixels=3136,
        max_pixels_without_fa2=1_003_520,  # 28·28·1280: bounds one image's n×n attention scores
        plan_check=plan_check,
        model_types=("dots_ocr",),
        tiny_builder=build_tiny_dots_ocr,
        entries=(
            CatalogEntry(
                key="dots_ocr",
                name="dots.ocr",
                hub_id="rednote-hilab/dots.ocr",
                revision="c0111ce6bc07803dbc267932ffef0ae3a51dc951",  # pinned weights; their Python code is never run
                params_b=3.04,
                weights_gb=6.1,
                description=N_(
                    "Layout-aware OCR (boxes, tables as HTML, formulas as LaTeX); chatvlmllm's own model code."
                ),
                licence="MIT",
                scores=Scores(
                    omnidocbench=88.41, source="OmniDocBench v1.5 overall: PaddleOCR-VL report (arXiv 2510.14528)"
                ),
                scripts=frozenset({Script.LATIN, Script.CJK}),
            ),
        ),
    ),
}
