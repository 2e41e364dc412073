"""Images read the way the camera meant: EXIF orientation and 16-bit samples, judged by OCR on
real documents from ../shared/eval (word F1 against the human transcript, rapidocr through the CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from chatvlmllm.cli import main
from chatvlmllm.eval.metrics import word_f1
from tests.helpers import SHARED_EVAL, image_bytes

RECEIPT = SHARED_EVAL / "images" / "receipt_000.jpg"  # ICDAR-2019 SROIE, see the eval manifest
TRUTH = SHARED_EVAL / "truth" / "receipt_000.txt"


def ocr_f1(tmp_path, capsys, name: str, data: bytes) -> float:
    path = tmp_path / name
    path.write_bytes(data)
    code = main(["ocr", str(path), "--model", "rapidocr", "--no-fallback", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return word_f1(json.loads(out)["answer"], TRUTH.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_orientation_and_sixteen_bit_read_as_well_as_the_original(tmp_path, capsys):
    assert RECEIPT.is_file(), f"the shared evaluation set is missing: {RECEIPT}"
    grey = Image.open(RECEIPT).convert("L")
    baseline = ocr_f1(tmp_path, capsys, "upright.png", image_bytes(grey))
    assert baseline > 0.5  # the engine really reads this receipt

    # A phone stores the pixels sideways and says so in EXIF (orientation 6: turn 90° clockwise).
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = image_bytes(grey.rotate(90, expand=True), "PNG", exif=exif.tobytes())
    assert ocr_f1(tmp_path, capsys, "sideways.png", sideways) >= baseline - 0.02

    # The same page as a 16-bit greyscale scan: full range, not clipped to white.
    deep = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    assert deep.mode.startswith("I;16")
    assert ocr_f1(tmp_path, capsys, "grey16.png", image_bytes(deep)) >= baseline - 0.02
