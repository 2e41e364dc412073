"""System: the hardware profile, the planner's table for every model (as `chatvlmllm doctor`),
and the engines loaded now with their memory."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.models.doctor import doctor_report
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

HARDWARE_NAMES = {
    "device": "Runs on",
    "gpu_name": "GPU",
    "compute_capability": "Compute capability",
    "vram_total_gb": "GPU memory (GB)",
    "vram_free_gb": "GPU memory free (GB)",
    "bf16_supported": "bfloat16 supported",
    "torch_version": "PyTorch",
    "cuda_version": "CUDA",
    "torchvision_available": "torchvision installed",
    "flash_attn_version": "flash-attn version",
    "flash_attn_usable": "flash-attn usable",
    "flash_attn_reason": "flash-attn",
    "bitsandbytes_available": "bitsandbytes installed",
    "cpu_count": "CPU cores",
    "ram_total_gb": "Memory (GB)",
    "simulated": "Hypothetical",
}
MODEL_COLUMNS = {
    "key": "Model",
    "status": "Status",
    "family": "Family",
    "device": "Runs on",
    "attention": "Attention",
    "dtype": "Precision",
    "estimated_gb": "Memory (GB)",
    "reasons": "Why",
}


def _plain(value: object) -> str:
    """A value as a person reads it: nothing for None or "n/a", yes/no for booleans."""
    if value is None or value == "n/a":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


st.subheader("Hardware" + (" (hypothetical)" if report["hardware"]["simulated"] else ""))
hardware = pd.DataFrame(
    [
        {"Property": HARDWARE_NAMES.get(key, key.replace("_", " ").capitalize()), "Value": _plain(value)}
        if not isinstance(value, list | tuple)
        else {"Property": HARDWARE_NAMES.get(key, key), "Value": ".".join(map(str, value))}
        for key, value in report["hardware"].items()
    ]
)
st.dataframe(hardware, hide_index=True, width="stretch")

st.subheader("Models on this machine")
st.caption("The planner's view, the same as `chatvlmllm doctor`.")
rows = [
    {
        label: _plain("; ".join(model[key]) if key == "reasons" else model.get(key))
        for key, label in MODEL_COLUMNS.items()
    }
    for model in report["models"]
]
st.table(pd.DataFrame(rows).set_index("Model"))  # a table wraps the reasons instead of cutting them

st.subheader("Loaded engines")
loaded = cache.loaded()
if not loaded:
    st.info("No model is loaded. A model loads on the first question that needs it and stays for the next ones.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Model": entry.model,
                    "Runs on": entry.plan.device,
                    "Precision": entry.plan.dtype,
                    "Attention": entry.plan.attention,
                    "Quantization": entry.plan.quantization or "",
                    "Load time (s)": round(entry.load_s, 2),
                    "Memory (MB)": entry.memory_mb,
                    "Loads so far": cache.load_counts[entry.model],
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
