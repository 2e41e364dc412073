"""ocr_auto's evidence for a Latin page (chatvlmllm.engines._ocr_choice): Tesseract's confidence, its lines, and
the word agreement of two readings."""

from __future__ import annotations

from chatvlmllm.engines._ocr_choice import (
    MIN_CONFIDENCE,
    MIN_PROBE_CONFIDENCE,
    TesseractEvidence,
    probe_reads_well,
    word_agreement,
)


def tsv(lines: list[list[tuple[str, float]]], block: int = 1) -> dict[str, list]:
    """Tesseract's TSV columns for words on lines (only what the evidence reads), plus a layout row (conf -1)."""
    data: dict[str, list] = {"text": [""], "conf": [-1.0], "block_num": [block], "par_num": [1], "line_num": [0]}
    for number, words in enumerate(lines, start=1):
        for text, conf in words:
            for key, value in (("text", text), ("conf", conf), ("block_num", block), ("par_num", 1)):
                data[key].append(value)
            data["line_num"].append(number)
    return data


def test_confident_prose_reads_well():
    evidence = TesseractEvidence.from_words(tsv([[("the", 96), ("river", 95), ("rose", 94)]] * 4))
    assert evidence == TesseractEvidence(words=12, mean_confidence=95.0, words_per_line=3)
    assert evidence.reads_well()


def test_low_confidence_or_table_cells_do_not():
    unsure = TesseractEvidence.from_words(tsv([[("T0TAL", 60), ("RM", 70), ("9.00", 80)]] * 3))
    assert unsure.mean_confidence < MIN_CONFIDENCE and not unsure.reads_well()
    cells = TesseractEvidence.from_words(tsv([[("2019", 96)], [("Revenue", 95)], [("12.5", 97)]]))
    assert cells.words_per_line == 1 and not cells.reads_well()  # sure of each word, but a table read cell by cell
    assert not TesseractEvidence.from_words(tsv([])).reads_well()  # nothing read


def test_word_agreement_ignores_order_and_case():
    assert word_agreement("Total 9.00\nCash", "CASH\ntotal 9.00") == 1.0
    assert word_agreement("the left column", "") == 0.0
    assert 0.5 < word_agreement("one two three four", "one two three for") < 1.0


def test_the_probe_strip_decides_before_a_full_read():
    assert probe_reads_well(MIN_PROBE_CONFIDENCE) and probe_reads_well(95.6)  # a deposition's strip
    assert not probe_reads_well(72.0)  # a thermal receipt's: RapidOCR reads it, Tesseract does not
    assert not probe_reads_well(0.0)  # nothing read (white on dark)
