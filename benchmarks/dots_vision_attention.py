"""dots.ocr vision tower: per-image SDPA vs one SDPA call with a block-diagonal mask vs eager.

    python benchmarks/dots_vision_attention.py [--images 2] [--grid 40x30] [--reps 5] [--device cpu]

Builds chatvlmllm's vision tower (random weights, dots.ocr's real head size 128 by default
with fewer layers so it runs in seconds on a CPU) and times the three attention modes on the
same input, interleaved, checking that they give the same output. Prints the ratios and the
dense mask's size, and writes artifacts/dots_vision_attention.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    from chatvlmllm.engines._dots_vision import DotsVisionSettings, DotsVisionTower, VisionAttention

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--grid", default="40x30", help="patches per image, HxW (even numbers)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--out", type=Path, default=Path("artifacts/dots_vision_attention.json"))
    args = parser.parse_args(argv)

    h, w = (int(v) for v in args.grid.split("x"))
    dtype = getattr(torch, args.dtype)
    cfg = DotsVisionSettings(
        embed_dim=args.embed_dim,
        hidden_size=args.embed_dim,
        intermediate_size=2 * args.embed_dim,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
    )
    torch.manual_seed(0)
    tower = DotsVisionTower(cfg).to(device=args.device, dtype=dtype).eval()
    grid = torch.tensor([[1, h, w]] * args.images)
    pixels = torch.randn(args.images * h * w, 3 * 14 * 14, device=args.device, dtype=dtype)

    def run(mode: VisionAttention) -> tuple[float, torch.Tensor]:
        tower.set_attention(mode)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.no_grad():
            out = tower(pixels, grid)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started, out

    modes = (VisionAttention.SDPA, VisionAttention.BLOCK_MASK, VisionAttention.EAGER)
    times: dict[str, list[float]] = {m.value: [] for m in modes}
    outputs = {}
    for mode in modes:  # warm-up
        outputs[mode.value] = run(mode)[1]
    for _ in range(args.reps):
        for mode in modes:
            times[mode.value].append(run(mode)[0])
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    n = args.images * h * w
    report = {
        "device": args.device,
        "dtype": args.dtype,
        "patches": n,
        "images": args.images,
        "head_dim": cfg.head_dim,
        "layers": args.layers,
        "median_s": medians,
        "block_mask_over_per_image": medians["block_mask"] / medians["sdpa"],
        "eager_over_per_image_sdpa": medians["eager"] / medians["sdpa"],
        "max_abs_diff_block_mask_vs_per_image": float((outputs["block_mask"] - outputs["sdpa"]).abs().max()),
        "max_abs_diff_eager_vs_per_image": float((outputs["eager"] - outputs["sdpa"]).abs().max()),
        "dense_mask_bytes": n * n,  # bool mask; the math kernel also materialises heads·n² scores
        "per_image_scores_bytes_eager": args.heads * (h * w) ** 2 * 4,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
