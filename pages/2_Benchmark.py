"""Benchmark page: run `chatvlmllm bench` on a folder, with progress, and show the results.

A thin view over chatvlmllm.eval.benchmark: it runs run_benchmark, saves with write_results, and
draws summary_rows as tables and charts.
"""

from __future__ import annotations

import json
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
from chatvlmllm.models.catalog import load_catalog
from chatvlmllm.models.tasks import is_offline_engine

st.set_page_config(page_title="Benchmark · chatvlmllm", page_icon="📊", layout="wide")
st.title("Benchmark")
st.markdown(
    "Runs models on a folder of documents whose correct text is known, and compares what each model read "
    "with it:\n"
    "- **Character errors (CER)**: the share of characters wrong, missing or extra. 0 is perfect; lower is better.\n"
    "- **Words found (F1)**: how many of the right words were read, in any order. 1 is perfect; higher is better.\n"
    "- **Answers** (models that can chat): questions about receipts (the total, the date), *exactly right*, "
    "and *closeness* (ANLS, 0 to 1) for nearly right ones. Higher is better.\n"
    "- **Speed**: seconds per page, the median and the slowest 5%."
)
st.caption("The folder needs manifest.jsonl, truth/ and optionally qa.jsonl, like ../shared/eval.")

SHARED_EVAL = Path("../shared/eval")


def run_form() -> None:
    try:
        catalog = load_catalog()
    except UserError as exc:
        st.error(str(exc))
        return
    with st.form("bench"):
        folder = st.text_input(
            "Evaluation folder", value=str(SHARED_EVAL) if SHARED_EVAL.is_dir() else "", key="bench_folder"
        )
        # The offline engines by default (they need no download); the models take turns on every item.
        offline = [key for key in sorted(catalog) if is_offline_engine(catalog[key].family)]
        models = st.multiselect("Models", sorted(catalog), default=offline, key="bench_models")
        left, right = st.columns(2)
        limit = left.number_input("Items (0 = all)", min_value=0, value=0, step=1, key="bench_items")
        concurrency = right.number_input("Requests in flight", min_value=1, value=1, step=1, key="bench_concurrency")
        submitted = st.form_submit_button("Run benchmark", type="primary", key="bench_run")
    if not submitted:
        return
    if not folder.strip():
        st.error("Enter the path of an evaluation folder.")
        return
    bar = st.progress(0.0, text="Loading the first model…")

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
    bar.progress(1.0, text="Done")
    st.session_state["bench_results"] = results
    st.success(f"Saved {json_path} and {csv_path}")


def current_results() -> dict | None:
    upload = st.file_uploader("…or open a results JSON", type=["json"])
    if upload is not None:
        try:
            data = json.loads(upload.getvalue().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            st.error(f"{upload.name} is not a results file: {exc}")
            return None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            st.error(f'{upload.name} is not a benchmark results file (no "models" object).')
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
    gpu = f" ({machine['gpu_name']})" if machine.get("gpu_name") else ""
    st.caption(
        f"Run {results.get('created', '?')} on {machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPU "
        f"cores, device {machine.get('device', '?')}{gpu} · {results.get('n_items', '?')} items · "
        f"concurrency {results.get('concurrency', 1)}"
    )
    rows = pd.DataFrame(summary_rows(results))
    if rows.empty:
        st.info("No models in these results.")
        return
    for model, figures in results["models"].items():
        if figures.get("error"):
            st.error(f"{model}: {figures['error']}")
    overall = rows[rows["kind"] == "all"].drop(columns=["kind"]).set_index("model")
    st.subheader("Overall")
    st.dataframe(overall.dropna(axis="columns", how="all").round(3).rename(columns=SUMMARY_LABELS), width="stretch")

    per_kind = rows[rows["kind"] != "all"]
    if not per_kind.empty:
        st.subheader("By kind")
        table = per_kind.pivot(index="kind", columns="model", values=["cer", "word_f1"]).round(3)
        st.dataframe(table.rename(columns=SUMMARY_LABELS, level=0), width="stretch")
        cer_col, f1_col = st.columns(2)
        with cer_col:
            bars(per_kind, "kind", "cer", "model", "Character errors by kind (lower is better)", ".0%")
        with f1_col:
            bars(per_kind, "kind", "word_f1", "model", "Words found by kind (higher is better)", ".0%")
    latency = pd.DataFrame(latency_rows(results))
    if not latency.empty:
        bars(latency, "model", "seconds", "measure", "Seconds per page (lower is better)", ".1f")


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
    st.info("No results yet: run a benchmark above, or `chatvlmllm bench ../shared/eval` in a terminal.")
else:
    show(results)
