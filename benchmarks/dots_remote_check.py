"""Check chatvlmllm's own dots.ocr model code against dots.ocr's hub code, numerically.

    python benchmarks/dots_remote_check.py /path/to/hub/folder [--keep DIR] [--out artifacts/x.json]

The folder is a local copy of the hub repository rednote-hilab/dots.ocr (its Python files
configuration_dots.py, modeling_dots_ocr.py, modeling_dots_vision.py and its config.json,
generation_config.json, preprocessor_config.json, chat_template.json). None of it is part of
this project; this script only imports it to compare.

It builds a tiny checkpoint WITH the hub code (the real config with sizes shrunk, random
weights, the real processor settings and chat template, a tiny tokenizer carrying dots.ocr's
added tokens, all read from the folder given), then loads the same safetensors twice: through
the hub code (eager vision attention, float32) and through chatvlmllm (`engines.dots_ocr.load_model`). It prints and
writes: the prefill logits' max abs difference (one image, and two images in one prompt), and
whether 16 greedy tokens match.

The hub code needs two changes to run under transformers 5 at all, applied here at run time
and reported: its vision forward casts pixels to bfloat16 (`bf16=True`), which fails against
float32 weights, so it is called with bf16=False; and `generate` no longer passes
`cache_position`, so its `prepare_inputs_for_generation` re-sends the pixels at every step,
so the pixels are dropped after the prefill step (`is_first_iteration`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HUB_CODE = ("configuration_dots.py", "modeling_dots_ocr.py", "modeling_dots_vision.py")
HUB_FILES = ("preprocessor_config.json", "chat_template.json")


def build_with_hub_code(hub: Path, out: Path, seed: int = 0) -> dict[str, int]:
    """A tiny checkpoint written by the hub's own classes; returns config field -> tiny token id."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from chatvlmllm.devtools.hub_tiny import HubFolder
    from chatvlmllm.devtools.tiny_models import build_dots_tokenizer, dots_token_ids, small_ids, tiny_dots_config

    out.mkdir(parents=True, exist_ok=True)
    for name in HUB_CODE + HUB_FILES:
        shutil.copy(hub / name, out / name)
    real = HubFolder(hub)
    tokenizer = build_dots_tokenizer(out, real)  # the chat template is the hub's chat_template.json
    ids = dots_token_ids(tokenizer, real)
    config_json = tiny_dots_config(real, len(tokenizer), ids)  # keeps auto_map: the hub code loads it
    (out / "config.json").write_text(json.dumps(config_json, indent=2), encoding="utf-8")

    config = AutoConfig.from_pretrained(str(out), trust_remote_code=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=True, dtype=torch.float32)
    with torch.no_grad():  # the init's std 0.02 makes near-uniform logits: spread them so greedy tokens vary
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    model.generation_config.eos_token_id = small_ids(tokenizer, real, real.generation["eos_token_id"])
    model.generation_config.max_length = real.generation.get("max_length")
    model.save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps(config_json, indent=2), encoding="utf-8")  # keep auto_map
    return ids


def load_hub_model(folder: Path) -> tuple[Any, list[str]]:
    """The hub code's model (eager vision attention, float32) with the two run-time fixes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    config.vision_config.attn_implementation = "eager"
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), config=config, trust_remote_code=True, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    fixes = []
    tower = model.vision_tower
    rotary = tower.rotary_pos_emb
    dim = 2 * rotary.inv_freq.shape[0]
    rotary.inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    fixes.append(
        "vision rotary inv_freq recomputed (a non-persistent buffer that transformers 5's meta-device "
        "loading leaves uninitialised: without this, two loads of the hub model disagree)"
    )
    original_forward = tower.forward

    def forward_without_bf16(hidden_states, grid_thw, *args, **kwargs):
        kwargs["bf16"] = False
        return original_forward(hidden_states, grid_thw, *args, **kwargs)

    tower.forward = forward_without_bf16
    fixes.append("vision forward called with bf16=False (the hub code casts pixels to bfloat16)")

    cls = type(model)
    hub_prepare = cls.prepare_inputs_for_generation

    def prepare(self, input_ids, *args, is_first_iteration=False, **kwargs):
        inputs = hub_prepare(self, input_ids, *args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration:
            inputs.pop("pixel_values", None)
        return inputs

    cls.prepare_inputs_for_generation = prepare
    fixes.append("pixel_values dropped after the prefill step (generate no longer passes cache_position)")
    return model, fixes


def prompt_inputs(processor: Any, pages: list[Any], text: str) -> Any:
    content = [{"type": "image", "image": page} for page in pages] + [{"type": "text", "text": text}]
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": content}],
        tokenize=True,
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images_kwargs": {"size": {"shortest_edge": 3136, "longest_edge": 28 * 28 * 256}}},
    )
    inputs.pop("mm_token_type_ids", None)
    return inputs


def compare(hub: Path, folder: Path) -> dict[str, Any]:
    import torch
    from PIL import Image, ImageDraw

    from chatvlmllm.engines.dots_ocr import load_model, load_processor

    ids = build_with_hub_code(hub, folder)
    reference, fixes = load_hub_model(folder)
    processor = load_processor(str(folder), ids["image_token_id"])

    def page(lines: list[str], size: tuple[int, int]) -> Image.Image:
        image = Image.new("RGB", size, "white")
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((12, 12 + 30 * i), line, fill="black", font_size=22)
        return image

    one = prompt_inputs(processor, [page(["INVOICE 2026-11", "TOTAL 12.50"], (448, 336))], "Extract all text")
    two = prompt_inputs(
        processor, [page(["PAGE ONE"], (392, 280)), page(["PAGE TWO", "x"], (280, 420))], "Compare the pages"
    )
    report: dict[str, Any] = {"hub_code_fixes": fixes, "prompt_tokens": int(one["input_ids"].shape[1])}
    with torch.no_grad():
        want_one = reference(**one).logits
        want_two = reference(**two).logits
        report["logits_max_abs"] = float(want_one.abs().max())  # the scale the differences compare with
        for attention in ("eager", "sdpa"):
            ours = load_model(folder, "float32", attention, attention).eval()
            report[f"logits_max_abs_diff_{attention}"] = float((ours(**one).logits - want_one).abs().max())
            report[f"logits_max_abs_diff_two_images_{attention}"] = float((ours(**two).logits - want_two).abs().max())
        greedy = {"do_sample": False, "max_new_tokens": 16, "min_new_tokens": 16}
        started = time.perf_counter()
        want_tokens = reference.generate(**one, **greedy)[0, one["input_ids"].shape[1] :].tolist()
        report["hub_generate_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        got_tokens = ours.generate(**one, **greedy)[0, one["input_ids"].shape[1] :].tolist()
        report["ours_generate_s"] = round(time.perf_counter() - started, 3)
    matching = sum(a == b for a, b in zip(want_tokens, got_tokens, strict=False))
    report.update(
        hub_tokens=want_tokens,
        our_tokens=got_tokens,
        greedy_tokens_matching=f"{matching}/{len(want_tokens)}",
        greedy_match=want_tokens == got_tokens and len(got_tokens) == 16,
        image_tokens=int((one["input_ids"] == ids["image_token_id"]).sum()),
        image_grid_thw=one["image_grid_thw"].tolist(),
    )
    report["passed"] = (
        report["greedy_match"] and max(v for k, v in report.items() if k.startswith("logits_max_abs_diff")) <= 1e-4
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hub_folder", type=Path, help="local copy of the rednote-hilab/dots.ocr hub folder")
    parser.add_argument("--keep", type=Path, help="write the tiny checkpoint here and keep it")
    parser.add_argument("--out", type=Path, default=Path("artifacts/dots_remote_check.json"))
    args = parser.parse_args(argv)
    missing = [
        name
        for name in HUB_CODE + HUB_FILES + ("config.json", "generation_config.json")
        if not (args.hub_folder / name).is_file()
    ]
    if missing:
        print(f"{args.hub_folder} lacks {', '.join(missing)}: give a copy of the dots.ocr hub folder", file=sys.stderr)
        return 2
    folder = args.keep or Path(tempfile.mkdtemp(prefix="dots-hub-tiny-"))
    report = compare(args.hub_folder, folder)
    report["checkpoint"] = str(folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
