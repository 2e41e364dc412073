"""`chatvlmllm ask FILE QUESTION`: stream an answer about a document to stdout.

With no page flag, a multi-page document is asked as a whole (`cli.whole_document`): every page read once
and indexed, the best-matching passages retrieved, answered offline (extractive) or by a vision-language model
over the retrieved pages, with citations. `--page N` asks about one page; `--all-pages` sends every page.
"""

from __future__ import annotations

import argparse
import json
import sys

from chatvlmllm.chat.router import RoutedAnswer, answer, build_chain, chain_for
from chatvlmllm.documents.loading import open_document
from chatvlmllm.engines import GenerationSettings, Message, reader_summary
from chatvlmllm.errors import DocumentError, PlanError, UserError
from chatvlmllm.i18n import _, format_number, ngettext
from chatvlmllm.jsonable import json_extras
from chatvlmllm.models.catalog import ModelSpec, get_model, load_catalog, spec_from_path
from chatvlmllm.models.choice import choose, default_model
from chatvlmllm.models.hardware import HardwareProfile, probe
from chatvlmllm.models.planner import ATTENTION_CHOICES, PlanOverrides, plan_load
from chatvlmllm.settings import settings


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="image (PNG, JPEG, WebP, BMP, TIFF) or PDF")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="KEY", help="catalog key (see `chatvlmllm doctor`)")
    model.add_argument("--model-path", metavar="DIR", help="a local checkpoint folder")
    p.add_argument("--attn", choices=ATTENTION_CHOICES, default="auto", help="attention implementation")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="answer length limit (default: 1024; whole-page transcriptions get the model's own default, "
        "GOT-OCR 4096 and dots.ocr 8192, unless you set this)",
    )
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-pixels", type=int, help="pixel budget per image (default: the plan's)")
    pages = p.add_mutually_exclusive_group()
    pages.add_argument(
        "--page", type=int, help="PDF/TIFF page, 1-based (default: `ask` covers the whole document, `ocr` page 1)"
    )
    pages.add_argument("--all-pages", action="store_true", help="send every page's image in one request")
    p.add_argument("--no-fallback", action="store_true", help="use only the chosen model")
    p.add_argument(
        "--lang",
        metavar="CODE",
        help="document language (ISO 639-1, e.g. en, ru): the offline default is the engine that reads it best",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")


def add_parser(subparsers) -> None:
    from chatvlmllm.cli.index_cmd import add_reading_options

    p = subparsers.add_parser("ask", help="ask a question about a document (the whole document unless --page)")
    add_common(p)
    add_reading_options(p, with_file=False)
    p.add_argument("question")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_question(args, args.question, whole_document=True)


def run_question(args: argparse.Namespace, question: str, whole_document: bool = False) -> int:
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    doc = open_document(args.file)
    if whole_document and args.page is None and not args.all_pages and doc.page_count > 1:
        from chatvlmllm.cli.whole_document import ask_whole_document

        return ask_whole_document(args, doc, question)
    if args.all_pages:
        indices = list(range(doc.page_count))
    else:
        page = args.page if args.page is not None else 1
        if not 1 <= page <= doc.page_count:
            raise DocumentError(
                ngettext(
                    "{name} has {count} page; --page {page} does not exist",
                    "{name} has {count} pages; --page {page} does not exist",
                    doc.page_count,
                ).format(name=doc.name, count=doc.page_count, page=page)
            )
        indices = [page - 1]
    images = doc.pages(indices)

    hw = probe()
    catalog = load_catalog()
    _first, chain, overrides = model_chain(args, question, hw, catalog)
    routed = answer([Message("user", question, images)], chain, hw, generation_settings(args), overrides)
    stream_answer(args, routed)

    result = answer_record(routed, doc.name, [i + 1 for i in indices])
    result["citations"] = []  # one page asked about: the whole-document path cites pages
    print_result(args, routed, result)
    return 0


def generation_settings(args: argparse.Namespace, page_numbers: tuple[int, ...] = ()) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        options={"lang": args.lang} if args.lang else {},
        page_numbers=page_numbers,
    )


def model_chain(
    args: argparse.Namespace, question: str, hw: HardwareProfile, catalog: dict[str, ModelSpec]
) -> tuple[ModelSpec, list[ModelSpec], PlanOverrides]:
    """The model the user chose (or the best one for the question), its fallbacks, and the plan overrides."""
    chain_keys = None if args.no_fallback else chain_for(question, hw, catalog, args.lang)
    if args.model_path:
        first = spec_from_path(args.model_path)
    elif args.model or settings().default_model:  # an explicit pick always wins
        first = get_model(args.model or default_model(hw, catalog, language=args.lang)[0], catalog)
    else:
        choice = choose(question, hw, catalog, args.lang)
        if choice.hint:
            print(f"[{choice.hint}]", file=sys.stderr)
        first = get_model(choice.key or default_model(hw, catalog, language=args.lang)[0], catalog)
    overrides = PlanOverrides(attention=args.attn, max_pixels=args.max_pixels)
    plan = plan_load(hw, first, overrides)
    if not plan.runnable and (args.attn != "auto" or args.no_fallback):
        raise PlanError(_("{model} cannot run here: {reason}").format(model=first.key, reason=plan.why_not()))
    chain = build_chain(
        first, fallback=not args.no_fallback, catalog=catalog, chain_keys=chain_keys, language=args.lang
    )
    return first, chain, overrides


def stream_answer(args: argparse.Namespace, routed: RoutedAnswer) -> None:
    """Stream each attempt to stdout (or only consume it under --json); a failure is one line."""
    for stream in routed:
        if args.json:
            stream.consume()
            continue
        for chunk in stream:
            sys.stdout.write(chunk)
            sys.stdout.flush()
        if routed.attempts and stream.metrics and routed.model is None:
            said = _("{model} gave no usable answer; trying the next model").format(model=stream.metrics.model)
            print(f"\n[{said}]", file=sys.stderr)
    if routed.model is None and not routed.text:
        raise UserError(routed.error or _("no model could answer"))


def print_result(args: argparse.Namespace, routed: RoutedAnswer, result: dict) -> None:
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print()
        # Which engine read the page is said beside the text: stdout stays the page's text (`ocr page.png > page.txt`).
        pages = routed.extras.get("pages") if routed.extras else None
        read_by = reader_summary(pages) if routed.extras.get("read_by") and isinstance(pages, list) else None
        if read_by:  # in the terminal's language (the stored one is English)
            print(f"[{read_by}]", file=sys.stderr)
        m = routed.metrics
        if m:
            load = _("load {seconds} s").format(seconds=format_number(m.load_s, 2))
            ttft = _("first token {seconds} s").format(seconds=format_number(m.ttft_s or 0, 2))
            print(f"[{m.caption()} · {load} · {ttft}]", file=sys.stderr)


def answer_record(routed, document: str, pages: list[int]) -> dict:
    m = routed.metrics
    metrics = m.to_dict() if m else {}
    return {
        "answer": routed.text,
        "model": routed.model or (m.model if m else None),
        "attention": metrics.get("attention"),
        "dtype": metrics.get("dtype"),
        "device": metrics.get("device"),
        "quantization": metrics.get("quantization"),
        "load_s": metrics.get("load_s"),
        "ttft_s": metrics.get("ttft_s"),
        "total_s": metrics.get("total_s"),
        "prompt_tokens": metrics.get("prompt_tokens"),
        "new_tokens": metrics.get("new_tokens"),
        "tokens_per_s": metrics.get("tokens_per_s"),
        "peak_vram_mb": metrics.get("peak_vram_mb"),
        "stopped_by": metrics.get("stopped_by"),
        "attempts": [a.to_dict() for a in routed.attempts],
        "extras": json_extras(routed.extras),
        "document": document,
        "pages": pages,
    }
