"""The page's layout beyond Streamlit's widgets: the document stays in view, nothing jumps, the input has focus.

Side by side (wider than Streamlit's 640 px column breakpoint) the page itself does not grow with the chat:
the conversation scrolls in its own pane, sized to the window, with the chat input under it; the document
column stays in place and scrolls on its own when it is taller than the window. The chat input is placed
in the chat column, not at the page's bottom: Streamlit then drops its "stick to the bottom" page
container, which scrolled the page to its end at every change (after an upload the "Extract text" button
went off screen; on a phone the first load scrolled under the header).

Stacked (a phone): one page that scrolls, the preview capped to part of the screen so the chat is near,
the input held at the bottom of the screen while the chat is in view.

Where the view lands (keep_in_view's script): after a question, and when another chat opens, the pane
shows the last question at its top with its answer under it: a chat is opened to go on with it, and an
answer (a transcription above all) is read from its start, next to the page. Nothing else moves the view.
"""

from __future__ import annotations

import streamlit as st

DOCUMENT_COLUMN = "document_column"  # container keys: CSS classes st-key-<key>
CHAT_PANE = "chat_pane"
# Streamlit wants a height to make the pane scroll; the CSS below sizes it to the window instead.
CHAT_PANE_HEIGHT_PX = 560

# - side by side: the chat pane fills the window below its top (measured by the script: the banners above
#   vary) less the input under it; the document column sticks under the header;
# - stacked: the pane is the page (no scroll inside a scroll), the preview at most 45% of the screen (the
#   quick prompts stay near it), the input held at the screen's bottom;
# - Streamlit's own Stop (status widget) is hidden: it would stop the page's run but not the answer (that
#   runs on a worker thread); the app's Stop ends the answer itself;
# - a page with its line boxes sits lower than the "Highlight a line" picker above it: the image's
#   full-screen button appears above the image's top right corner and covered the picker's arrow.
CSS = """
<style>
[data-testid="stMainBlockContainer"] { padding-bottom: 1rem !important; }
[data-testid="stLayoutWrapper"]:has(> .st-key-chat_pane) { flex: 0 0 auto !important; height: auto !important; }
@media (min-width: 640.02px) {
  [data-testid="stColumn"]:has(.st-key-document_column) {
    position: sticky; top: 4rem; align-self: flex-start; overflow-y: auto;
    max-height: calc(100dvh - var(--chatvlmllm-columns-top, 10rem) - 1rem);
  }
  .st-key-chat_pane {
    flex: 0 0 auto !important;
    height: max(16rem, calc(100dvh - var(--chatvlmllm-pane-top, 15rem) - var(--chatvlmllm-input-height, 5rem)
      - 2.5rem)) !important;
  }
}
@media (max-width: 640px) {
  .st-key-chat_pane { flex: 0 0 auto !important; height: auto !important; overflow: visible !important; }
  .st-key-document_preview { max-height: 45dvh; overflow-y: auto; }
  [data-testid="stElementContainer"]:has([data-testid="stChatInput"]) {
    position: sticky; bottom: 0; z-index: 3; padding: 0.5rem 0; background: var(--chatvlmllm-background, #fff);
  }
}
[data-testid="stStatusWidget"] button { display: none; }
[class*="st-key-line_boxes_"] { padding-top: 2.75rem; }
</style>
"""

# Runs once per page load (not once per rerun) and looks at the page a few times a second:
# - sizes the chat pane (its top, for the CSS above);
# - lands the view on the last question when a question is asked or another chat opens (the count or
#   the chat must hold for one more look: a rerun may still be drawing);
# - focuses the chat input when the page loads, when the input is enabled again (an answer is done) and
#   when a document or another chat opens, unless the user is typing or choosing somewhere else (a text
#   box, a dropdown, a dialog); never on a touch screen, where it would open the keyboard over the page.
SCRIPT = """
<script>
(() => {
  if (window.chatvlmllmView) return;
  window.chatvlmllmView = true;
  const root = document.documentElement;
  const INPUT = '[data-testid="stChatInputTextArea"]';
  const INPUT_BOX = '[data-testid="stChatInput"]';
  const USER = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])';
  const BUSY = 'input:not([type="file"]):not([type="checkbox"]):not([type="radio"]), textarea, select, '
    + '[contenteditable="true"], [role="combobox"], [role="listbox"], [role="dialog"] *';
  const touch = window.matchMedia('(pointer: coarse)').matches;
  let landed = null, waiting = null, wasReady = false, shown = null;
  const pane = () => document.querySelector('.st-key-chat_pane');
  const chat = () => new URLSearchParams(location.search).get('chat') || '';
  const scroller = (el) => {
    for (let node = el && el.parentElement; node; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowY;
      if ((overflow === 'auto' || overflow === 'scroll') && node.scrollHeight > node.clientHeight) return node;
    }
    return document.scrollingElement;
  };
  const size = (box) => {
    const scrolled = scroller(box).scrollTop;
    const input = document.querySelector(INPUT_BOX);
    if (input) root.style.setProperty('--chatvlmllm-input-height', input.getBoundingClientRect().height + 'px');
    const columns = box.closest('[data-testid="stHorizontalBlock"]');
    root.style.setProperty('--chatvlmllm-pane-top', (box.getBoundingClientRect().top + scrolled) + 'px');
    if (columns) {
      root.style.setProperty('--chatvlmllm-columns-top', (columns.getBoundingClientRect().top + scrolled) + 'px');
    }
    const app = document.querySelector('[data-testid="stApp"]');
    if (app) root.style.setProperty('--chatvlmllm-background', getComputedStyle(app).backgroundColor);
  };
  // Lands the last question at the top of the view, and keeps it there while its answer grows (the view
  // cannot scroll past its end before there is text under the question), until the user scrolls.
  let target = 0;
  const stopFollowing = () => { target = 0; };
  ['wheel', 'touchmove', 'keydown', 'mousedown'].forEach((kind) => window.addEventListener(kind, stopFollowing, true));
  const land = (box) => {
    const questions = box.querySelectorAll(USER);
    const view = chat() + ':' + questions.length;
    if (view !== landed) {
      if (view !== waiting) { waiting = view; return; }
      landed = view; waiting = null; target = questions.length ? Date.now() + 120000 : 0;
    }
    const last = questions[questions.length - 1];
    if (!last || Date.now() > target) return;
    const inside = getComputedStyle(box).overflowY !== 'visible';  // side by side: the pane scrolls
    const moved = inside ? box : scroller(box);
    const top = inside ? box.getBoundingClientRect().top : 64;  // stacked: below the page's header
    const offset = last.getBoundingClientRect().top - top - 8;
    if (Math.abs(offset) > 2) moved.scrollTop += offset;
  };
  // A document just opened in a chat with no question yet: the quick prompts and the hint under them come
  // into view when they are below it (a phone: under the preview), moving the view no further than to
  // put the preview's top under the page's header. Never at the first load with no document.
  let revealed = null, revealing = null;
  const reveal = (box) => {
    const image = document.querySelector('.st-key-document_preview img');
    const preview = document.querySelector('.st-key-document_preview');
    const view = image ? chat() + '|' + image.src : null;
    if (!view || view === revealed || !image.complete) return;
    if (view !== revealing) { revealing = view; return; }  // hold for one more look: a rerun may be drawing
    revealed = view;
    const prompts = document.querySelector('.st-key-quick_prompts');
    if (!prompts || box.querySelector(USER)) return;  // a chat with questions lands on its last one
    const hint = box.firstElementChild;
    const bottom = Math.max(prompts.getBoundingClientRect().bottom, hint ? hint.getBoundingClientRect().bottom : 0);
    const input = document.querySelector(INPUT_BOX);
    const stacked = getComputedStyle(box).overflowY === 'visible';  // the input is held over the page's bottom
    const covered = stacked && input ? input.getBoundingClientRect().height + 24 : 0;
    const below = bottom - (window.innerHeight - covered - 8);
    const room = preview.getBoundingClientRect().top - 64;
    if (below > 0 && room > 0) scroller(box).scrollTop += Math.min(below, room);
  };
  let lastInput = null, pendingUntil = 0;
  const focus = () => {
    const input = document.querySelector(INPUT);
    const ready = Boolean(input && !input.disabled);
    const caption = document.querySelector('.st-key-document_preview [data-testid="stImageCaption"]');
    const view = chat() + '|' + (caption ? caption.textContent : '');
    const active = document.activeElement;
    const elsewhere = active && active !== document.body && active !== input && active.matches(BUSY);
    // A new input element (Streamlit drew it again) had the focus of the one it replaced, or none.
    const redrawn = input !== lastInput && (!active || active === document.body);
    // Due until the focus has really landed (for a while): on a busy machine the input may not take it
    // yet at the first try (Streamlit still drawing it), and no later change would say to try again.
    if (!wasReady || view !== shown || redrawn) pendingUntil = Date.now() + 10000;
    if (elsewhere || touch) pendingUntil = 0;
    if (ready && Date.now() < pendingUntil) {
      input.focus({ preventScroll: true });
      if (document.activeElement === input) pendingUntil = 0;
    }
    wasReady = ready;
    shown = view;
    lastInput = input;
  };
  // A short answer may disable and enable the input again between two looks: the disabled input lost the
  // focus, and the next look would see it ready as before. Any change of its `disabled` means it was
  // disabled a moment ago, so it is seen when it happens.
  new MutationObserver((changes) => {
    if (changes.some((change) => change.target.matches(INPUT))) wasReady = false;
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['disabled'] });
  const look = () => {
    const box = pane();
    if (box) { size(box); land(box); reveal(box); }
    focus();
  };
  look();
  setInterval(look, 300);
})();
</script>
"""


def apply() -> None:
    st.html(CSS)


def keep_in_view() -> None:
    # Our own constant script (no user text in it): st.html runs it in the page itself. In the sidebar, so
    # that its element takes no room in the page's layout.
    with st.sidebar:
        st.html(SCRIPT, unsafe_allow_javascript=True)
