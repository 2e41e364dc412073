"""dots.ocr (rednote-hilab): layout-aware OCR through the hub's remote code.

dots.ocr has no transformers class of its own: its hub repository ships Python code
(`trust_remote_code`). This adapter runs that code only when the catalog entry opts in
(`trust_remote_code = true`) and, for hub weights, pins `revision` to a commit hash, so the
code that runs is the code that was reviewed. The planner asks `plan_check` and refuses
otherwise; `_load` checks again.

Where flash-attn cannot run (no CUDA, or the sm_120 / RTX 50xx case where prebuilt wheels
import but have no kernel), the plan sets `vision_attention` and caps max_pixels, and loading:

- switches the VISION tower's `config.vision_config.attn_implementation` (read by the remote
  code separately from the language model's `attn_implementation`, and defaulting to
  flash_attention_2) to sdpa or eager;
- lends a stand-in `flash_attn` module while the remote code is imported, because
  `modeling_dots_vision.py` does `from flash_attn import flash_attn_varlen_func` at top
  level; the stand-in is removed afterwards and raises a clear error if ever called;
- turns off the vision forward's forced `bfloat16` cast when the plan's dtype is not
  bfloat16 (float32 on CPU, float16 on pre-Ampere GPUs), which would otherwise feed bf16
  pixels to fp32/fp16 weights.

Prompts are dots.ocr's own (its `dots_ocr/utils/prompts.py`), chosen with
`settings.options["prompt_mode"]`. Without one, an empty message or a transcription
request gets `prompt_layout_all_en`, and any other message is a free question, sent as the
prompt itself. Layout answers are parsed (`chatvlmllm.layout`) into
`extras["layout"]` = {"elements", "image_size", "input_size", "truncated", "markdown", ...}
with boxes on the ORIGINAL image.

Conversation: dots.ocr reads one page at a time. The page is image `options["image_index"]`
(default 0) of the latest user message that has images; the question is the latest user
message's text; earlier turns are not sent (the model has no use for them).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import sys
import threading
import types
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatvlmllm import weights
from chatvlmllm.engines.base import (
    FamilyInfo,
    GenerationSettings,
    GenerationStats,
    Message,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.engines.got_ocr import is_transcription_request, transcription_budget
from chatvlmllm.engines.hf_common import TransformersEngine, stream_generate
from chatvlmllm.errors import EngineError, UserError

if TYPE_CHECKING:
    from chatvlmllm.catalog import ModelSpec
    from chatvlmllm.planner import LoadPlan

# dots.ocr's prompts, verbatim from rednote-hilab/dots.ocr dots_ocr/utils/prompts.py.
DOTS_PROMPTS = {
    "prompt_layout_all_en": """Please output the layout information from the PDF image, including each layout element's bbox, its category, and the corresponding text content within the bbox.

1. Bbox format: [x1, y1, x2, y2]

2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title'].

3. Text Extraction & Formatting Rules:
    - Picture: For the 'Picture' category, the text field should be omitted.
    - Formula: Format its text as LaTeX.
    - Table: Format its text as HTML.
    - All Others (Text, Title, etc.): Format their text as Markdown.

4. Constraints:
    - The output text must be the original text from the image, with no translation.
    - All layout elements must be sorted according to human reading order.

5. Final Output: The entire output must be a single JSON object.
""",  # noqa: E501
    "prompt_layout_only_en": """Please output the layout information from this PDF image, including each layout's bbox and its category. The bbox should be in the format [x1, y1, x2, y2]. The layout categories for the PDF document include ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title']. Do not output the corresponding text. The layout result should be in JSON format.""",  # noqa: E501
    "prompt_ocr": """Extract the text content from this image.""",
    "prompt_grounding_ocr": """Extract text from the given bounding box on the image (format: [x1, y1, x2, y2]).\nBounding Box:\n""",  # noqa: E501
}
DEFAULT_PROMPT_MODE = "prompt_layout_all_en"
LAYOUT_MODES = frozenset({"prompt_layout_all_en", "prompt_layout_only_en"})
FREE_QUESTION = "free_question"
# Pinned revision of the built-in entry: a snapshot of rednote-hilab/dots.ocr on the hub.
PINNED_REVISION = "c0111ce6bc07803dbc267932ffef0ae3a51dc951"
# A dense page's layout JSON runs to thousands of tokens (dots.ocr's own demo allows 24000).
DOTS_MAX_NEW_TOKENS = 8192
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")


def remote_code_problem(spec: ModelSpec) -> str | None:
    """Why this entry may not run dots.ocr's remote code, or None when it may."""
    if not spec.trust_remote_code:
        return (
            f"refused remote code: {spec.key} runs Python code shipped with the model; "
            "opt in with `trust_remote_code = true` in its catalog entry"
        )
    if not spec.path and not (spec.revision and _COMMIT_HASH.match(spec.revision)):
        return (
            f"refused remote code: pin `revision` of {spec.key} to a 40-character commit hash "
            f"(e.g. {PINNED_REVISION}) so the code cannot change under you (got {spec.revision or 'none'})"
        )
    return None


def plan_check(spec: ModelSpec, dtype: str, vision_attention: str | None) -> tuple[tuple[str, ...], bool]:
    """The planner's dots.ocr-specific reasons: remote-code opt-in, flash_attn import, forced bf16."""
    problem = remote_code_problem(spec)
    if problem:
        return (problem,), False
    where = f"local folder {spec.path}" if spec.path else f"{spec.hub_id} at pinned revision {spec.revision[:12]}"
    reasons = [f"remote code allowed by the catalog (trust_remote_code) from {where}"]
    if vision_attention and vision_attention != "flash_attention_2":
        reasons.append(
            "modeling_dots_vision.py imports flash_attn at top level: where flash-attn cannot be imported, "
            f"a stand-in module serves that import during loading only (never called: the vision tower runs "
            f"{vision_attention})"
        )
    if dtype != "bfloat16":
        reasons.append(
            f"the remote vision forward casts pixels to bfloat16: turned off so the vision tower runs in {dtype} "
            "like its weights"
        )
    return tuple(reasons), True


FAMILIES = {
    "dots_ocr": FamilyInfo(
        "dots_ocr",
        "chatvlmllm.engines.dots_ocr:DotsOcrEngine",
        capabilities=frozenset({"ocr", "layout", "chat"}),
        default_max_pixels=11_289_600,
        default_min_pixels=3136,
        max_pixels_without_fa2=1_003_520,  # 28·28·1280: keeps sdpa's dense mask to a few hundred MB
        plan_check=plan_check,
        model_types=("dots_ocr",),
    ),
}


# -- loading helpers ---------------------------------------------------------------------


def patch_vision_attention(config: Any, implementation: str | None) -> str | None:
    """Set the vision tower's own attention implementation; returns the previous one.

    The remote DotsVisionConfig keeps it in `attn_implementation` (default
    flash_attention_2); the config may still hold `vision_config` as a plain dict.
    """
    if not implementation:
        return None
    vision = getattr(config, "vision_config", None)
    if vision is None:
        raise EngineError("this dots.ocr config has no vision_config: cannot choose the vision tower's attention")
    if isinstance(vision, dict):
        previous = vision.get("attn_implementation")
        vision["attn_implementation"] = implementation
    else:
        previous = getattr(vision, "attn_implementation", None)
        vision.attn_implementation = implementation
    return previous


def flash_attn_importable() -> bool:
    """True when `import flash_attn` works (a broken wheel raises, which counts as False)."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        importlib.import_module("flash_attn")
    except Exception:  # ABI-mismatched wheels raise ImportError/OSError at import
        return False
    return True


def _stand_in_flash_attn(vision_attention: str) -> types.ModuleType:
    module = types.ModuleType("flash_attn", "Stand-in for dots.ocr's top-level flash_attn import; never called.")
    module.__spec__ = importlib.machinery.ModuleSpec("flash_attn", loader=None)

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise EngineError(
            f"flash-attn cannot run here, but dots.ocr's remote code called it although its vision tower "
            f"was set to {vision_attention}; the pinned revision may read another config field"
        )

    def any_function(name: str) -> Any:
        if name.startswith("__"):  # keep the import machinery's questions (__path__, __file__) honest
            raise AttributeError(name)
        return unavailable

    module.__getattr__ = any_function  # PEP 562: `from flash_attn import <any name>` gets `unavailable`
    return module


@contextlib.contextmanager
def flash_attn_stand_in(vision_attention: str | None) -> Iterator[bool]:
    """While loading: serve `flash_attn` from a stand-in when the vision tower will not use it
    and the real package cannot be imported. Yields whether the stand-in is in place."""
    if not vision_attention or vision_attention == "flash_attention_2" or flash_attn_importable():
        yield False
        return
    previous = sys.modules.get("flash_attn")
    stand_in = _stand_in_flash_attn(vision_attention)
    sys.modules["flash_attn"] = stand_in
    try:
        yield True
    finally:
        if sys.modules.get("flash_attn") is stand_in:
            if previous is None:
                del sys.modules["flash_attn"]
            else:
                sys.modules["flash_attn"] = previous


def keep_vision_dtype(model: Any, dtype: str) -> bool:
    """Stop the remote vision forward's forced bf16 cast when the plan's dtype is another one.

    The remote `DotsVisionTransformer.forward(hidden_states, grid_thw, bf16=True)` casts its
    input to bfloat16; with float32/float16 weights that is a dtype mismatch. Returns True
    when the forward was wrapped.
    """
    tower = getattr(model, "vision_tower", None)
    if dtype == "bfloat16" or tower is None or "bf16" not in inspect.signature(tower.forward).parameters:
        return False
    original = tower.forward
    weight_dtype = next(tower.parameters()).dtype

    def forward(hidden_states: Any, grid_thw: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["bf16"] = False
        return original(hidden_states.to(weight_dtype), grid_thw, *args, **kwargs)

    tower.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
    return True


def load_processor(path: str, image_token_id: int) -> Any:
    """dots.ocr's processor (Qwen2.5-VL's class) without its video sub-processor.

    The video processor needs torchvision; dots.ocr reads images only. Its image token
    is <|imgpad|>, not Qwen's <|image_pad|>, so the processor is told which one the model uses.
    """
    from transformers import Qwen2_5_VLProcessor

    class DotsImageOnlyProcessor(Qwen2_5_VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    processor = DotsImageOnlyProcessor.from_pretrained(path)
    processor.image_token = processor.tokenizer.convert_ids_to_tokens(image_token_id)
    processor.image_token_id = image_token_id
    if not processor.chat_template:
        raise EngineError(f"{path} has no chat template for dots.ocr's processor")
    return processor


# -- prompts ---------------------------------------------------------------------------------


def choose_prompt(
    question: str,
    options: dict[str, Any],
    original_size: tuple[int, int],
    input_size: tuple[int, int],
) -> tuple[str, str]:
    """(prompt mode, prompt text) for this request."""
    mode = options.get("prompt_mode")
    if mode is None:
        if is_transcription_request(question):
            return DEFAULT_PROMPT_MODE, DOTS_PROMPTS[DEFAULT_PROMPT_MODE]
        return FREE_QUESTION, question.strip()
    if mode not in DOTS_PROMPTS:
        raise UserError(f"Unknown dots.ocr prompt_mode {mode!r}; choose one of {', '.join(DOTS_PROMPTS)}")
    if mode != "prompt_grounding_ocr":
        return mode, DOTS_PROMPTS[mode]
    bbox = options.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise UserError("prompt_grounding_ocr needs options['bbox'] = [x1, y1, x2, y2] in the image's pixels")
    from chatvlmllm.layout import to_model_coordinates

    return mode, DOTS_PROMPTS[mode] + str(to_model_coordinates(bbox, original_size, input_size))


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
    """dots.ocr through its pinned remote code (see the module docstring)."""

    vision_dtype_patched = False
    flash_attn_stood_in = False

    def _load(self, plan: LoadPlan) -> None:
        problem = remote_code_problem(self.spec)
        if problem:
            raise EngineError(problem)
        path = weights.resolve(self.spec)
        from transformers import AutoConfig, AutoModelForCausalLM

        with flash_attn_stand_in(plan.vision_attention) as stood_in:
            config = AutoConfig.from_pretrained(path, trust_remote_code=True)
            patch_vision_attention(config, plan.vision_attention)
            model = AutoModelForCausalLM.from_pretrained(path, config=config, **self.model_kwargs(plan))
        self.flash_attn_stood_in = stood_in
        self.vision_dtype_patched = keep_vision_dtype(model, plan.dtype)
        self.processor = load_processor(path, model.config.image_token_id)
        self.model = self.place(model, plan)

    def pixel_budget(self, max_pixels: int | None) -> tuple[int, int]:
        """(min_pixels, max_pixels) per page: the plan's (or this answer's) over the processor's defaults."""
        size = self.processor.image_processor.size
        longest = max_pixels or size.longest_edge
        return min(self.plan.min_pixels or size.shortest_edge, longest), longest

    def input_size(self, width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
        """(width, height) the processor will resize this page to."""
        from chatvlmllm.layout import model_input_size

        image_processor = self.processor.image_processor
        min_pixels, max_pixels = self.pixel_budget(max_pixels)
        return model_input_size(
            width, height, min_pixels, max_pixels, image_processor.patch_size * image_processor.merge_size
        )

    def prepare_inputs(self, image: Any, prompt: str, max_pixels: int | None) -> Any:
        min_pixels, max_pixels = self.pixel_budget(max_pixels)
        images_kwargs = {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}
        content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
        inputs = self.processor.apply_chat_template(
            [{"role": "user", "content": content}],
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images_kwargs": images_kwargs},
        )
        inputs.pop("mm_token_type_ids", None)  # the remote forward does not take it
        return self.on_model(inputs)

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        options = {**self.spec.options, **settings.options}
        image = self.page(messages, options)
        max_pixels = settings.max_pixels or self.plan.max_pixels
        original_size = image.size
        mode, prompt = choose_prompt(
            latest_user_text(messages), options, original_size, self.input_size(*original_size, max_pixels)
        )
        inputs = self.prepare_inputs(image, prompt, max_pixels)
        grid_t, grid_h, grid_w = (int(v) for v in inputs["image_grid_thw"][0])
        patch = self.processor.image_processor.patch_size
        input_size = (grid_w * patch, grid_h * patch)  # what the model saw, from the processor itself
        budget = (
            settings.max_new_tokens
            if mode == FREE_QUESTION and "max_new_tokens" not in options
            else transcription_budget(settings, options, DOTS_MAX_NEW_TOKENS)
        )
        parts: list[str] = []
        settings = replace(settings, max_new_tokens=budget)
        stats = yield from collect(
            stream_generate(self.model, self.processor.tokenizer, inputs, settings, cancel), parts
        )
        stats.extras.update(
            image_tokens=int((inputs["input_ids"] == self.model.config.image_token_id).sum()),
            image_grid_thw=[grid_t, grid_h, grid_w],
            prompt_mode=mode,
            max_new_tokens=budget,
            vision_attention=self.plan.vision_attention or self.plan.attention,
            flash_attn_stand_in=self.flash_attn_stood_in,
            vision_dtype_patched=self.vision_dtype_patched,
        )
        if mode in LAYOUT_MODES:
            from chatvlmllm.layout import layout_extras

            stats.extras["layout"] = layout_extras("".join(parts), original_size, input_size, mode)
        return stats

    @staticmethod
    def page(messages: Sequence[Message], options: dict[str, Any]) -> Any:
        images = latest_user_images(messages)
        if not images:
            raise UserError("dots.ocr needs a page image: upload an image or a PDF first.")
        index = options.get("image_index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(images):
            raise UserError(f"image_index {index!r} does not exist: the message has {len(images)} image(s)")
        return images[index].convert("RGB")
