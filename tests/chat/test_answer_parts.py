"""Answers cut into prose, tables, JSON and code (chatvlmllm.chat.answer_parts)."""

from __future__ import annotations

import csv
import io

from chatvlmllm.chat.answer_parts import PartKind, has_structure, split_answer

TABLE_ANSWER = """Here are the items:

| Item | Qty | Price |
|---|---:|---|
| **Coffee** | 2 | $4.50 |
| Tea, green | 1 | `3.00` |
| Pipe \\| cleaner | 3 |

Total: $12.00"""


def test_a_pipe_table_becomes_cells_with_its_csv_and_markdown():
    intro, table_part, after = split_answer(TABLE_ANSWER)
    assert (intro.kind, intro.text) == (PartKind.TEXT, "Here are the items:")
    assert (after.kind, after.text) == (PartKind.TEXT, "Total: $12.00")
    table = table_part.table
    assert table_part.kind is PartKind.TABLE and table is not None
    assert table.header == ("Item", "Qty", "Price")
    # Plain cell text (no ** or ticks), an escaped pipe kept as a pipe, a short row padded.
    assert table.rows == (("Coffee", "2", "$4.50"), ("Tea, green", "1", "3.00"), ("Pipe | cleaner", "3", ""))
    assert list(csv.reader(io.StringIO(table.to_csv()))) == [list(table.header), *map(list, table.rows)]
    assert table.markdown.splitlines()[0] == "| Item | Qty | Price |"  # copied as the answer wrote it
    assert table.markdown.splitlines()[-1] == "| Pipe \\| cleaner | 3 |"


def test_repeated_and_blank_headers_still_name_distinct_columns():
    (part,) = split_answer("| | Price | Price | |\n|---|---|---|---|\n| a | 1 | 2 | x |")
    assert part.table is not None
    names = part.table.column_names()
    assert len(set(names)) == 4 and names[1:3] == ["Price", "Price (2)"]
    assert names[0].strip() == "" and names[3].strip() == ""  # blank headers stay blank


def test_json_in_a_fence_is_one_value_shown_once():
    answer = 'Found by pattern.\n\n```json\n{"total": "RM 9.00", "магазин": "Пятёрочка"}\n```\n\nCheck them.'
    parts = split_answer(answer)
    assert [p.kind for p in parts] == [PartKind.TEXT, PartKind.JSON, PartKind.TEXT]
    assert parts[1].value == {"total": "RM 9.00", "магазин": "Пятёрочка"}
    pretty = parts[1].pretty_json()
    assert "```" not in pretty and "Пятёрочка" in pretty and pretty.startswith("{\n  ")


def test_a_bare_json_answer_is_json():
    (part,) = split_answer('  {"date": "25/12/2018", "items": [1, 2]}\n')
    assert part.kind is PartKind.JSON and part.value == {"date": "25/12/2018", "items": [1, 2]}
    assert has_structure('{"a": 1}') and not has_structure("{not json")


def test_a_json_fence_that_does_not_parse_is_code_with_the_reason():
    (part,) = split_answer('```json\n{"total": 9.00,}\n```')
    assert part.kind is PartKind.CODE and part.text == '{"total": 9.00,}'
    assert part.problem is not None and part.problem.startswith("not valid JSON")


def test_other_fences_stay_verbatim_and_plain_text_is_text():
    parts = split_answer("Text:\n\n```text\nTOTAL  $9.00\n*not emphasis*\n```")
    assert [p.kind for p in parts] == [PartKind.TEXT, PartKind.CODE]
    assert parts[1].text == "TOTAL  $9.00\n*not emphasis*" and parts[1].language == "text"
    assert split_answer("Just a sentence with | one pipe.")[0].kind is PartKind.TEXT
    assert split_answer("") == [] and not has_structure("no table here")


def test_a_table_inside_a_list_is_left_to_the_markdown():
    # Only top-level tables are cut out; anything nested renders as Markdown with its container.
    assert [p.kind for p in split_answer("- item\n\n  | a | b |\n  |---|---|\n  | 1 | 2 |")] == [PartKind.TEXT]
