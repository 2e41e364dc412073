"""System: the hardware profile, the planner's table for every model (as `chatvlmllm doctor`),
and the engines loaded now with their memory."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.cli.doctor_cmd import doctor_report
from chatvlmllm.errors import UserError
from ui import state

st.set_page_config(page_title="System · chatvlmllm", page_icon="🖥️", layout="wide")
st.title("System")
state.show_flashes()

state.hardware_profile()  # probed once per process, shared with the chat page
cache = state.engine_cache()

gpu = st.text_input(
    "Plan for a hypothetical GPU (compute capability:VRAM GB)",
    placeholder="e.g. 12.0:16 for an RTX 5070 Ti; empty = this machine",
    key="system_gpu",
).strip()
assume_fa = st.checkbox("Assume flash-attn works on it", key="system_assume_fa", disabled=not gpu)
try:
    report = doctor_report(gpu or None, assume_flash_attn=assume_fa)
except UserError as exc:  # a malformed GPU spec, or a broken models file
    st.error(str(exc))
    try:
        report = doctor_report()
    except UserError:
        st.stop()

st.subheader("Hardware" + (" (hypothetical)" if report["hardware"]["simulated"] else ""))
hardware = pd.DataFrame(
    [{"property": key, "value": "" if value is None else str(value)} for key, value in report["hardware"].items()]
)
st.dataframe(hardware, hide_index=True, width="stretch")

st.subheader("Planner (same as `chatvlmllm doctor`)")
models = pd.DataFrame(report["models"])
models["reasons"] = models["reasons"].map("; ".join)
st.dataframe(models, hide_index=True, width="stretch")

st.subheader("Loaded engines")
loaded = cache.loaded()
if not loaded:
    st.info("No model is loaded. A model loads on the first question that needs it and stays for the next ones.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": entry.model,
                    "device": entry.plan.device,
                    "dtype": entry.plan.dtype,
                    "attention": entry.plan.attention,
                    "quantization": entry.plan.quantization or "",
                    "load s": round(entry.load_s, 2),
                    "memory MB": entry.memory_mb,
                    "loads so far": cache.load_counts[entry.model],
                }
                for entry in loaded
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if st.button("Unload all", icon=":material/memory:", key="system_unload"):
        state.flash("success", f"Unloaded {cache.unload()} engine(s); their memory is free.")
        st.rerun()
