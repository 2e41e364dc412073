"""Streamlit's own widget texts ("Upload", "50MB per file", "Drag and drop a file here") in the interface
language.

Streamlit 1.67 writes these in English in its JavaScript bundle and offers no option, label or locale
for them (`st.file_uploader` takes our label and help, not its button's text). So the page carries one
small script (`apply()`, once per run) that rewrites exactly those text nodes: each `StreamlitText`
names where Streamlit shows it (a CSS selector), the English it shows (as in its bundle: a test reads
the installed bundle and fails when an upgrade changes a text, so a changed text is never silently left
in English), and the catalogue's translation. A MutationObserver applies the table again whenever React
redraws a widget. docs/i18n.md tells how to add a text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st

from chatvlmllm.i18n import _, format_size
from chatvlmllm.settings import settings

UPLOADER = '[data-testid="stFileUploaderDropzone"]'
UPLOADER_INSTRUCTIONS = '[data-testid="stFileUploaderDropzoneInstructions"]'


@dataclass(frozen=True)
class StreamlitText:
    selector: str  # where Streamlit shows the text
    english: str  # a regular expression for the whole text node as Streamlit shows it
    bundled: str  # the literal as it stands in Streamlit's JavaScript bundle (checked by a test)
    text: str  # what the user reads instead, in the interface language


def texts() -> list[StreamlitText]:
    """The table, translated into the current language (English restores Streamlit's own wording)."""
    per_file = format_size(max(1, int(settings().max_upload_mb)) * 1_000_000)
    return [
        StreamlitText(f"{UPLOADER} button", "Upload", "`Upload`", _("Upload")),
        StreamlitText(
            UPLOADER_INSTRUCTIONS, r"\S+ per file", "} per file`", _("{size} per file").format(size=per_file)
        ),
        StreamlitText(
            UPLOADER, "Drag and drop a file here", "`Drag and drop a file here`", _("Drag and drop a file here")
        ),
    ]


# The rules are replaced on every run (the language may have changed); the observer is set up once per
# page. A text node we rewrote keeps its English original, so switching back to English restores it.
SCRIPT = """
<script>
(() => {
  window.chatvlmllmTexts = RULES;
  const translate = () => {
    for (const rule of window.chatvlmllmTexts) {
      const english = new RegExp("^(?:" + rule.english + ")$");
      for (const element of document.querySelectorAll(rule.selector)) {
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          const shown = node.nodeValue.trim();
          const original = node.chatvlmllmWritten === shown ? node.chatvlmllmOriginal : shown;
          if (!english.test(original) || shown === rule.text) continue;
          node.chatvlmllmOriginal = original;
          node.chatvlmllmWritten = rule.text;
          node.nodeValue = rule.text;
        }
      }
    }
  };
  translate();
  if (window.chatvlmllmTextsObserver) return;
  let pending = false;
  window.chatvlmllmTextsObserver = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; translate(); });
  });
  window.chatvlmllmTextsObserver.observe(document.body, { childList: true, subtree: true, characterData: true });
})();
</script>
"""


def script() -> str:
    rules = [{"selector": t.selector, "english": t.english, "text": t.text} for t in texts()]
    # JSON inside a <script>: "</" would end the script early, so it is escaped.
    return SCRIPT.replace("RULES", json.dumps(rules, ensure_ascii=False).replace("</", "<\\/"))


def apply() -> None:
    """Put the script on the page (our own constant script; its data are catalogue strings)."""
    with st.container(key="streamlit_texts"):  # hidden by the style below: the script takes no room
        st.html(script(), unsafe_allow_javascript=True)
    st.html("<style>.st-key-streamlit_texts { display: none; }</style>")
