"""Layering: only the engine package knows its adapters (docs/ARCHITECTURE.md).

An adapter is a module of `chatvlmllm.engines` that the family registry names as an engine. Nothing
outside `chatvlmllm/engines/` imports one (the rest goes through the registry and the core APIs),
and no adapter imports another (shared code lives in `engines/base.py`, `hf_common.py`, `doc_vlm.py`
or a `_private` module of the package). Imports are read with `ast`, so function-local ones count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from chatvlmllm.models.families import families

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ROOT / "chatvlmllm" / "engines"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# The adapter modules: where the family registry's engine classes live (chatvlmllm.engines.got_ocr).
ADAPTERS = {info.engine.__module__.rsplit(".", 1)[1] for info in families().values()}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, `from chatvlmllm.engines import got_ocr` counted as `...engines.got_ocr`."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def adapter_imports(path: Path) -> set[str]:
    return {m.rsplit(".", 1)[1] for m in imported_modules(path) if m.startswith("chatvlmllm.engines.")} & ADAPTERS


def python_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        target = ROOT / root
        files.extend([target] if target.is_file() else sorted(target.rglob("*.py")))
    return files


def test_the_adapters_are_found():
    # The check below means something only if it knows the adapters.
    assert {"got_ocr", "dots_ocr", "classic_ocr", "openai_backend", "qwen_vl"} <= ADAPTERS
    assert "base" not in ADAPTERS and "_transcription" not in ADAPTERS


def test_no_module_outside_the_engine_package_imports_an_adapter():
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in python_files("chatvlmllm", "ui", "pages", "app.py")
        if ENGINES not in path.parents and (found := adapter_imports(path))
    }
    assert offenders == {}


def test_adapters_import_no_other_adapter():
    offenders = {
        path.stem: sorted(found - {path.stem})
        for path in sorted(ENGINES.glob("*.py"))
        if path.stem in ADAPTERS and (found := adapter_imports(path) - {path.stem})
    }
    assert offenders == {}


def test_no_ui_module_imports_the_cli():
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files("ui", "pages", "app.py")
        if any(m == "chatvlmllm.cli" or m.startswith("chatvlmllm.cli.") for m in imported_modules(path))
    ]
    assert offenders == []


def test_the_checker_sees_a_violation(tmp_path):
    # A module that imports an adapter the way the old sidebar did is caught, function-local or not.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from chatvlmllm.engines.classic_ocr import tesseract_problem\n"
        "def f():\n    from chatvlmllm.engines import got_ocr\n",
        encoding="utf-8",
    )
    assert adapter_imports(probe) == {"classic_ocr", "got_ocr"}


def test_the_core_imports_neither_streamlit_nor_the_cli():
    # `python -m chatvlmllm` (__main__) is the CLI's entry point, so it is part of the CLI.
    cli = {ROOT / "chatvlmllm" / "__main__.py"}
    core = [p for p in python_files("chatvlmllm") if ROOT / "chatvlmllm" / "cli" not in p.parents and p not in cli]
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in core
        if (
            found := {
                m for m in imported_modules(path) if m.split(".")[0] == "streamlit" or m.startswith("chatvlmllm.cli")
            }
        )
    }
    assert offenders == {}


# -- the package layers (docs/ARCHITECTURE.md): each imports only the layers below it -------------
LAYERS = {"base": 0, "documents": 1, "models": 2, "engines": 3, "chat": 4, "eval": 5, "server": 5, "cli": 6}
BASE_MODULES = {"settings", "database", "decisions", "errors", "jsonable", "logs"}
FREE = {"devtools", "__main__"}  # test helpers and the CLI's entry point may use anything


def layer_of(module: str) -> str | None:
    """The layer of a `chatvlmllm...` module name (None: not chatvlmllm, or free)."""
    parts = module.split(".")
    if parts[0] != "chatvlmllm" or len(parts) == 1 or parts[1] == "__version__":
        return None
    if parts[1] in FREE:
        return None
    return "base" if parts[1] in BASE_MODULES else parts[1]


def upward_imports(path: Path, module: str | None = None) -> set[str]:
    """The chatvlmllm modules `path` (the module named `module`) imports from a layer above its own,
    or from a sibling layer."""
    own = layer_of(module or ".".join(path.relative_to(ROOT).with_suffix("").parts))
    if own is None:
        return set()
    found = set()
    for name in imported_modules(path):
        other = layer_of(name)
        if other is None or other == own or other not in LAYERS:
            continue
        if LAYERS[other] >= LAYERS[own]:
            found.add(name)
    return found


def test_every_package_is_a_known_layer():
    packages = {p.name for p in (ROOT / "chatvlmllm").iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in (ROOT / "chatvlmllm").glob("*.py")} - {"__init__", "__main__"}
    assert packages - FREE <= set(LAYERS) and modules <= BASE_MODULES


def test_at_most_twelve_modules_at_the_package_top():
    assert len(list((ROOT / "chatvlmllm").glob("*.py"))) <= 12


def test_each_layer_imports_only_the_layers_below():
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in python_files("chatvlmllm")
        if (found := upward_imports(path))
    }
    assert offenders == {}


def test_the_layer_checker_sees_an_upward_import(tmp_path):
    # The OCR cache once reached the chat store for its file name: documents → chat goes up.
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from chatvlmllm.chat.store import ChatStore\n", encoding="utf-8")
    found = upward_imports(probe, "chatvlmllm.documents.probe")
    assert found == {"chatvlmllm.chat.store", "chatvlmllm.chat.store.ChatStore"}
    assert upward_imports(probe, "chatvlmllm.server.probe") == set()  # the server may use the chat
