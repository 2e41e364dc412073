"""The message catalogue (docs/i18n.md): the .pot holds every marked string of the sources, every
language's .po translates all of it (no fuzzy entry, the same placeholders), and pybabel compiles it."""

from __future__ import annotations

import ast
import gettext
import subprocess
import sys
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from chatvlmllm import i18n

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "app.py", *sorted((REPO / "chatvlmllm").rglob("*.py")), *sorted((REPO / "ui").rglob("*.py"))]
SOURCES += sorted((REPO / "pages").rglob("*.py"))
MARKERS = {"_", "gettext", "ngettext", "N_", "lazy_gettext", "lazy_message", "lazy_plural"}
POT = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.SOURCE_LANGUAGE]


def read(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source)


def msgids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {message.id for message in catalog if message.id}


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in Formatter().parse(text) if field is not None}


@pytest.fixture(scope="module")
def template() -> Catalog:
    return read(POT)


def test_every_language_of_the_interface_has_a_catalogue():
    assert i18n.SOURCE_LANGUAGE == "en" and "ru" in TRANSLATED
    assert set(i18n.LANGUAGE_NAMES) == set(i18n.LANGUAGES)
    assert all(i18n.catalogue_path(language).is_file() for language in TRANSLATED)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(template, language):
    catalogue = read(i18n.catalogue_path(language))
    assert not catalogue.fuzzy, f"the {language} catalogue's header is fuzzy: pybabel compile would skip it"
    assert msgids(catalogue) == msgids(template), f"{language}.po is behind the .pot: run `make i18n`"
    untranslated = [m.id for m in catalogue if m.id and not all(m.string if m.pluralizable else [m.string])]
    fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
    assert untranslated == [] and fuzzy == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders(language):
    # A translation that drops or renames {count} raises KeyError in .format() on the page.
    catalogue = read(i18n.catalogue_path(language))
    wrong = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if message.pluralizable else (message.id,)
        strings = message.string if message.pluralizable else (message.string,)
        expected = set().union(*(placeholders(text) for text in ids))
        wrong += [(ids[0], text) for text in strings if placeholders(text) != expected]
    assert wrong == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_plural_entries_have_every_form_of_the_language(language):
    catalogue = read(i18n.catalogue_path(language))
    forms = catalogue.num_plurals
    assert language != "ru" or forms == 3
    assert all(len(m.string) == forms for m in catalogue if m.id and m.pluralizable)


def test_the_template_holds_every_marked_string_of_the_sources(tmp_path, template):
    # What `make i18n` extracts now (pybabel with the options in pyproject.toml) against the committed .pot:
    # a string marked in the code but missing here would stay English on every page.
    fresh = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "--output-file", str(fresh)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    extracted = read(fresh)
    assert len(extracted) > 20  # the extraction found the sources
    assert msgids(extracted) == msgids(template), "the .pot is behind the code: run `make i18n`"


@pytest.mark.parametrize("language", TRANSLATED)
def test_pybabel_compiles_the_catalogue(tmp_path, language):
    compiled = tmp_path / "out.mo"
    source = str(i18n.catalogue_path(language))
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "compile", "-l", language, "-i", source, "-o", str(compiled)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    with compiled.open("rb") as mo:
        translations = gettext.GNUTranslations(mo)
    assert translations.gettext("Upload a document") != "Upload a document"
    assert compiled.read_bytes() == i18n.compile_catalogue(i18n.catalogue_path(language))


def marker_calls(tree: ast.Module) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MARKERS
    ]


def test_marked_strings_are_literals_the_extraction_can_read():
    # _(f"...") and _("a" + b) are never extracted, so they stay English: format after translating instead.
    wrong = []
    for path in SOURCES:
        for call in marker_calls(ast.parse(path.read_text(encoding="utf-8"))):
            texts = call.args[:2] if call.func.id == "ngettext" else call.args[:1]  # type: ignore[attr-defined]
            wrong += [f"{path.relative_to(REPO)}:{call.lineno}" for arg in texts if isinstance(arg, ast.JoinedStr)]
            wrong += [
                f"{path.relative_to(REPO)}:{call.lineno}"
                for arg in texts
                if isinstance(arg, ast.BinOp) and any(isinstance(side, ast.Constant) for side in (arg.left, arg.right))
            ]
    assert wrong == []


def test_no_module_that_translates_rebinds_the_underscore():
    # `for _ in ...` in a module that imports `_` shadows the translation function there.
    wrong = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports_it = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "chatvlmllm.i18n"
            and any(a.name == "_" for a in node.names)
            for node in ast.walk(tree)
        )
        if imports_it:
            wrong += [
                f"{path.relative_to(REPO)}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)
            ]
    assert wrong == []


def test_the_checkers_see_what_they_look_for():
    tree = ast.parse('from chatvlmllm.i18n import _\nx = _(f"Hi {name}")\nfor _ in range(3):\n    pass\n')
    assert [call.lineno for call in marker_calls(tree)] == [2]
    assert isinstance(marker_calls(tree)[0].args[0], ast.JoinedStr)
    assert any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store) for n in ast.walk(tree))
