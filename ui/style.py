"""Small page-wide touches: a preview that stays in view, one Stop button, the chat input focused."""

from __future__ import annotations

import streamlit as st

# - the document preview sticks beside the text while the conversation scrolls;
# - Streamlit's own Stop (status widget) is hidden: it would stop the page's run but not the
#   answer (that runs on a worker thread); the app's Stop ends the answer itself;
# - a page with its line boxes sits lower than the "Highlight a line" picker above it: the image's
#   full-screen button appears above the image's top right corner and covered the picker's arrow.
CSS = """
<style>
.st-key-document_preview { position: sticky; top: 3.5rem; max-height: calc(100vh - 4.5rem); overflow-y: auto; }
[data-testid="stStatusWidget"] button { display: none; }
[class*="st-key-line_boxes_"] { padding-top: 2.75rem; }
</style>
"""

# Focus the chat input when it appears (page load) and when it is enabled again (an answer is done),
# unless the user has put the focus somewhere else: a dropdown being used keeps it.
FOCUS_SCRIPT = """
<script>
(() => {
  if (window.chatvlmllmFocus) return;  // once per page load, not once per rerun
  window.chatvlmllmFocus = true;
  let wasReady = false;
  const watch = () => {
    const box = document.querySelector('[data-testid="stChatInputTextArea"]');
    const ready = Boolean(box && !box.disabled);
    const idle = !document.activeElement || document.activeElement === document.body;
    if (ready && !wasReady && idle) box.focus();
    wasReady = ready;
  };
  watch();
  setInterval(watch, 300);
})();
</script>
"""


def apply() -> None:
    st.html(CSS)


def focus_chat_input() -> None:
    # Our own constant script (no user text in it): st.html runs it in the page itself.
    st.html(FOCUS_SCRIPT, unsafe_allow_javascript=True)
