"""dots.ocr's prompts and request rules, shared by the local adapter (dots_ocr) and a dots.ocr served
behind an OpenAI-compatible endpoint (openai_backend)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatvlmllm.engines._transcription import transcription_budget
from chatvlmllm.engines.base import GenerationSettings, Message, latest_user_images
from chatvlmllm.errors import UserError
from chatvlmllm.models.tasks import FORMATTED_OCR_TRANSCRIBES, classify

if TYPE_CHECKING:
    from PIL import Image

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
# A dense page's layout JSON runs to thousands of tokens (dots.ocr's own demo allows 24000).
DOTS_MAX_NEW_TOKENS = 8192


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
        # dots.ocr's layout output carries tables (HTML) and formulas (LaTeX): all transcriptions.
        if classify(question) in FORMATTED_OCR_TRANSCRIBES:
            return DEFAULT_PROMPT_MODE, DOTS_PROMPTS[DEFAULT_PROMPT_MODE]
        return FREE_QUESTION, question.strip()
    if mode not in DOTS_PROMPTS:
        raise UserError(f"Unknown dots.ocr prompt_mode {mode!r}; choose one of {', '.join(DOTS_PROMPTS)}")
    if mode != "prompt_grounding_ocr":
        return mode, DOTS_PROMPTS[mode]
    bbox = options.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise UserError("prompt_grounding_ocr needs options['bbox'] = [x1, y1, x2, y2] in the image's pixels")
    from chatvlmllm.documents.layout import to_model_coordinates

    return mode, DOTS_PROMPTS[mode] + str(to_model_coordinates(bbox, original_size, input_size))


def answer_budget(mode: str, settings: GenerationSettings, options: dict[str, Any]) -> int:
    """max_new_tokens: an explicit option, else the user's setting, else 8192 for a transcription
    or layout (a dense page is thousands of tokens) and the usual default for a free question."""
    if mode == FREE_QUESTION and "max_new_tokens" not in options:
        return settings.budget()
    return transcription_budget(settings, options, DOTS_MAX_NEW_TOKENS)


def dots_page(messages: Sequence[Message], options: dict[str, Any]) -> Image.Image:
    """The page dots.ocr reads: the latest user images' `image_index`-th (default the first), in RGB."""
    images = latest_user_images(messages)
    if not images:
        raise UserError("dots.ocr needs a page image: upload an image or a PDF first.")
    index = options.get("image_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(images):
        raise UserError(f"image_index {index!r} does not exist: the message has {len(images)} image(s)")
    return images[index].convert("RGB")
