"""dots.ocr (rednote-hilab): layout-aware OCR through the hub's remote code."""

from __future__ import annotations

from chatvlmllm.engines.base import FamilyInfo
from chatvlmllm.engines.hf_common import TransformersEngine

FAMILIES = {
    "dots_ocr": FamilyInfo(
        "dots_ocr",
        "chatvlmllm.engines.dots_ocr:DotsOcrEngine",
        capabilities=frozenset({"ocr", "layout", "chat"}),
        default_max_pixels=11_289_600,
        default_min_pixels=3136,
        max_pixels_without_fa2=1_003_520,  # 28·28·1280: keeps sdpa's dense mask to a few hundred MB
    ),
}


class DotsOcrEngine(TransformersEngine):
    pass
