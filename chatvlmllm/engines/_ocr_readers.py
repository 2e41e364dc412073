"""The two offline readers under the OCR engines, tuned, cancellable, and the per-page choices between them.

- `RapidReader`: RapidOCR's PP-OCR detector and recogniser (onnxruntime), driven stage by stage so
  a cancelled answer stops between recognition chunks, with the speed settings of TUNED_RAPID_PARAMS.
- `TesseractReader`: the Tesseract binary as a subprocess (TSV output), killed on cancel, with
  OMP_THREAD_LIMIT and a page segmentation mode chosen by the page's shape.
- `probe_script`: which script a page is in, from the distinctive letters of a Tesseract eng+rus
  pass over a strip of the detector's widest line crops (Tesseract's own OSD misread 5 of 20
  receipts as Cyrillic and 2 of 20 Russian lines as Latin on ../shared/eval; the strip is right on
  53 of 55 items and unsure on the other two, which then go to Tesseract).
- `repaired_rows`: after a rus+eng read, each word's look-alike letters in the word's own script.

Which reader's text ocr_auto keeps for a Latin page is in `_ocr_choice`.

Every figure behind these settings: docs/benchmark.md ("Tuning").
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatvlmllm.decisions import Script as WritingSystem
from chatvlmllm.documents.reading_order import TextBox, box_from_points, reading_order
from chatvlmllm.documents.scripts import distinctive_letters, repair_lines
from chatvlmllm.engines._ocr_choice import TesseractEvidence
from chatvlmllm.engines.base import reader_name
from chatvlmllm.errors import EngineError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

log = logging.getLogger(__name__)

TESSERACT_INSTALL = "apt-get install tesseract-ocr tesseract-ocr-rus"


class Cancelled(Exception):
    """The answer was stopped: the page is left unread."""


class Reader(StrEnum):
    RAPIDOCR = "rapidocr"
    TESSERACT = "tesseract"

    @property
    def label(self) -> str:
        """The engine's own name, as a person writes it."""
        return reader_name(self.value)


class Script(StrEnum):
    LATIN = "latin"
    CYRILLIC = "cyrillic"
    UNKNOWN = "unknown"


def available_cores() -> int:
    """Cores this process may run on (the container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# RapidOCR 3.10's defaults: detection at the page's full resolution for pages (limit_type "min",
# 736: the short side is brought UP to 736, never down), the angle classifier on every line,
# recognition 6 lines per batch, onnxruntime's own thread choice.
DEFAULT_RAPID_PARAMS: dict[str, Any] = {"Global.log_level": "error"}


def tuned_rapid_params(cores: int | None = None) -> dict[str, Any]:
    """The speed settings, each measured against the defaults on ../shared/eval (benchmarks/ocr_tuning.py).

    - detector input: the long side at most DETECTOR_MAX_SIDE (limit_type "max"): a 2000×2468 page
      is detected at 1280 px (about 2.5x fewer pixels), a receipt at its own size (no upscaling);
    - angle classifier off: scans and photos of documents in the eval set are upright, and the
      classifier costs a pass over every line;
    - onnxruntime: intra-op threads = the cores available, one inter-op thread (the graphs are
      sequential: a second inter-op pool only competes for the same cores);
    - recogniser input at least REC_MIN_WIDTH px wide (RapidOCR pads every line to 320 px: a
      receipt's short amounts cost as much as a full line), with the crops sorted by shape across
      the page (RapidReader._recognise_crops).
    """
    cores = cores or available_cores()
    return {
        **DEFAULT_RAPID_PARAMS,
        "Det.limit_type": "max",
        "Det.limit_side_len": DETECTOR_MAX_SIDE,
        "Global.use_cls": False,
        "Rec.rec_batch_num": REC_BATCH,
        "Rec.rec_img_shape": [3, REC_HEIGHT, REC_MIN_WIDTH],
        "EngineConfig.onnxruntime.intra_op_num_threads": cores,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }


DETECTOR_MAX_SIDE = 1280
REC_BATCH = 6
# The recogniser's line height (its model's) and the narrowest input it gets (RapidOCR's default: 320).
REC_HEIGHT = 48
REC_MIN_WIDTH = 160
# Lines recognised between two looks at the cancel flag (several recogniser batches).
REC_CHUNK = 24


@dataclass
class Detection:
    """The detector's output for one page, kept so the recogniser can run on it later."""

    bgr: np.ndarray
    prepared: np.ndarray
    record: dict[str, Any]
    crops: list[np.ndarray]
    det: Any  # rapidocr TextDetOutput
    boxes: list[tuple[float, float, float, float]]  # in page pixels

    @property
    def empty(self) -> bool:
        return not self.crops


class RapidReader:
    """RapidOCR run stage by stage: detect, then recognise in chunks, looking at `cancel` between them."""

    def __init__(self, params: dict[str, Any] | None = None):
        try:
            from rapidocr import RapidOCR

            # Typed loosely: rapidocr's stage outputs are a union its callers narrow at run time.
            self.ocr: Any = RapidOCR(params=dict(params if params is not None else tuned_rapid_params()))
        except Exception as exc:  # missing wheel, broken onnxruntime
            raise EngineError(f"rapidocr cannot start: {exc} (pip install rapidocr onnxruntime)") from exc

    def detect(self, image: Image.Image) -> Detection:
        import numpy as np
        from rapidocr.main import RapidOCRError

        # OpenCV's BGR order, as a contiguous copy (a reversed-channel view costs OpenCV ~0.5 s a receipt).
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        prepared, record = self.ocr.preprocess_img(bgr)
        try:
            crops, det = self.ocr.detect_and_crop(prepared, record)
        except RapidOCRError:  # "The text detection result is empty"
            return Detection(bgr, prepared, record, [], None, [])
        # Boxes in page pixels (the detector worked on a resized, padded copy).
        from rapidocr.utils.process_img import map_boxes_to_original

        height, width = bgr.shape[:2]
        detected: Any = det.boxes
        points = map_boxes_to_original(detected.copy(), record, height, width)
        return Detection(bgr, prepared, record, list(crops), det, [box_from_points(p) for p in points])

    def recognise(self, detection: Detection, cancel: threading.Event | None = None) -> list[list[TextBox]]:
        from rapidocr.ch_ppocr_rec import TextRecOutput
        from rapidocr.main import TextClsOutput

        if detection.empty:
            return []
        crops = detection.crops
        if self.ocr.use_cls:
            crops, _ = self.ocr.cls_and_rotate(crops)
        texts, scores = self._recognise_crops(crops, cancel)
        rec_output: Any = TextRecOutput
        rec = rec_output(imgs=list(crops), txts=tuple(texts), scores=scores, word_results=tuple(() for _ in texts))
        det = copy.copy(detection.det)  # build_final_output maps its boxes: keep the detection reusable
        result = self.ocr.build_final_output(
            detection.bgr, det, TextClsOutput(), rec, list(detection.crops), detection.record
        )
        if getattr(result, "txts", None) is None or getattr(result, "boxes", None) is None:
            return []
        return reading_order(
            [
                TextBox(text, box_from_points(points), float(score))
                for points, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            ]
        )

    def read(self, image: Image.Image, cancel: threading.Event | None = None) -> list[list[TextBox]]:
        return self.recognise(self.detect(image), cancel)

    def _recognise_crops(
        self, crops: Sequence[np.ndarray], cancel: threading.Event | None
    ) -> tuple[list[str], list[float]]:
        """(text, score) of each crop, in the crops' order.

        The crops go to the recogniser sorted by shape (width / height) across the whole page, not
        chunk by chunk: a batch is padded to its widest crop, and a receipt's short amounts batched
        with its long lines cost the long lines' width (receipts −12 % CPU, same text; docs/benchmark.md).
        """
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
        texts, scores = [""] * len(crops), [0.0] * len(crops)
        for start in range(0, len(order), REC_CHUNK):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            chunk = order[start : start + REC_CHUNK]
            recognised = self.ocr.recognize_txt([crops[i] for i in chunk])
            for i, text, score in zip(chunk, recognised.txts or (), recognised.scores or (), strict=True):
                texts[i], scores[i] = fold_fullwidth(text), float(score)
        return texts, scores


# RapidOCR's recogniser is trained on Chinese text: on a Latin or Cyrillic line it often writes the full-width
# forms of ASCII punctuation ("MOTOR（SUNGAI）"), which search, copy and most fonts then get wrong.
FULLWIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff66-\uff9f]")


def fold_fullwidth(text: str) -> str:
    """`text` with full-width ASCII forms as ASCII, unless it holds CJK script (where they are the norm)."""
    return text if CJK.search(text) else text.translate(FULLWIDTH_TO_ASCII)


# -- Tesseract ------------------------------------------------------------------------------


class Psm(StrEnum):
    """Tesseract page segmentation modes used here."""

    AUTO = "3"  # full layout analysis: columns, blocks (Tesseract's default)
    BLOCK = "6"  # one uniform block of text (the script probe's strip)
    SINGLE_LINE = "7"  # the image is one text line


def tesseract_command() -> str:
    import pytesseract

    return str(pytesseract.pytesseract.tesseract_cmd)


def tesseract_problem() -> str | None:
    """Why Tesseract cannot run here (no binary on PATH), or None."""
    command = tesseract_command()
    if shutil.which(command) is None:
        return f"the `{command}` binary is not installed ({TESSERACT_INSTALL})"
    return None


def psm_for(size: tuple[int, int]) -> Psm:
    """One text line (a strip at least 8x wider than high, under 120 px) → single-line mode; else layout analysis."""
    width, height = size
    return Psm.SINGLE_LINE if height < 120 and width >= 8 * height else Psm.AUTO


# OpenMP threads per Tesseract process. Tesseract's OpenMP parallelism is small and its threads
# spin while waiting: on a shared machine one thread per process is faster (measured: docs/benchmark.md).
TESSERACT_THREADS = 1

_TSV_INT_FIELDS = (
    "level",
    "page_num",
    "block_num",
    "par_num",
    "line_num",
    "word_num",
    "left",
    "top",
    "width",
    "height",
)


class TesseractReader:
    """The Tesseract binary as a subprocess: TSV words out, killed when the answer is cancelled."""

    def __init__(self, threads: int = TESSERACT_THREADS, psm: Psm | None = None, poll_s: float = 0.05):
        self.threads = threads
        self.psm = psm  # None: psm_for(page size)
        self.poll_s = poll_s

    def words(self, image: Image.Image, language: str, cancel: threading.Event | None = None) -> dict[str, list]:
        """image_to_data's dictionary (text, conf, left, top, ... per word)."""
        psm = self.psm or psm_for(image.size)
        env = {**os.environ, "OMP_THREAD_LIMIT": str(self.threads)} if self.threads else dict(os.environ)
        # The page goes through a file, not stdin: communicate() can only be retried (to look at
        # `cancel` between waits) when it has no input to send.
        with tempfile.TemporaryDirectory(prefix="chatvlmllm-tesseract-") as folder:
            page = Path(folder) / "page.png"
            image.convert("RGB").save(page, format="PNG", compress_level=1)
            command = [tesseract_command(), str(page), "stdout", "-l", language, "--psm", psm.value, "tsv"]
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
                )
            except OSError as exc:
                raise EngineError(f"tesseract cannot run: {exc} ({TESSERACT_INSTALL})") from exc
            out, err = self._wait(process, cancel)
        if process.returncode != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            raise EngineError(f"tesseract failed: {message[-1] if message else f'exit {process.returncode}'}")
        return parse_tsv(out.decode("utf-8", "replace"))

    def _wait(self, process: subprocess.Popen, cancel: threading.Event | None) -> tuple[bytes, bytes]:
        while True:
            try:
                return process.communicate(timeout=self.poll_s)
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    process.kill()
                    process.communicate()
                    raise Cancelled from None

    def read(self, image: Image.Image, language: str, cancel: threading.Event | None = None) -> list[list[TextBox]]:
        rows = tesseract_rows(self.words(image, language, cancel))
        return repaired_rows(rows) if reads_both_scripts(language) else rows


def reads_both_scripts(language: str) -> bool:
    """A Tesseract language list with a Latin and a Cyrillic model ("rus+eng"): it mixes look-alike letters."""
    parts = set(language.split("+"))
    return "rus" in parts and len(parts) > 1


def repaired_rows(rows: list[list[TextBox]]) -> list[list[TextBox]]:
    """Each word's look-alike letters in the word's own script (chatvlmllm.documents.scripts), boxes kept."""
    texts = repair_lines(box.text for row in rows for box in row)
    repaired = iter(texts)
    return [[TextBox(next(repaired), box.box, box.score) for box in row] for row in rows]


def tesseract_rows(data: dict[str, list]) -> list[list[TextBox]]:
    """Tesseract's words (image_to_data) as text rows in reading order.

    Tesseract's own layout analysis orders the blocks (it finds columns well), and its order is
    kept. But it reads two columns whose lines align as one line: such a line is split where two
    words are further apart than GUTTER_WORD_HEIGHTS word heights, and a block with split lines
    is put in order by reading_order (columns one after the other; a receipt's label and amount
    rejoin as one row).
    """
    blocks: dict[tuple[int, int], dict[tuple[int, int], list[int]]] = {}
    for i, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][i]) >= 0:
            block = blocks.setdefault((data["page_num"][i], data["block_num"][i]), {})
            block.setdefault((data["par_num"][i], data["line_num"][i]), []).append(i)
    rows: list[list[TextBox]] = []
    for lines in blocks.values():
        pieces = [_split_at_gutters(sorted(words, key=lambda i: data["left"][i]), data) for words in lines.values()]
        if any(len(line) > 1 for line in pieces):
            rows.extend(reading_order([_tesseract_box(piece, data) for line in pieces for piece in line]))
        else:
            rows.extend([_tesseract_box(line[0], data)] for line in pieces)
    return rows


GUTTER_WORD_HEIGHTS = 2.0


def _split_at_gutters(indices: list[int], data: dict[str, list]) -> list[list[int]]:
    pieces = [[indices[0]]]
    for previous, current in itertools.pairwise(indices):
        gap = data["left"][current] - (data["left"][previous] + data["width"][previous])
        height = max(data["height"][previous], data["height"][current], 1)
        if gap > GUTTER_WORD_HEIGHTS * height:
            pieces.append([])
        pieces[-1].append(current)
    return pieces


def _tesseract_box(indices: list[int], data: dict[str, list]) -> TextBox:
    x0 = min(data["left"][i] for i in indices)
    y0 = min(data["top"][i] for i in indices)
    x1 = max(data["left"][i] + data["width"][i] for i in indices)
    y1 = max(data["top"][i] + data["height"][i] for i in indices)
    text = " ".join(str(data["text"][i]).strip() for i in indices)
    score = sum(float(data["conf"][i]) for i in indices) / len(indices) / 100.0
    return TextBox(text, (float(x0), float(y0), float(x1), float(y1)), round(score, 4))


def parse_tsv(text: str) -> dict[str, list]:
    """Tesseract's TSV as columns, numbers as numbers (the shape pytesseract.image_to_data returns)."""
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    columns: dict[str, list] = {name: [] for name in (*_TSV_INT_FIELDS, "conf", "text")}
    for row in rows:
        for name in _TSV_INT_FIELDS:
            columns[name].append(int(row.get(name) or 0))
        columns["conf"].append(float(row.get("conf") or -1))
        columns["text"].append(row.get("text") or "")
    return columns


# -- script -----------------------------------------------------------------------------------

PROBE_LINES = 8
# The script with the majority of the probe's distinctive letters (those with no look-alike in the
# other alphabet: a short Russian line of "а о р с е" read as Latin is no evidence of Latin) wins;
# with fewer than PROBE_MIN_LETTERS of them the probe is unsure, and the page goes to the reader
# that knows both alphabets (Tesseract), never to one without Cyrillic.
CYRILLIC_SHARE = 0.5
PROBE_MIN_LETTERS = 8


@dataclass(frozen=True)
class ScriptGuess:
    script: Script
    cyrillic_share: float
    letters: int
    # Tesseract's mean word confidence (0-100) on the probe's strip: how sure it is of the page's widest
    # lines, the first evidence of how it would read the page (ocr_auto's early choice, _ocr_choice).
    confidence: float = 0.0

    def describe(self) -> str:
        if self.script is Script.UNKNOWN:
            return f"too little text to tell its script ({self.letters} distinctive letters probed)"
        return f"{self.script.value} script ({self.cyrillic_share:.0%} of {self.letters} probed letters Cyrillic)"


def probe_strip(crops: Sequence[np.ndarray], lines: int = PROBE_LINES) -> Image.Image:
    """The widest line crops stacked on white, one under the other (BGR crops → an RGB image)."""
    import numpy as np
    from PIL import Image as PILImage

    chosen = sorted(crops, key=lambda crop: -crop.shape[1])[:lines]
    margin = 10
    height = sum(crop.shape[0] + margin for crop in chosen) + margin
    width = max(crop.shape[1] for crop in chosen) + 2 * margin
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    top = margin
    for crop in chosen:
        canvas[top : top + crop.shape[0], margin : margin + crop.shape[1]] = crop
        top += crop.shape[0] + margin
    return PILImage.fromarray(np.ascontiguousarray(canvas[:, :, ::-1]))


def probe_script(
    crops: Sequence[np.ndarray], tesseract: TesseractReader, cancel: threading.Event | None = None
) -> ScriptGuess:
    """Read a strip of the page's widest lines with Tesseract eng+rus and count the letters' scripts."""
    if not crops or tesseract_problem():
        return ScriptGuess(Script.UNKNOWN, 0.0, 0)
    strip = probe_strip(crops)
    words = TesseractReader(tesseract.threads, Psm.BLOCK).words(strip, "eng+rus", cancel)
    counts = distinctive_letters(" ".join(str(w) for w in words["text"]))
    cyrillic, letters = counts[WritingSystem.CYRILLIC], counts[WritingSystem.CYRILLIC] + counts[WritingSystem.LATIN]
    confidence = TesseractEvidence.from_words(words).mean_confidence
    if letters < PROBE_MIN_LETTERS:
        return ScriptGuess(Script.UNKNOWN, cyrillic / letters if letters else 0.0, letters, confidence)
    share = cyrillic / letters
    script = Script.CYRILLIC if share >= CYRILLIC_SHARE else Script.LATIN
    return ScriptGuess(script, round(share, 3), letters, confidence)
