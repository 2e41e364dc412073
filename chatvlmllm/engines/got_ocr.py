"""GOT-OCR-2.0 (transformers' GotOcr2ForConditionalGeneration): an OCR specialist."""

from __future__ import annotations

from chatvlmllm.engines.base import FamilyInfo
from chatvlmllm.engines.hf_common import TransformersEngine

FAMILIES = {
    "got_ocr2": FamilyInfo(
        "got_ocr2",
        "chatvlmllm.engines.got_ocr:GotOcrEngine",
        attention=("eager",),  # transformers raises for sdpa and flash_attention_2
        capabilities=frozenset({"ocr"}),
        notes=("GOT-OCR transcribes; it does not answer questions",),
    ),
}


class GotOcrEngine(TransformersEngine):
    pass
