"""The CLI speaks the terminal's language (LANG, LC_MESSAGES, CHATVLMLLM_UI_LANG) in its human messages;
`--json` output stays English and the same whatever the locale."""

from __future__ import annotations

import pytest

from chatvlmllm.cli import main
from chatvlmllm.i18n import current_language
from tests.helpers import pdf_of, text_image


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pdf(tmp_path):
    def make(pages: int):
        path = tmp_path / f"doc{pages}.pdf"
        path.write_bytes(pdf_of([text_image([f"PAGE {n}"], (200, 120)) for n in range(1, pages + 1)]))
        return path

    return make


@pytest.mark.parametrize(("pages", "shown"), [(1, "1 страница"), (3, "3 страницы"), (5, "5 страниц")])
def test_a_russian_terminal_gets_the_error_in_russian_with_its_plural(monkeypatch, capsys, pdf, pages, shown):
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    path = pdf(pages)
    code, out, err = run_cli(capsys, "ask", str(path), "Что это?", "--page", "9")
    assert code == 2 and out == ""
    assert err.strip() == f"ошибка: {path.name}: {shown}, страницы --page 9 нет"
    assert current_language() == "en"  # the language ended with the command (tests call main in-process)


def test_lc_messages_and_the_forced_language_win_over_lang(monkeypatch, capsys, pdf):
    path = pdf(2)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("LC_MESSAGES", "ru_RU.UTF-8")
    assert run_cli(capsys, "ask", str(path), "q", "--page", "3")[2].startswith("ошибка: ")
    monkeypatch.setenv("LC_MESSAGES", "C")
    assert run_cli(capsys, "ask", str(path), "q", "--page", "3")[2].startswith("error: ")
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "ru")
    assert run_cli(capsys, "ask", str(path), "q", "--page", "3")[2].startswith("ошибка: ")


@pytest.mark.slow  # doctor probes the machine (~4 s)
def test_json_output_is_the_same_in_every_locale(monkeypatch, capsys, pdf):
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    russian = run_cli(capsys, "doctor", "--json", "--gpu", "12.0:16")
    monkeypatch.setenv("LANG", "C.UTF-8")
    english = run_cli(capsys, "doctor", "--json", "--gpu", "12.0:16")
    assert russian[0] == english[0] == 0 and russian[1] == english[1]
    # A --json run is English from start to end, its error line too: a script reads the same text.
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    code, out, err = run_cli(capsys, "ask", str(pdf(2)), "q", "--page", "3", "--json")
    assert code == 2 and out == "" and "has 2 pages; --page 3 does not exist" in err


def test_a_forced_language_the_app_does_not_speak_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("CHATVLMLLM_UI_LANG", "de")
    code, out, err = run_cli(capsys, "doctor")
    assert code == 2 and out == ""
    assert err == "error: CHATVLMLLM_UI_LANG='de' is not a language of this app (en, ru).\n"


def test_a_damaged_document_is_said_in_the_terminals_language(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "scan.png"
    empty.write_bytes(b"")
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    assert run_cli(capsys, "ocr", str(empty)) == (2, "", "ошибка: scan.png пуст (0 байт).\n")
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert run_cli(capsys, "ocr", str(empty)) == (2, "", "error: scan.png is empty (0 bytes).\n")


def test_the_models_list_speaks_russian_and_its_json_does_not(monkeypatch, capsys):
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    code, out, _err = run_cli(capsys, "models")
    assert code == 0 and out.split()[:3] == ["модель", "состояние", "на"]  # "модель состояние на диске …"
    russian = run_cli(capsys, "models", "--json")
    monkeypatch.setenv("LANG", "C.UTF-8")
    english = run_cli(capsys, "models", "--json")
    assert russian == english and russian[0] == 0 and '"status": "' in russian[1]


@pytest.mark.slow  # doctor probes the machine (~4 s)
def test_doctor_speaks_russian_in_a_russian_terminal(monkeypatch, capsys):
    monkeypatch.setenv("LANG", "ru_RU.UTF-8")
    code, out, _err = run_cli(capsys, "doctor", "--gpu", "12.0:16")
    assert code == 0
    assert out.startswith("Оборудование (гипотетическое)\n") and "\nМодели\n" in out
    assert "bfloat16: вычислительные возможности 12.0 его поддерживают" in out  # a planner reason, translated
    assert "Лучшая модель для каждой задачи" in out
