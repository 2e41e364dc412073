"""Mixed-script repair after a rus+eng read (chatvlmllm.documents.scripts): on strings, and on the real page
that showed it."""

from __future__ import annotations

import pytest

from chatvlmllm.documents.scripts import letter_scripts, mixed_words, repair_lines
from tests.helpers import SHARED_EVAL, require_tesseract


def test_look_alikes_take_the_script_of_their_word_or_page():
    english = repair_lines(["Revenue (М) and ЕРЅ", "2012А 2013E", "САРЕХ grew"])
    assert english == ["Revenue (M) and EPS", "2012A 2013E", "CAPEX grew"]
    assert letter_scripts("\n".join(english))[0] == 0  # no Cyrillic letter left on the English page
    russian = repair_lines(["ТОВАР TOBAP цена", "Итого 10"])
    assert russian == ["ТОВАР ТОВАР цена", "Итого 10"]
    assert letter_scripts(russian[0])[1] == 0  # and no Latin letter in the Russian words


def test_a_word_keeps_its_own_distinctive_letters_and_only_look_alikes_change():
    # "Samsung" has distinctive Latin letters (S, m, n, g, u): its look-alike "а" becomes Latin even on a Russian page.
    assert repair_lines(["Телевизор Sаmsung"]) == ["Телевизор Samsung"]
    # A word with distinctive letters of both scripts keeps them (nothing to map them to).
    assert mixed_words("Жurnal") == ["Жurnal"]


def test_a_garbage_line_does_not_turn_the_latin_words_of_its_line_cyrillic():
    """On an English receipt Tesseract (rus+eng) may read a smudge as Cyrillic: the page's script decides the rest."""
    lines = ["TOTAL RM 9.00", "зле лань OK PAID", "Thank you, come again"]
    assert repair_lines(lines)[1] == "зле лань OK PAID"


@pytest.mark.slow
def test_a_rus_eng_read_of_the_english_financial_page_has_no_cyrillic_inside_its_words():
    """page_multicol_07 read with rus+eng gives "12/18А 12/19Е" and "САРЕХ" (Cyrillic А, Е, С, Р, Х): the
    issue's "2012А" on a page of the dev split. After the repair those words are Latin, and no word mixes scripts."""
    require_tesseract()
    from chatvlmllm.documents.loading import open_document
    from chatvlmllm.documents.reading_order import lines_text
    from chatvlmllm.engines._ocr_readers import TesseractReader, tesseract_rows

    path = SHARED_EVAL / "images" / "page_multicol_07.png"
    if not path.exists():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL}")
    image = open_document(path).page(0)
    reader = TesseractReader()
    raw = lines_text(tesseract_rows(reader.words(image, "rus+eng")))
    assert "12/18А" in raw and "САРЕХ" in raw  # what the mixed read writes (Cyrillic А, С, Р, Е, Х)
    repaired = lines_text(reader.read(image, "rus+eng"))
    assert "12/18A" in repaired and "CAPEX" in repaired and "12/18А" not in repaired
    assert not mixed_words(repaired)


def test_wrong_script_words_count_the_other_alphabet_of_the_document_language():
    from chatvlmllm.documents.scripts import wrong_script_words

    assert wrong_script_words("EPS 2012А САРЕХ grew", "en") == 2  # "2012А" and "САРЕХ" hold Cyrillic letters
    assert wrong_script_words("ТОВАР TOBAP 10", "ru") == 1
    assert wrong_script_words("EPS ТОВАР", "de") == 0  # no alphabet is foreign to a language we do not know
