"""System: the hardware profile, the planner's table for every model (as `chatvlmllm doctor`),
and the engines loaded now with their memory."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatvlmllm.errors import UserError
from chatvlmllm.i18n import _, format_number, ngettext
from chatvlmllm.models.doctor import doctor_report, hardware_facts, memory_words, model_facts
from ui import state

st.set_page_config(page_title=_("System") + " · chatvlmllm", page_icon="🖥️", layout="wide")
st.title(_("System"))
state.show_flashes()

state.hardware_profile()  # probed once per process, shared with the chat page
cache = state.engine_cache()

gpu = st.text_input(
    _("Plan for a hypothetical GPU (compute capability:VRAM GB)"),
    placeholder=_("e.g. {example} for an {gpu}; empty = this machine").format(example="12.0:16", gpu="RTX 5070 Ti"),
    key="system_gpu",
).strip()
assume_fa = st.checkbox(_("Assume flash-attn works on it"), key="system_assume_fa", disabled=not gpu)
try:
    report = doctor_report(gpu or None, assume_flash_attn=assume_fa)
except UserError as exc:  # a malformed GPU spec, or a broken models file
    st.error(str(exc))
    try:
        report = doctor_report()
    except UserError:
        st.stop()

st.subheader(_("Hardware (hypothetical)") if report["hardware"]["simulated"] else _("Hardware"))
hardware = pd.DataFrame(hardware_facts(report["hardware"]), columns=[_("Property"), _("Value")])
st.dataframe(hardware, hide_index=True, width="stretch")

st.subheader(_("Models on this machine"))
st.caption(_("The planner's view, the same as `chatvlmllm doctor`."))
rows = [model_facts(model) for model in report["models"]]
st.table(pd.DataFrame(rows).set_index(_("Model")))  # a table wraps the reasons instead of cutting them

st.subheader(_("Loaded engines"))
loaded = cache.loaded()
if not loaded:
    st.info(_("No model is loaded. A model loads on the first question that needs it and stays for the next ones."))
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    _("Model"): entry.model,
                    _("Runs on"): entry.plan.device,
                    _("Precision"): entry.plan.dtype,
                    _("Attention"): entry.plan.attention,
                    _("Quantization"): entry.plan.quantization or _("none"),
                    _("Load time (s)"): round(entry.load_s, 2),
                    _("Memory (MB)"): memory_words(entry.memory_mb),
                    _("Loads so far"): cache.load_counts[entry.model],
                }
                for entry in loaded
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if st.button(_("Unload all"), icon=":material/memory:", key="system_unload"):
        count = cache.unload()
        state.flash(
            "success",
            ngettext(
                "Unloaded {count} engine; its memory is free.", "Unloaded {count} engines; their memory is free.", count
            ).format(count=format_number(count)),
        )
        st.rerun()
