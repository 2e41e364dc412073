"""Benchmark page: run `chatvlmllm bench` on a folder, with progress, and show the results.

A thin view over chatvlmllm.eval.benchmark: it runs run_benchmark, saves with write_results, and
draws summary_rows as tables and charts.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.eval.benchmark import (
    SUMMARY_LABELS,
    default_results_path,
    latency_rows,
    read_results,
    run_benchmark,
    summary_rows,
    write_results,
)
from chatvlmllm.i18n import _, format_datetime, format_number, ngettext
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.tasks import is_offline_engine

st.set_page_config(page_title=_("Benchmark") + " · chatvlmllm", page_icon="📊", layout="wide")
st.title(_("Benchmark"))
st.markdown(
    _(
        "Runs models on a folder of documents whose correct text is known, and compares what each model read "
        "with it:\n"
        "- **Character errors (CER)**: the share of characters wrong, missing or extra. 0 is perfect; lower is "
        "better.\n"
        "- **Words found (F1)**: how many of the right words were read, in any order. 1 is perfect; higher is "
        "better.\n"
        "- **Answers** (models that can chat): questions about receipts (the total, the date), *exactly right*, "
        "and *closeness* (ANLS, 0 to 1) for nearly right ones. Higher is better.\n"
        "- **Speed**: seconds per page, the median and the slowest 5%."
    )
)
st.caption(
    _("The folder needs {manifest}, {truth} and optionally {qa}, like {example}.").format(
        manifest="`manifest.jsonl`", truth="`truth/`", qa="`qa.jsonl`", example="`../shared/eval`"
    )
)

SHARED_EVAL = Path("../shared/eval")


def run_form() -> None:
    try:
        catalog = load_catalog()
    except UserError as exc:
        st.error(str(exc))
        return
    with st.form("bench"):
        folder = st.text_input(
            _("Evaluation folder"), value=str(SHARED_EVAL) if SHARED_EVAL.is_dir() else "", key="bench_folder"
        )
        # The offline engines by default (they need no download); the models take turns on every item.
        offline = [key for key in sorted(catalog) if is_offline_engine(catalog[key].family)]
        models = st.multiselect(_("Models"), sorted(catalog), default=offline, key="bench_models")
        left, right = st.columns(2)
        limit = left.number_input(_("Items (0 = all)"), min_value=0, value=0, step=1, key="bench_items")
        concurrency = right.number_input(_("Requests in flight"), min_value=1, value=1, step=1, key="bench_concurrency")
        submitted = st.form_submit_button(_("Run benchmark"), type="primary", key="bench_run")
    if not submitted:
        return
    if not folder.strip():
        st.error(_("Enter the path of an evaluation folder."))
        return
    bar = st.progress(0.0, text=_("Loading the first model…"))

    def progress(done: int, total: int, label: str) -> None:
        bar.progress(done / max(total, 1), text=f"{label} — {done}/{total}")

    try:
        results = run_benchmark(
            folder.strip(), models, limit=int(limit) or None, concurrency=int(concurrency), progress=progress
        )
        json_path, csv_path = write_results(results, default_results_path())
    except UserError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.progress(1.0, text=_("Done"))
    st.session_state["bench_results"] = results
    st.success(_("Saved {json} and {csv}").format(json=json_path, csv=csv_path))


def current_results() -> dict | None:
    upload = st.file_uploader(_("…or open a results JSON"), type=["json"], key="bench_results_upload")
    if upload is not None:
        try:
            data = json.loads(upload.getvalue().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            st.error(_("{name} is not a results file: {error}").format(name=upload.name, error=exc))
            return None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            st.error(_('{path} is not a benchmark results file (no "models" object)').format(path=upload.name))
            return None
        return data
    if "bench_results" in st.session_state:
        return st.session_state["bench_results"]
    saved = default_results_path()
    if saved.is_file():
        try:
            return read_results(saved)
        except UserError as exc:
            st.warning(str(exc))
    return None


def show(results: dict) -> None:
    machine = results.get("machine", {})
    st.caption(run_caption(results, machine))
    rows = pd.DataFrame(summary_rows(results))
    if rows.empty:
        st.info(_("No models in these results."))
        return
    for model, figures in results["models"].items():
        if figures.get("error"):
            st.error(f"{model}: {figures['error']}")
    overall = rows[rows["kind"] == "all"].drop(columns=["kind"]).set_index("model")
    st.subheader(_("Overall"))
    st.dataframe(overall.dropna(axis="columns", how="all").round(3).rename(columns=labels()), width="stretch")

    per_kind = rows[rows["kind"] != "all"]
    if not per_kind.empty:
        st.subheader(_("By kind"))
        table = per_kind.pivot(index="kind", columns="model", values=["cer", "word_f1"]).round(3)
        st.dataframe(table.rename(columns=labels(), level=0), width="stretch")
        cer_col, f1_col = st.columns(2)
        with cer_col:
            bars(per_kind, "kind", "cer", "model", _("Character errors by kind (lower is better)"), ".0%")
        with f1_col:
            bars(per_kind, "kind", "word_f1", "model", _("Words found by kind (higher is better)"), ".0%")
    latency = pd.DataFrame(latency_rows(results))
    if not latency.empty:
        latency["measure"] = latency["measure"].map(_)  # the legend in the interface language
        bars(latency, "model", "seconds", "measure", _("Seconds per page (lower is better)"), ".1f")


def labels() -> dict[str, str]:
    """The column headers in words, in the interface language."""
    return {column: _(label) for column, label in SUMMARY_LABELS.items()}


def run_caption(results: dict, machine: dict) -> str:
    """When and where the results were measured: "Run 4 Dec, 15:20 on Linux, 2 CPU cores, device cpu · …"."""
    created = results.get("created")
    try:
        when = format_datetime(datetime.fromisoformat(created)) if created else "?"
    except (TypeError, ValueError):
        when = str(created)
    device = machine.get("device", "?") + (f" ({machine['gpu_name']})" if machine.get("gpu_name") else "")
    cores = machine.get("cpu_count")
    items = results.get("n_items")
    return " · ".join(
        [
            _("Run {when} on {platform}").format(when=when, platform=machine.get("platform", "?")),
            ngettext("{count} CPU core", "{count} CPU cores", cores).format(count=format_number(cores))
            if isinstance(cores, int)
            else _("CPU cores unknown"),
            _("device {device}").format(device=device),
            ngettext("{count} item", "{count} items", items).format(count=format_number(items))
            if isinstance(items, int)
            else _("items unknown"),
            _("concurrency {count}").format(count=results.get("concurrency", 1)),
        ]
    )


def bars(data: pd.DataFrame, x: str, y: str, group: str, title: str, number_format: str) -> None:
    """Grouped bars on an axis that starts at 0, with a few readable ticks (never below 0, never cut off)."""
    top = float(data[y].max()) if data[y].notna().any() else 0.0
    scale = alt.Scale(domain=[0, top if top > 0 else 1], nice=True, zero=True)
    chart = (
        alt.Chart(data.dropna(subset=[y]), title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset(f"{group}:N"),
            y=alt.Y(f"{y}:Q", title=None, scale=scale, axis=alt.Axis(format=number_format, tickCount=5)),
            color=alt.Color(f"{group}:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[x, group, alt.Tooltip(f"{y}:Q", format=number_format)],
        )
        .properties(height=280)
    )
    st.altair_chart(chart, width="stretch")


run_form()
st.divider()
results = current_results()
if results is None:
    st.info(_("No results yet: run a benchmark above, or `chatvlmllm bench ../shared/eval` in a terminal."))
else:
    show(results)
