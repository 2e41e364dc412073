"""dots.ocr's prompts and request rules, shared by the local adapter (dots_ocr) and a dots.ocr served
behind an OpenAI-compatible endpoint (openai_backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from chatvlmllm.engines._transcription import transcription_budget
from chatvlmllm.engines.base import GenerationSettings, Message, latest_user_images
from chatvlmllm.errors import UserError
from chatvlmllm.models.families import LanguageModelOptions
from chatvlmllm.models.tasks import FORMATTED_OCR_TRANSCRIBES, classify

if TYPE_CHECKING:
    from PIL import Image

# dots.ocr's prompt modes, named as in its own code (`prompt_mode`).
PromptMode = Literal["prompt_layout_all_en", "prompt_layout_only_en", "prompt_ocr", "prompt_grounding_ocr"]
# dots.ocr's prompts, verbatim from rednote-hilab/dots.ocr dots_ocr/utils/prompts.py.
DOTS_PROMPTS: dict[PromptMode, str] = {
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
DEFAULT_PROMPT_MODE: PromptMode = "prompt_layout_all_en"
LAYOUT_MODES: frozenset[str] = frozenset({"prompt_layout_all_en", "prompt_layout_only_en"})
FREE_QUESTION = "free_question"  # the chosen mode when the user's message itself is the prompt
# A dense page's layout JSON runs to thousands of tokens (dots.ocr's own demo allows 24000).
DOTS_MAX_NEW_TOKENS = 8192


class DotsRequestOptions(LanguageModelOptions):
    """What a dots.ocr answer may set, locally (dots_ocr) or through a server (openai, prompt_style dots_ocr)."""

    prompt_mode: PromptMode | None = Field(
        None,
        description="Always send this dots.ocr prompt; unset: a transcription request gets "
        "prompt_layout_all_en, any other message is sent as the prompt itself.",
    )
    bbox: list[float] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="[x1, y1, x2, y2] in the page's pixels: the box prompt_grounding_ocr reads.",
    )
    image_index: int = Field(
        0, ge=0, strict=True, description="Which image of the latest message with images is read (0: the first)."
    )
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        strict=True,
        description=f"The answer's token limit; unset: the user's, else {DOTS_MAX_NEW_TOKENS} for a transcription "
        "or layout and the usual default for a free question.",
    )


# -- prompts ---------------------------------------------------------------------------------


def choose_prompt(
    question: str,
    options: DotsRequestOptions,
    original_size: tuple[int, int],
    input_size: tuple[int, int],
) -> tuple[str, str]:
    """(prompt mode, prompt text) for this request: a PromptMode, or FREE_QUESTION."""
    mode = options.prompt_mode
    if mode is None:
        # dots.ocr's layout output carries tables (HTML) and formulas (LaTeX): all transcriptions.
        if classify(question) in FORMATTED_OCR_TRANSCRIBES:
            return DEFAULT_PROMPT_MODE, DOTS_PROMPTS[DEFAULT_PROMPT_MODE]
        return FREE_QUESTION, question.strip()
    if mode != "prompt_grounding_ocr":
        return mode, DOTS_PROMPTS[mode]
    if options.bbox is None:
        raise UserError("prompt_grounding_ocr needs the option bbox = [x1, y1, x2, y2] in the image's pixels")
    from chatvlmllm.documents.layout import to_model_coordinates

    return mode, DOTS_PROMPTS[mode] + str(to_model_coordinates(options.bbox, original_size, input_size))


def answer_budget(mode: str, settings: GenerationSettings, options: DotsRequestOptions) -> int:
    """max_new_tokens: an explicit option, else the user's setting, else 8192 for a transcription
    or layout (a dense page is thousands of tokens) and the usual default for a free question."""
    if mode == FREE_QUESTION and options.max_new_tokens is None:
        return settings.budget()
    return transcription_budget(settings, options.max_new_tokens, DOTS_MAX_NEW_TOKENS)


def dots_page(messages: Sequence[Message], options: DotsRequestOptions) -> Image.Image:
    """The page dots.ocr reads: the latest user images' `image_index`-th (default the first), in RGB."""
    images = latest_user_images(messages)
    if not images:
        raise UserError("dots.ocr needs a page image: upload an image or a PDF first.")
    if options.image_index >= len(images):
        raise UserError(f"image_index {options.image_index} does not exist: the message has {len(images)} image(s)")
    return images[options.image_index].convert("RGB")
