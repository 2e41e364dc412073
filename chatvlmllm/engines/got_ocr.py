"""GOT-OCR-2.0 (transformers' GotOcr2ForConditionalGeneration): an OCR specialist.

GOT reads page images and writes their text; it does not follow instructions or answer
questions (its processor builds the only prompt it knows: "OCR: ", "OCR with format: ", ...).
So this adapter:

- takes the document from the conversation: the images of the latest user message that
  has any (a follow-up question without a new upload still refers to that document); the
  conversation's text is never sent to the model;
- returns the transcription, and when the user asked something other than a transcription
  it says so in one line before the text (never an invented answer);
- chooses the mode from `settings.options` (over the catalog entry's options):
    format=True                  Markdown/LaTeX output ("OCR with format")
    multi_page=True              several page images read as one document
                                 (the default when the message carries several images)
    crop_to_patches=True         dense pages cut into tiles; max_patches=N caps the tiles (default 6)
    max_new_tokens=N             GOT's own length budget (see below)
- budgets 4096 new tokens when the user set no limit, not the app's generic chat default: a
  dense page is thousands of tokens, and a transcription cut at 1024 is a wrong transcription.
  The effective budget is the `max_new_tokens` option when given (per request, or per model in
  the catalog TOML), else the user's `settings.max_new_tokens` when set (honoured as given,
  smaller or larger), else 4096; the repetition guard still stops a page that loops.

Attention is eager: transformers' GOT classes refuse sdpa and flash_attention_2.
Generation stops on the string "<|im_end|>" (its EOS token is <|endoftext|>), which is why
`stop_strings` and the tokenizer go to `generate`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from chatvlmllm.decisions import Task
from chatvlmllm.devtools.tiny_models import build_tiny_got_ocr2
from chatvlmllm.engines._transcription import transcription_budget, transcription_note, with_note_before_text
from chatvlmllm.engines.base import (
    GenerationSettings,
    GenerationStats,
    Message,
    latest_user_images,
    latest_user_text,
)
from chatvlmllm.engines.hf_common import TransformersEngine, load_weights, stream_generate
from chatvlmllm.errors import UserError
from chatvlmllm.i18n import N_
from chatvlmllm.models import weights
from chatvlmllm.models.families import CatalogEntry, FamilyInfo, LanguageModelOptions, Scores
from chatvlmllm.models.tasks import FORMATTED_OCR_TRANSCRIBES, classify

if TYPE_CHECKING:
    from PIL import Image

    from chatvlmllm.models.planner import LoadPlan


GOT_MAX_NEW_TOKENS = 4096
GOT_STOP_STRING = "<|im_end|>"
DEFAULT_MAX_PATCHES = 6


class GotOptions(LanguageModelOptions):
    """The real processor's modes, and GOT's length budget (see the module docstring)."""

    format: bool = Field(False, description='Markdown/LaTeX output ("OCR with format").')
    multi_page: bool | None = Field(
        None, description="Read several page images as one document; unset: when the message carries several."
    )
    crop_to_patches: bool = Field(False, description="Cut a dense page into tiles (see max_patches).")
    max_patches: int = Field(
        DEFAULT_MAX_PATCHES, gt=0, strict=True, description="The most tiles a page is cut into, with crop_to_patches."
    )
    max_new_tokens: int | None = Field(
        None,
        gt=0,
        strict=True,
        description=f"The answer's token limit; unset: the user's, else {GOT_MAX_NEW_TOKENS}.",
    )


class GotOcrEngine(TransformersEngine):
    """GOT-OCR-2.0-hf through transformers' own classes (see the module docstring)."""

    # Its formatted mode writes tables and formulas as Markdown/LaTeX: those are transcriptions too.
    transcribes = FORMATTED_OCR_TRANSCRIBES

    def _load(self, plan: LoadPlan) -> None:
        from transformers import GotOcr2ForConditionalGeneration, GotOcr2Processor

        path = weights.resolve(self.spec)
        # GotOcr2Processor has no video sub-processor, so it loads without torchvision;
        # its image processor falls back to the PIL backend.
        self.processor = GotOcr2Processor.from_pretrained(path)
        model = load_weights(GotOcr2ForConditionalGeneration, path, **self.model_kwargs(plan))
        self.model = self.place(model, plan)

    def image_tokens_per_tile(self) -> int:
        """Tokens per page or patch: the vision grid after the projector's two stride-2 convolutions."""
        vision = self.model.config.vision_config
        side = math.ceil(math.ceil(vision.image_size // vision.patch_size / 2) / 2)
        return side * side

    @staticmethod
    def mode(options: GotOptions, page_count: int) -> dict[str, Any]:
        """The processor options for this request (the entry's options with the request's over them)."""
        multi_page = options.multi_page if options.multi_page is not None else page_count > 1
        mode: dict[str, Any] = {"format": options.format, "multi_page": multi_page}
        if options.crop_to_patches:
            mode.update(crop_to_patches=True, max_patches=options.max_patches)
        return mode

    def prepare_inputs(self, images: list[Image.Image], mode: dict[str, Any]) -> Any:
        pages = [image.convert("RGB") for image in images]
        kwargs = {k: v for k, v in mode.items() if k != "multi_page"}
        inputs = self.processor(
            [pages] if mode["multi_page"] else pages[0],
            multi_page=mode["multi_page"],
            num_image_tokens=self.image_tokens_per_tile(),
            return_tensors="pt",
            **kwargs,
        )
        return self.on_model(inputs)

    def _generate(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event
    ) -> Generator[str, None, GenerationStats]:
        images = latest_user_images(messages)
        if not images:
            raise UserError("GOT-OCR needs a page image to transcribe: upload an image or a PDF first.")
        options = GotOptions.of(self.spec.options, settings.options)
        mode = self.mode(options, len(images))
        if not mode["multi_page"]:
            images = images[:1]  # one page per answer unless multi-page mode is on
        mode["multi_page"] = len(images) > 1
        budget = transcription_budget(settings, options.max_new_tokens, GOT_MAX_NEW_TOKENS)
        inputs = self.prepare_inputs(images, mode)

        question = latest_user_text(messages)
        transcribing = classify(question) in self.transcribes
        note = "" if transcribing else transcription_note(self.spec.display_name, question)
        chunks = stream_generate(
            self.model,
            self.processor.tokenizer,
            inputs,
            replace(settings, max_new_tokens=budget),
            cancel,
            stop_strings=GOT_STOP_STRING,  # stream_generate hands generate the tokenizer for it
        )
        stats = yield from with_note_before_text(chunks, note)
        stats.extras.update(self._extras(inputs, mode, len(images), budget))
        return stats

    def _extras(self, inputs: Any, mode: dict[str, Any], pages: int, budget: int) -> dict[str, Any]:
        input_ids = inputs["input_ids"]
        tokenizer = self.processor.tokenizer
        prompt = tokenizer.decode(input_ids[0], skip_special_tokens=False)
        # The instruction the processor wrote after the image, e.g. "OCR with format".
        query = prompt.rsplit("</img>", 1)[-1].split(GOT_STOP_STRING, 1)[0].strip().rstrip(":").strip()
        return {
            "image_tokens": int((input_ids == self.model.config.image_token_id).sum()),
            "pages": pages,
            "tiles": int(inputs["pixel_values"].shape[0]),
            "got_mode": mode,
            "got_query": query,
            "max_new_tokens": budget,
        }


FAMILIES = {
    "got_ocr2": FamilyInfo(
        "got_ocr2",
        GotOcrEngine,
        attention=("eager",),  # transformers raises for sdpa and flash_attention_2
        capabilities=frozenset({"ocr"}),
        notes=(N_("GOT-OCR transcribes; it does not answer questions"),),
        model_types=("got_ocr2",),
        tiny_builder=build_tiny_got_ocr2,
        options=GotOptions,
        # GOT's prompts are fixed by its processor: "OCR" and, with format=True, "OCR with format".
        prompts={Task.TRANSCRIBE: "OCR", Task.TABLE: "OCR with format", Task.FORMULA: "OCR with format"},
        entries=(
            CatalogEntry(
                key="got_ocr_hf",
                name="GOT-OCR-2.0-hf",
                hub_id="stepfun-ai/GOT-OCR-2.0-hf",
                params_b=0.56,
                weights_gb=1.4,
                description="OCR specialist: transcribes (plain or formatted), does not answer questions.",
                licence="Apache-2.0",
                scores=Scores(olmocr=48.3, source="olmOCR-bench: allenai/olmocr README, GOT OCR row"),
            ),
        ),
    ),
}
