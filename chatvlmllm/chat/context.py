"""How much conversation fits in a model's context: token budgets for engine prompts.

`prompt_budget(spec, plan, max_new_tokens)` reads the model's context length from its
config.json (`max_position_embeddings`, or `text_config.max_position_embeddings` for
vision-language configs) when the weights are on disk, else a conservative default.
`fit_turns` then decides which earlier turns and page images go into the prompt: the
earliest turns are dropped first, and their images before their text. Text is counted
with the checkpoint's own tokenizer when it is on disk (else estimated high from its
length); image tokens are estimated from page sizes, before any page is rendered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from chatvlmllm.decisions import Backend
from chatvlmllm.models.families import LanguageModelOptions
from chatvlmllm.settings import settings

if TYPE_CHECKING:
    from chatvlmllm.engines.base import Message
    from chatvlmllm.models.catalog import ModelSpec
    from chatvlmllm.models.planner import LoadPlan

log = logging.getLogger(__name__)

# When a model's config cannot be read (not downloaded yet, a remote server): the smallest
# context of the built-in VLM families (Qwen2-VL's 32k).
DEFAULT_CONTEXT_TOKENS = 32_768
# One vision token per 28×28 pixels after the 2×2 merge (Qwen2-VL; Qwen3-VL's 32×32 gives fewer).
PIXELS_PER_IMAGE_TOKEN = 28 * 28
IMAGE_TOKEN_OVERHEAD = 4  # vision start/end markers
MESSAGE_TOKEN_OVERHEAD = 8  # role markers and template text around each message
CHARS_PER_TOKEN = 2  # English BPE averages ~4 characters a token, Cyrillic ~2.5: estimate high
PROMPT_MARGIN_TOKENS = 256  # template and system text the estimate does not see


@dataclass(frozen=True)
class PromptBudget:
    """The prompt may use `max_tokens` tokens and `max_pixels` page pixels in all."""

    max_tokens: int | None
    max_pixels: int = field(default_factory=lambda: settings().max_request_pixels)
    image_max_pixels: int | None = None  # the engine downscales each image to this
    context_tokens: int | None = None  # the model's context, for the note
    # The model's own tokenizer when it is on disk; else a high estimate from the length.
    count_tokens: Callable[[str], int] | None = field(default=None, compare=False)

    def image_tokens(self, pixels: int) -> int:
        seen = min(pixels, self.image_max_pixels) if self.image_max_pixels else pixels
        return seen // PIXELS_PER_IMAGE_TOKEN + IMAGE_TOKEN_OVERHEAD

    def text_tokens(self, text: str) -> int:
        counted = self.count_tokens(text) if self.count_tokens is not None else len(text) // CHARS_PER_TOKEN
        return counted + MESSAGE_TOKEN_OVERHEAD

    def beside(self, message: Message, counted_text: str) -> PromptBudget:
        """What is left for the rest of the prompt when `message` (built already, with its images) is sent as
        the last turn, which `fit_turns` counts as `counted_text` alone."""
        pixels = sum(image.width * image.height for image in message.images)
        extra = self.text_tokens(message.text) - self.text_tokens(counted_text)
        extra += sum(self.image_tokens(image.width * image.height) for image in message.images)
        tokens = None if self.max_tokens is None else max(0, self.max_tokens - extra)
        return replace(self, max_tokens=tokens, max_pixels=max(0, self.max_pixels - pixels))


@dataclass
class PlannedTurn:
    """A message of the prompt before its images are rendered: image sizes only."""

    role: str
    text: str
    image_pixels: list[int] = field(default_factory=list)
    keep_images: bool = True
    keep: bool = True


@dataclass(frozen=True)
class Fit:
    dropped_turns: int  # whole turns left out, from the start
    dropped_images: int  # page images left out of turns whose text was sent


def fit_turns(turns: Sequence[PlannedTurn], budget: PromptBudget) -> Fit:
    """Mark what to leave out (in place) so the prompt fits; the last turn is always sent whole."""
    if not turns:
        return Fit(0, 0)
    older = list(turns[:-1])
    text_cost = [budget.text_tokens(t.text) for t in turns]  # each text is counted once
    image_cost = [sum(budget.image_tokens(p) for p in t.image_pixels) for t in turns]
    tokens = sum(text_cost) + sum(image_cost)
    pixels = sum(sum(t.image_pixels) for t in turns)

    def over() -> bool:
        return (budget.max_tokens is not None and tokens > budget.max_tokens) or pixels > budget.max_pixels

    for index, turn in enumerate(older):  # images of the earliest turns first
        if not over():
            break
        if turn.image_pixels:
            turn.keep_images = False
            tokens -= image_cost[index]
            pixels -= sum(turn.image_pixels)
    for index, turn in enumerate(older):  # then the earliest turns themselves
        if not over():
            break
        turn.keep = False
        tokens -= text_cost[index]
    _start_with_a_question(older)
    dropped = sum(1 for t in older if not t.keep)
    images = sum(len(t.image_pixels) for t in older if t.keep and not t.keep_images)
    return Fit(dropped, images)


def _start_with_a_question(older: list[PlannedTurn]) -> None:
    """Chat templates expect a user turn after the system text: an answer whose question was cut goes too."""
    for turn in older:
        if not turn.keep or turn.role == "system":
            continue
        if turn.role == "assistant":
            turn.keep = False
            continue
        return


def prompt_budget(spec: ModelSpec, plan: LoadPlan | None, max_new_tokens: int) -> PromptBudget:
    """The token and pixel budget of one prompt to `spec`, leaving room for the answer."""
    context = context_tokens(spec)
    image_max = plan.max_pixels if plan is not None else None
    if context is None:
        return PromptBudget(max_tokens=None, image_max_pixels=image_max)
    room = max(context - max_new_tokens - PROMPT_MARGIN_TOKENS, context // 4)
    folder = _weights_folder(spec)
    counter = _token_counter(folder) if folder else None
    return PromptBudget(max_tokens=room, image_max_pixels=image_max, context_tokens=context, count_tokens=counter)


def context_tokens(spec: ModelSpec) -> int | None:
    """The model's context length in tokens; None for engines without one (offline OCR)."""
    info = spec.family_info()
    if not info.needs_weights and info.backend == Backend.CLASSIC:
        return None
    # A family whose options are not LanguageModelOptions (a throw-away test family) has no such option.
    options = spec.options
    configured = options.context_tokens if isinstance(options, LanguageModelOptions) else None
    return configured or _config_context(spec) or DEFAULT_CONTEXT_TOKENS


def _weights_folder(spec: ModelSpec) -> str | None:
    from chatvlmllm.models.weights import locate

    try:
        return locate(spec).path
    except Exception as exc:  # a broken catalog entry: the estimates are safe
        log.debug("no weights folder for %s: %s", spec.key, exc)
        return None


@lru_cache(maxsize=8)
def _token_counter(folder: str) -> Callable[[str], int] | None:
    """The checkpoint's tokenizer as a counter (loaded once per folder), or None if it does not load."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # no tokenizer files, a remote-code tokenizer: estimate instead
        log.debug("no tokenizer in %s: %s", folder, exc)
        return None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _config_context(spec: ModelSpec) -> int | None:
    folder = _weights_folder(spec)
    if not folder:
        return None
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return context_from_config(config)


def context_from_config(config: dict) -> int | None:
    """max_position_embeddings of the language model (top level or text_config)."""
    for section in (config.get("text_config"), config.get("llm_config"), config):
        if isinstance(section, dict):
            value = section.get("max_position_embeddings")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def overflow(spec: ModelSpec, plan: LoadPlan | None, messages: Sequence[Message], max_new_tokens: int) -> str | None:
    """Why `messages` cannot fit `spec`'s context with room for the answer, or None when they fit.

    For callers that must send the conversation as given (the API server answers 400, as
    OpenAI-compatible servers do, instead of letting the model run out of memory).
    """
    budget = prompt_budget(spec, plan, max_new_tokens)
    if budget.max_tokens is None:
        return None
    tokens = sum(
        budget.text_tokens(m.text) + sum(budget.image_tokens(im.width * im.height) for im in m.images) for m in messages
    )
    if tokens <= budget.max_tokens:
        return None
    return (
        f"the conversation is about {tokens:,} tokens; {spec.key} reads {budget.context_tokens:,} in all, "
        f"with {max_new_tokens:,} kept for the answer. Send fewer or shorter messages or images"
    )
