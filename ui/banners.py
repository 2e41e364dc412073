"""Banners that say why a model cannot answer here and what to do about it."""

from __future__ import annotations

import streamlit as st

from chatvlmllm.catalog import models_file
from chatvlmllm.selection import OFFLINE_DEFAULT, ModelStatus

USABLE = ("ready", "needs download")


def what_to_do() -> str:
    return (
        "**To chat with a vision-language model:**\n"
        "- with internet: download a model on the **Models** page (or `chatvlmllm pull KEY`), or run "
        "`hf download Qwen/Qwen2-VL-2B-Instruct`;\n"
        "- offline: copy a Hugging Face cache (`~/.cache/huggingface/hub`) from a machine that has the weights, or "
        f"point a catalog entry at a local folder in `{models_file()}`:\n"
        '  `[models.my_vlm]` `family = "qwen2_vl"` `path = "/models/Qwen2-VL-2B-Instruct"`;\n'
        "- the **System** page lists every model with the planner's reasons."
    )


def availability(
    statuses: dict[str, ModelStatus], default_key: str, why: str, problem: str | None, selected: str
) -> None:
    if problem:
        st.error(problem)
    usable = [key for key, status in statuses.items() if status.status in USABLE]
    if not usable:
        reasons = "\n".join(f"- `{key}`: {status.status} — {status.reason}" for key, status in statuses.items())
        st.error(f"**No model can run on this machine right now.**\n\n{reasons}\n\n{what_to_do()}")
        return
    if default_key == OFFLINE_DEFAULT and selected == OFFLINE_DEFAULT:
        blocked = {key: status for key, status in statuses.items() if status.status not in USABLE}
        summary = ", ".join(f"`{key}` {status.status}" for key, status in blocked.items())
        st.info(
            f"**No vision-language model can run here right now**, so answers come from the offline OCR engine "
            f"`{OFFLINE_DEFAULT}`: it transcribes the page's text but does not understand questions.\n\n"
            f"Why: {summary or why}.\n\n{what_to_do()}"
        )
        with st.expander("Why, model by model"):
            for key, status in blocked.items():
                st.markdown(f"- `{key}` — **{status.status}**: {status.reason}")
        return
    status = statuses.get(selected)
    if status is None or status.status == "ready":
        return
    if status.status == "needs download":
        size = f" (about {status.plan.estimated_gb} GB in memory)" if status.plan.estimated_gb else ""
        st.info(f"`{selected}` is not downloaded yet{size}: download it on the Models page first. {status.reason}")
    else:
        st.warning(
            f"`{selected}` cannot answer here: {status.status} — {status.reason}. "
            "Pick a model marked ✅ ready, or keep *Fall back to other models* on."
        )
