"""`chatvlmllm models`: every catalog model with its download status, size on disk and licence;
`--options KEY`: the options that model's entry in the models file may set, from its family's schema."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from typing import Any

from pydantic_core import to_jsonable_python

from chatvlmllm.i18n import _
from chatvlmllm.models.catalog import ModelSpec, get_model, load_catalog, models_file
from chatvlmllm.models.downloads import human_bytes, model_row
from chatvlmllm.models.families import option_infos

# The options table: widths of the type and default columns (the description takes the rest of the line).
TYPE_WIDTH = 26
DEFAULT_WIDTH = 10
MIN_DESCRIPTION_WIDTH = 30


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list models: downloaded or not, size on disk, licence")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--options",
        metavar="KEY",
        help="print the options model KEY's entry in the models file may set: name, type, default, description",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.options:
        return print_options(get_model(args.options), as_json=args.json)
    rows = [model_row(spec) for spec in load_catalog().values()]
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
        return 0
    print(f"{_('model'):18} {_('status'):15} {_('on disk'):>9} {_('download'):>9}  {_('licence')}")
    for row in rows:
        download = f"{row['download_gb']:.1f} GB" if row["download_gb"] else "-"
        on_disk = human_bytes(row["size_on_disk_bytes"]) if row["size_on_disk_bytes"] else "-"
        print(f"{row['key']:18} {row['status']:15} {on_disk:>9} {download:>9}  {row['licence'] or '-'}")
    return 0


def option_rows(spec: ModelSpec) -> list[dict[str, Any]]:
    """The family's options, each with what this entry sets it to (`set`: whether the models file sets it)."""
    chosen = spec.options
    return [
        {
            "name": option.name,
            "type": option.type,
            "default": to_jsonable_python(option.default),
            "set": option.name in chosen.model_fields_set,
            "value": to_jsonable_python(getattr(chosen, option.name, option.default)),
            "description": option.description,
        }
        for option in option_infos(spec.family_info().options)
    ]


def print_options(spec: ModelSpec, as_json: bool) -> int:
    rows = option_rows(spec)
    if as_json:
        print(json.dumps({"model": spec.key, "family": spec.family, "options": rows}, indent=2, ensure_ascii=False))
        return 0
    print(
        _("{model} (family {family}): options of its {table} table in {file}").format(
            model=spec.key, family=spec.family, table=f"[models.{spec.key}]", file=models_file()
        )
    )
    if not rows:
        print(_("none: this family takes no options"))
        return 0
    name_width = max(len("option"), *(len(row["name"]) for row in rows))
    description_width = max(MIN_DESCRIPTION_WIDTH, _terminal_width() - name_width - TYPE_WIDTH - DEFAULT_WIDTH - 3)
    widths = (name_width, TYPE_WIDTH, DEFAULT_WIDTH, description_width)
    print(_table_line((_("option"), _("type"), _("default"), _("description")), widths))
    for row in rows:
        print(_table_line((row["name"], row["type"], _toml_value(row["default"]), row["description"]), widths))
    chosen = [f"  {row['name']} = {_toml_value(row['value'])}" for row in rows if row["set"]]
    if chosen:
        print("\n" + _("This entry sets:"), *chosen, sep="\n")
    return 0


def _terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(120, 24)).columns


def _toml_value(value: Any) -> str:
    """How the value is written in the models file (TOML); "-" for unset."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # strings, numbers and booleans are written as in JSON


def _table_line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """One row; a cell longer than its column wraps onto the following lines of the same row."""
    wrapped = [textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, widths, strict=True)]
    lines = []
    for index in range(max(len(column) for column in wrapped)):
        parts = [column[index] if index < len(column) else "" for column in wrapped]
        lines.append(" ".join(part.ljust(width) for part, width in zip(parts, widths, strict=True)).rstrip())
    return "\n".join(lines)
