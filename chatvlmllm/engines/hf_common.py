"""What every transformers-backed engine shares: device/dtype handling, streaming
`generate` on a worker thread, the repetition guard and CUDA memory figures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from chatvlmllm.decisions import StopReason
from chatvlmllm.engines.base import BaseEngine, GenerationSettings, GenerationStats, Message
from chatvlmllm.errors import EngineError, OutOfMemoryError

if TYPE_CHECKING:
    import torch

    from chatvlmllm.models.planner import LoadPlan

log = logging.getLogger(__name__)

FAMILIES: dict = {}  # shared helpers, no family of its own


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def quantization_config(plan: LoadPlan) -> Any:
    if not plan.quantization:
        return None
    from transformers import BitsAndBytesConfig

    if plan.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch_dtype(plan.dtype), bnb_4bit_quant_type="nf4"
    )


def image_only_class(base: type) -> type[Any]:
    """`base` (a transformers processor class) without its video sub-processor.

    Every transformers video processor needs torchvision, so the stock processor fails to load
    without it. ProcessorMixin derives its sub-processors from `__init__`'s signature, so a
    subclass whose `__init__` takes no video processor loads and saves images and text through
    the library's own code.
    """

    class ImageOnlyProcessor(base):
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kw: Any):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kw)

    ImageOnlyProcessor.__name__ = base.__name__  # saved files name the real class, as on the hub
    ImageOnlyProcessor.__qualname__ = base.__qualname__
    return ImageOnlyProcessor


def image_only_processor(path: str, **kwargs: Any) -> Any:
    """The folder's own processor class (its `processor_class`, else its model_type's), image-only."""
    return load_processor(path, None, **kwargs)


def folder_processor_class(path: str) -> str:
    """The processor class a checkpoint folder names (processor, preprocessor or tokenizer config),
    else the one transformers maps its model_type to."""
    import json
    from pathlib import Path

    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    folder = Path(path)
    for file in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if (folder / file).is_file():
            name = json.loads((folder / file).read_text(encoding="utf-8")).get("processor_class")
            if name:
                return str(name)
    model_type = json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"]
    return str(PROCESSOR_MAPPING_NAMES[model_type])


def load_processor(path: str, class_name: str | None, **kwargs: Any) -> Any:
    """A checkpoint's processor from its own files, built from classes that need no torchvision.

    `class_name` (a family's declared class) wins over the folder's: LightOnOCR-2's folder names
    PixtralProcessor, which refuses to load without torchvision, while its model card loads
    LightOnOcrProcessor. A class with a video sub-processor loads image-only (`image_only_class`);
    the image processor is the library's PIL class when torchvision is missing. The folder's own
    settings (sizes, pixel bounds, special tokens, chat template) are read by `from_pretrained`.
    """
    import inspect

    import transformers

    name = class_name or folder_processor_class(path)
    try:
        processor_class = getattr(transformers, name)
    except AttributeError:
        raise EngineError(f"{path}: transformers has no processor class {name}") from None
    if "video_processor" in inspect.signature(processor_class.__init__).parameters:
        processor_class = image_only_class(processor_class)
    return processor_class.from_pretrained(path, **kwargs)


def model_class(class_name: str | None) -> Any:
    """A family's declared transformers model class, else AutoModelForImageTextToText."""
    import transformers

    return getattr(transformers, class_name or "AutoModelForImageTextToText")


def load_weights(model_class: Any, path: str, **kwargs: Any) -> Any:
    """`model_class.from_pretrained(path)`, refusing a checkpoint that leaves weights of the class unset.

    transformers only warns about missing weights and initialises them at random: the model then
    answers garbage (LightOnOCR-2's folder read by the Auto class builds a Mistral3 model with 24
    weights missing). Unused extra weights are logged, not refused.
    """
    model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise EngineError(
            f"{path} does not hold {len(missing)} weights of {type(model).__name__} "
            f"(e.g. {', '.join(missing[:3])}): not a checkpoint of this model class"
        )
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        name = type(model).__name__
        log.warning("%s: %d weights unused by %s (e.g. %s)", path, len(unexpected), name, unexpected[:3])
    return model


def pixel_bounds_kwargs(plan: LoadPlan, max_pixels: int | None) -> dict[str, Any]:
    """Image-processor keywords for a (shortest_edge, longest_edge) pixel-area budget.

    The minimum is the plan's (the real processor's, never lower); a budget below it (a user's
    --max-pixels, an out-of-memory retry) is raised to it: below the minimum a page would become
    fewer image tokens than the model was trained on.
    """
    if not max_pixels:
        return {}
    min_pixels = plan.min_pixels or max_pixels
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max(max_pixels, min_pixels)}}


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class RepetitionGuard:
    """Spots a generation whose tail is one block of tokens repeated over and over.

    Looks for a period p (1..max_period) such that the last `min_repeats` blocks of p
    tokens are identical and together span at least `min_span` tokens. Tables and lists
    repeat structure, not exact token blocks, so they pass.
    """

    def __init__(self, max_period: int = 64, min_repeats: int = 4, min_span: int = 48):
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.min_span = min_span
        self.window = max_period * min_repeats + min_span

    def looping(self, generated: list[int]) -> bool:
        n = len(generated)
        for period in range(1, self.max_period + 1):
            repeats = max(self.min_repeats, -(-self.min_span // period))
            span = period * repeats
            if span > n:
                break
            tail = generated[n - span :]
            block = tail[-period:]
            if all(tail[i] == block[i % period] for i in range(span)):
                return True
        return False


def _stopping_criteria(prompt_len: int, cancel: threading.Event, guard: RepetitionGuard | None):
    """One transformers StoppingCriteria for cancel + repetition (one call per step, not two)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class CancelOrRepetition(StoppingCriteria):
        fired = False
        _answers: dict[bool, Any] | None = None  # reused every step: this runs once per token

        def __call__(self, input_ids, scores, **kwargs):
            if self._answers is None:
                shape, device = (input_ids.shape[0],), input_ids.device
                self._answers = {
                    flag: torch.full(shape, flag, dtype=torch.bool, device=device) for flag in (False, True)
                }
            stop = cancel.is_set()
            generated = input_ids.shape[1] - prompt_len
            if not stop and guard is not None and generated >= guard.min_span:
                stop = self.fired = guard.looping(input_ids[0, -min(generated, guard.window) :].tolist())
            return self._answers[stop]

    criterion = CancelOrRepetition()
    return criterion, StoppingCriteriaList([criterion])


def _coalescing_streamer(tokenizer: Any, min_interval_s: float = 0.05, skip_special_tokens: bool = True):
    """transformers' TextIteratorStreamer, decoding at most every `min_interval_s`.

    Decoding and a thread hand-off per token cost ~7% of a small model's generate time;
    the first token still goes out at once (time to first token), later ones in batches of
    ~50 ms, smoother than any eye can tell.
    """
    import time

    import torch
    from transformers import TextIteratorStreamer

    class CoalescingStreamer(TextIteratorStreamer):
        def __init__(self) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=skip_special_tokens)
            self._pending: list[Any] = []
            self._last_flush = 0.0
            self.first_token_at: float | None = None

        def put(self, value):
            if self.skip_prompt and self.next_tokens_are_prompt:
                return super().put(value)
            self._pending.append(value.reshape(-1))
            now = time.perf_counter()
            if self.first_token_at is None:
                self.first_token_at = now
            if now - self._last_flush >= min_interval_s:
                self._flush(now)

        def _flush(self, now: float) -> None:
            if self._pending:
                super().put(torch.cat(self._pending))
                self._pending = []
            self._last_flush = now

        def end(self):
            self._flush(time.perf_counter())
            super().end()

    return CoalescingStreamer()


def sampling_kwargs(settings: GenerationSettings) -> dict[str, Any]:
    """`generate` arguments that make the user's temperature mean what it says.

    A checkpoint's generation_config.json is merged under these, and the real ones narrow
    sampling to (near) greedy (Qwen2-VL-2B-Instruct: top_k=1, top_p=0.001, temperature=0.01;
    Qwen3-VL: top_k=20, top_p=0.8): so every sampling knob is set here, not just temperature.
    Temperature 0 is greedy decoding whatever the checkpoint says; the checkpoint's
    repetition_penalty is kept (it is the model's advice, and the user has no knob for it).
    """
    if settings.temperature <= 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0}


def stream_generate(
    model: Any,
    tokenizer: Any,
    inputs: dict[str, Any],
    settings: GenerationSettings,
    cancel: threading.Event,
    skip_special_tokens: bool = True,  # False for output formats made of special tokens (DocTags)
    **generate_kwargs: Any,
) -> Generator[str, None, GenerationStats]:
    """Run `model.generate` on a worker thread and yield decoded text as it arrives."""
    prompt_len = int(inputs["input_ids"].shape[1])
    streamer = _coalescing_streamer(tokenizer, skip_special_tokens=skip_special_tokens)
    guard = RepetitionGuard() if settings.repetition_guard else None
    criterion, criteria = _stopping_criteria(prompt_len, cancel, guard)
    sampling = sampling_kwargs(settings)
    max_new_tokens = settings.budget()
    if "stop_strings" in generate_kwargs:  # generate matches stop strings through the tokenizer
        generate_kwargs.setdefault("tokenizer", tokenizer)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["ids"] = model.generate(
                **inputs,
                streamer=streamer,
                max_new_tokens=max_new_tokens,
                stopping_criteria=criteria,
                **sampling,
                **generate_kwargs,
            )
        except BaseException as exc:  # reported on the caller's thread
            result["error"] = exc
            streamer.end()

    worker = threading.Thread(target=work, name="chatvlmllm-generate", daemon=True)
    worker.start()
    try:
        for text in streamer:
            if text:
                yield text
    except GeneratorExit:
        cancel.set()  # the consumer went away: stop the GPU work too
        raise
    finally:
        worker.join()

    if "error" in result:
        raise _generation_error(result["error"]) from result["error"]
    new_tokens = int(result["ids"].shape[1]) - prompt_len
    return GenerationStats(
        stopped_by=_stop_reason(criterion.fired, cancel.is_set(), new_tokens, max_new_tokens),
        prompt_tokens=prompt_len,
        new_tokens=new_tokens,
        first_token_at=streamer.first_token_at,
    )


def _generation_error(exc: BaseException) -> Exception:
    """What `model.generate` raised, as the one-line error the reader gets."""
    if is_oom(exc):
        return OutOfMemoryError("The GPU ran out of memory while answering. Try a smaller pixel budget or fewer pages.")
    return EngineError(f"Generation failed: {exc}")


def _stop_reason(repeated: bool, cancelled: bool, new_tokens: int, max_new_tokens: int) -> StopReason:
    if repeated:
        return StopReason.REPETITION
    if cancelled:
        return StopReason.CANCELLED
    if new_tokens >= max_new_tokens:
        return StopReason.MAX_TOKENS
    return StopReason.EOS


class TransformersEngine(BaseEngine):
    """Base for engines backed by a transformers model: memory figures and unload."""

    model: Any = None
    processor: Any = None

    def load(self, plan: LoadPlan) -> None:
        try:
            super().load(plan)
        except EngineError:
            raise
        except ImportError as exc:
            raise EngineError(f"{self.spec.key} cannot load: {exc}") from exc
        except Exception as exc:
            if is_oom(exc):
                raise OutOfMemoryError(f"{self.spec.key} does not fit in GPU memory: {exc}") from exc
            raise EngineError(f"{self.spec.key} failed to load: {exc}") from exc

    def model_kwargs(self, plan: LoadPlan) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dtype": torch_dtype(plan.dtype), "attn_implementation": plan.attention}
        quant = quantization_config(plan)
        if quant is not None:
            kwargs["quantization_config"] = quant
            kwargs["device_map"] = "auto"
        if self.spec.trust_remote_code:
            kwargs["trust_remote_code"] = True
        return kwargs

    def on_model(self, inputs: Any) -> Any:
        """Processor output moved to the model's device, images in the model's dtype."""
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def place(self, model: Any, plan: LoadPlan) -> Any:
        if plan.quantization:  # bitsandbytes places the weights itself
            return model.eval()
        return model.to(plan.device).eval()

    def _unload(self) -> None:
        self.model = None
        self.processor = None
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def memory_mb(self) -> float | None:
        if self.model is None:
            return None
        return round(self.model.get_memory_footprint() / 1e6, 1)

    def _reset_peak_memory(self) -> None:
        import torch

        if self.plan and self.plan.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

    def _peak_memory_mb(self) -> float | None:
        import torch

        if self.plan and self.plan.device.startswith("cuda"):
            return round(torch.cuda.max_memory_allocated() / 1e6, 1)
        return None


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages in the chat-template format: images first, then the text."""
    converted = []
    for message in messages:
        content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in message.images]
        if message.text:
            content.append({"type": "text", "text": message.text})
        converted.append({"role": message.role, "content": content})
    return converted
