"""The Streamlit page through AppTest, on tiny real checkpoints configured like a power user would
(user catalog TOML + CHATVLMLLM_DEFAULT_MODEL)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from PIL import Image
from streamlit.testing.v1 import AppTest

from chatvlmllm.chat.conversation import Conversation, Turn
from chatvlmllm.chat.engine_cache import default_cache
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.documents import loading as documents
from chatvlmllm.i18n import format_number
from chatvlmllm.models.tasks import QUICK_PROMPTS
from chatvlmllm.settings import settings
from tests.helpers import SHARED_EVAL, image_bytes, require_tesseract, text_image, write_models_file
from tests.ui.conftest import fresh_process

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")


@pytest.fixture
def app_env(tmp_path, monkeypatch, tiny_qwen2_vl, tiny_qwen3_vl):
    models = {
        "tiny2": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)},
        "tiny3": {"family": "qwen3_vl", "path": str(tiny_qwen3_vl)},
    }
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(tmp_path / "models.toml", models)))
    monkeypatch.setenv("CHATVLMLLM_DEFAULT_MODEL", "tiny2")
    monkeypatch.setenv("CHATVLMLLM_FALLBACK", "tiny2")
    fresh_process()
    yield tmp_path
    fresh_process()


def start(max_new_tokens: int = 8) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception
    at.number_input(key="max_new_tokens").set_value(max_new_tokens).run()
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "application/octet-stream") -> AppTest:
    return at.main.file_uploader[0].set_value((name, data, mime)).run()


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    return at


def chat(at: AppTest):
    return at.session_state["chat_session"]


def page_png() -> bytes:
    return image_bytes(text_image(["INVOICE 2026-11", "TOTAL 12.50"]))


def messages(at: AppTest) -> list[tuple[str, str]]:
    return [(m.name, m.markdown[0].value if m.markdown else "") for m in at.chat_message]


def shown(markdown: str) -> str:
    """What a reader sees of a Markdown string: its text, without the markup (emphasis, code ticks)."""
    seen = []
    for token in MarkdownIt().parse(markdown):
        if token.type == "inline":
            seen.append("".join(_seen_text(child) for child in token.children or []))
        elif token.type in ("fence", "code_block"):
            seen.append(token.content)
    return " ".join(seen)


def _seen_text(token: Token) -> str:
    if token.type in ("text", "code_inline"):
        return token.content
    return " " if token.type in ("softbreak", "hardbreak") else ""  # markup: emphasis, links' brackets


def shown_all(elements) -> str:
    return " ".join(shown(element.value) for element in elements)


def sidebar_text(at: AppTest) -> str:
    return shown_all([*at.sidebar.markdown, *at.sidebar.caption])


def test_the_page_renders_before_any_model_loads(app_env):
    loads = default_cache().loads
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception and not at.error
    assert default_cache().loads == loads
    picker = at.sidebar.selectbox(key="model")
    assert picker.value == "tiny2"
    assert "tiny2 — ready" in picker.format_func("tiny2")
    assert "loads on the first question" in sidebar_text(at)
    assert at.chat_input[0] is not None and not at.chat_message


def test_upload_ask_and_get_an_answer_with_its_caption(app_env):
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    assert at.main.image  # the preview
    ask(at, "What is the total?")

    (user_role, question), (assistant_role, answer) = messages(at)
    assert (user_role, question) == ("user", "What is the total?") and assistant_role == "assistant"
    assert answer.strip()
    assert "invoice.png, page 1" in at.chat_message[0].caption[0].value
    caption = at.chat_message[1].caption[0].value
    assert caption.startswith("tiny2 · ") and caption.endswith(" s · reached the length limit")  # in words
    turn = chat(at).conversation.turns[-1]
    assert turn.metrics["new_tokens"] == 8 and turn.metrics["attention"] == "sdpa"
    assert not at.chat_message[1].markdown[0].proto.allow_html  # model text never as raw HTML

    sidebar = sidebar_text(at)
    assert "Model: tiny2 — loaded in" in sidebar
    assert "Attention: sdpa · dtype: float32 · device: cpu" in sidebar and "No GPU found" in sidebar
    assert "TTFT" not in sidebar and "tokens/s" not in caption  # developer figures only on request
    at.sidebar.toggle(key="show_details").set_value(True).run()
    details = at.chat_message[1].caption[0].value
    assert "time to first word" in details and "tokens/s" in details and "attention sdpa" in details
    assert "Last answer: tiny2" in sidebar_text(at)
    stored = ChatStore().load(chat(at).id)  # saved at once
    assert [t.role for t in stored.conversation.turns] == ["user", "assistant"]


@pytest.mark.slow
def test_a_second_question_sends_both_turns(app_env):
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    ask(at, "What is the total?")
    ask(at, "What is the total?")

    first, second = (t for t in chat(at).conversation.turns if t.role == "assistant")
    assert second.extras["messages_sent"] == 3 and second.extras["images_sent"] == 1
    assert second.metrics["prompt_tokens"] > first.metrics["prompt_tokens"] + first.metrics["new_tokens"]
    assert len(at.chat_message) == 4


@pytest.mark.slow
def test_switching_models(app_env):
    at = start()
    ask(at, "Hello?")
    at.sidebar.selectbox(key="model").set_value("tiny3").run()
    at.sidebar.slider(key="temperature").set_value(0.7).run()
    assert "Model: tiny3 — loads on the first question" in sidebar_text(at)
    ask(at, "Hello again?")

    answers = [t for t in chat(at).conversation.turns if t.role == "assistant"]
    assert [t.model for t in answers] == ["tiny2", "tiny3"]
    assert [t.settings["temperature"] for t in answers] == [0.0, 0.7] and answers[1].metrics["new_tokens"] > 0
    assert at.chat_message[3].caption[0].value.startswith("tiny3 · ") and answers[1].metrics["attention"] == "sdpa"
    assert "Model: tiny3 — loaded in" in sidebar_text(at)
    assert default_cache().load_counts["tiny3"] >= 1


def _png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims width×height: opening it would allocate gigabytes."""
    data = bytearray(image_bytes(Image.new("L", (1, 1))))
    ihdr = bytearray(data[12:29])  # chunk type + 13 bytes of header
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _pdf(encrypt: bool = False, pages: int = 1) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 200)
    if encrypt:
        writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


BAD_UPLOADS = [
    ("truncated.png", page_png()[:300], "damaged or truncated"),
    ("notes.txt", b"just some text, not a document", "not a supported document"),
    ("animation.png", image_bytes(Image.new("RGB", (8, 8)), "GIF"), "is a GIF image"),
    ("empty.png", b"", "is empty (0 bytes)"),
    ("bomb.png", _png_claiming(60_000, 60_000), "decompression bomb"),
    ("big-but-small-file.png", image_bytes(Image.new("1", (10_000, 9_000))), "over the 80 MP limit"),
    ("locked.pdf", _pdf(encrypt=True), "encrypted (password protected)"),
    ("nothing.pdf", _pdf(pages=0), "has no pages"),
    ("huge.png", b"\x89PNG" + b"\0" * 1_200_000, "the limit is 1 MB"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.slow
def test_bad_uploads_show_an_error_and_keep_the_chat(app_env, monkeypatch):
    monkeypatch.setenv("CHATVLMLLM_MAX_UPLOAD_MB", "1")
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    ask(at, "What is the total?")
    before = messages(at)

    for name, data, expected in BAD_UPLOADS:
        upload(at, name, data)
        assert not at.exception, name
        errors = [e.value for e in at.main.error]
        assert len(errors) == 1 and expected in errors[0] and name in errors[0], (name, errors)
        assert messages(at) == before, name
        assert chat(at).document.name == "invoice.png", name  # the good document stays in use

    at.run()  # the error stays while the bad file sits in the uploader
    assert "the limit is 1 MB" in at.main.error[0].value
    ask(at, "And now?")  # the app still answers
    assert len(at.chat_message) == 4


@pytest.mark.slow
def test_a_new_session_over_the_same_data_dir_restores_the_chat(app_env):
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    ask(at, "What is the total?")
    before = messages(at)

    fresh_process()  # a server restart: nothing in memory
    again = AppTest.from_file(APP, default_timeout=90)
    again.query_params["chat"] = chat(at).id  # a reload keeps ?chat= in the URL
    again.run()

    assert messages(again) == before
    assert chat(again).id == chat(at).id and chat(again).document.name == "invoice.png"
    assert again.main.image  # the stored document's preview
    ask(again, "What is the total?")
    assert chat(again).conversation.turns[-1].extras["messages_sent"] == 3  # it continues the same chat


@pytest.mark.slow
def test_ten_turns_load_the_model_exactly_once(app_env):
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    before = default_cache().load_counts["tiny2"]
    for index in range(10):
        ask(at, f"Question {index + 1}?")
    turns = chat(at).conversation.turns
    assert len(turns) == 20 and all(t.model == "tiny2" for t in turns if t.role == "assistant")
    assert default_cache().load_counts["tiny2"] - before == 1
    assert len(ChatStore().load(chat(at).id).conversation.turns) == 20


@pytest.mark.slow
def test_a_fallback_is_shown_and_kept_in_the_transcript(app_env, monkeypatch, eos_qwen2_vl, tiny_qwen2_vl):
    models = {
        "silent": {"family": "qwen2_vl", "path": str(eos_qwen2_vl)},
        "tiny2": {"family": "qwen2_vl", "path": str(tiny_qwen2_vl)},
    }
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(write_models_file(app_env / "fallback.toml", models)))
    monkeypatch.setenv("CHATVLMLLM_DEFAULT_MODEL", "silent")
    at = start()
    ask(at, "Anything?")

    answer = chat(at).conversation.turns[-1]
    assert [(a["model"], a["outcome"]) for a in answer.attempts] == [("silent", "empty"), ("tiny2", "answered")]
    assert answer.model == "tiny2"
    assistant = at.chat_message[1]
    assert assistant.caption[0].value.endswith("silent gave an empty answer; tiny2 answered.")  # in words
    assert assistant.caption[1].value.startswith("tiny2 · ")
    assert assistant.expander[0].label == "Fallback: 2 attempts"
    assert "silent: empty answer — the answer was empty" in shown_all(assistant.expander[0].markdown)
    assert "- silent: empty answer (the answer was empty)" in chat(at).conversation.to_markdown()


def test_a_json_transcript_resumes_and_model_html_stays_text(app_env):
    conversation = Conversation(title="Imported")
    conversation.add(Turn("user", "Show me HTML"))
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)> **bold**"
    conversation.add(Turn("assistant", evil, model="tiny2"))
    at = start()
    at.sidebar.file_uploader[0].set_value(("chat.json", conversation.to_json().encode(), "application/json")).run()

    assert not at.exception
    assert chat(at).conversation.title == "Imported" and messages(at)[1] == ("assistant", evil)
    assert not at.chat_message[1].markdown[0].proto.allow_html
    assert any("Resumed" in toast.value for toast in at.toast)
    ask(at, "Continue")
    assert chat(at).conversation.turns[-1].extras["messages_sent"] == 3

    at.sidebar.file_uploader[0].set_value(("bad.json", b'{"hello": 1}', "application/json")).run()
    assert "not a chatvlmllm transcript" in at.sidebar.error[0].value and len(at.chat_message) == 4


def test_chat_list_new_switch_rename_delete(app_env):
    at = start()
    ask(at, "First chat?")
    first = chat(at).id
    at.sidebar.button(key="new_chat").click().run()
    assert chat(at).id != first and not at.chat_message
    ask(at, "Second chat?")
    second = chat(at).id
    assert [s.id for s in ChatStore().list_sessions()] == [second, first]

    at.sidebar.button(key=f"open_chat_{first}").click().run()  # one button per chat id
    assert chat(at).id == first and messages(at)[0] == ("user", "First chat?")
    at.sidebar.text_input(key=f"rename_{first}_First chat?").input("Receipts").run()
    assert ChatStore().load(first).conversation.title == "Receipts"

    assert "This cannot be undone." in shown_all(at.sidebar.markdown)  # asks first
    assert {s.id for s in ChatStore().list_sessions()} == {first, second}  # nothing deleted yet
    at.sidebar.button(key="delete_chat_confirm").click().run()
    assert [s.id for s in ChatStore().list_sessions()] == [second]
    assert chat(at).id not in (first, second) and not at.chat_message  # a new chat, not another one


@pytest.mark.slow
def test_quick_prompts_and_all_pages_of_a_pdf(app_env):
    at = start()
    assert all(b.disabled for b in at.main.button if b.key and b.key.startswith("quick_"))  # no document yet
    pages = [text_image([f"page {n}"]) for n in (1, 2, 3)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:])
    upload(at, "report.pdf", buffer.getvalue(), "application/pdf")
    session = chat(at)
    picker = at.main.selectbox(key=f"page_picker_{session.id}_{session.document.sha256[:12]}")
    assert picker.options == ["Whole document", "Page 1", "Page 2", "Page 3", "All pages"]
    picker.set_value(0).run()  # "All pages"
    at.main.button(key="quick_extract_all_text").click().run()

    question, answer = chat(at).conversation.turns
    assert question.text == QUICK_PROMPTS["Extract all text"] and question.pages == [1, 2, 3]
    assert answer.extras["images_sent"] == 3
    assert "report.pdf, pages 1–3" in at.chat_message[0].caption[0].value


@pytest.mark.slow
def test_offline_machine_explains_why_and_still_answers(tmp_path, monkeypatch):
    """No user models, no hub: the planner falls back to the offline OCR engine and says why."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    fresh_process()
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert "Text extraction only: no vision-language model here" in shown(at.markdown[0].value)  # a badge, not a wall
    assert not at.info and not at.warning
    quick = [b.label for b in at.main.button if b.key.startswith("quick_")]
    assert quick == ["Extract text", "Table → Markdown", "Key fields → JSON"]  # what OCR can honestly do
    assert "the offline OCR engine reads its text" in shown_all(at.main.markdown)
    assert at.chat_input[0].disabled  # no document: nothing this engine could answer
    at.button(key="setup_model").click().run()
    dialog = shown_all(at.markdown)
    assert "hf download" in dialog and "qwen_vl_2b — unavailable" in dialog and "HF_HUB_OFFLINE" in dialog
    upload(at, "invoice.png", page_png(), "image/png")
    ask(at, "What is the total?")
    answer = chat(at).conversation.turns[-1]
    assert answer.model == "ocr_auto" and "TOTAL" in answer.text
    fresh_process()


@pytest.mark.slow
def test_document_language_picks_the_offline_engine_that_reads_it(tmp_path, monkeypatch):
    """No VLM here: ocr_auto is the default for every language and hands the Cyrillic page to Tesseract."""
    require_tesseract()
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    fresh_process()
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert at.sidebar.selectbox(key="model").value == "ocr_auto"
    at.sidebar.selectbox(key="language").set_value("ru").run()
    assert at.sidebar.selectbox(key="model").value == "ocr_auto"
    image = SHARED_EVAL / "images" / "ru_line_55038097.png"
    upload(at, image.name, image.read_bytes(), "image/png")
    ask(at, QUICK_PROMPTS["Extract all text"])
    answer = chat(at).conversation.turns[-1]
    truth = (SHARED_EVAL / "truth" / "ru_line_55038097.txt").read_text(encoding="utf-8").split()
    assert answer.model == "ocr_auto" and answer.extras["pages"][0]["engine"] == "tesseract"
    assert sum(word in answer.text for word in truth) >= len(truth) // 2  # it really read the Cyrillic line
    # Which engine read it is a caption beside the text, never a line of the text (copy, .txt, exports).
    assert "Read by" not in answer.text
    assert any(caption.value.endswith(answer.extras["read_by"]) for caption in at.chat_message[-1].caption)
    # An explicit choice is kept when the language changes.
    at.sidebar.selectbox(key="model").set_value("rapidocr").run()
    at.sidebar.selectbox(key="language").set_value("en").run()
    at.sidebar.selectbox(key="language").set_value("ru").run()
    assert at.sidebar.selectbox(key="model").value == "rapidocr"
    fresh_process()


def test_no_runnable_model_at_all_says_what_to_do():
    def page() -> None:
        from chatvlmllm.models.catalog import BUILTIN_MODELS
        from chatvlmllm.models.choice import model_status
        from chatvlmllm.models.hardware import probe
        from ui import banners

        statuses = {spec.key: model_status(spec, probe()) for spec in BUILTIN_MODELS}
        banners.availability(statuses, "qwen_vl_2b", None, "qwen_vl_2b", "qwen_vl_2b", ocr_only=False)

    at = AppTest.from_function(page, default_timeout=60).run()
    assert "No model can run on this machine right now" in at.error[0].value
    at.button(key="setup_model_none").click().run()
    text = shown_all(at.markdown)
    assert "qwen_vl_2b — unavailable" in text and "hf download Qwen/Qwen2-VL-2B-Instruct" in text
    assert "no-models.toml" in text  # the user's catalog file, where a local checkpoint can be added


def test_the_system_page_shows_hardware_plans_and_loaded_engines(app_env):
    at = start()
    ask(at, "Hello?")
    at.switch_page("pages/1_System.py").run()
    assert not at.exception
    hardware, loaded = (frame.value for frame in at.dataframe)
    plans = at.table[0].value  # a table: the reasons wrap instead of being cut off
    assert "flash-attn usable" in set(hardware["Property"]) and "None" not in set(hardware["Value"])
    assert {"tiny2", "tiny3", "qwen_vl_2b"} <= set(plans.index)
    assert plans.loc["tiny2", "Status"] == "ready" and "_" not in "".join(plans.columns)  # plain headers
    assert list(loaded["Model"]) == ["tiny2"] and float(loaded["Memory (MB)"][0].replace(",", "")) > 0

    at.text_input(key="system_gpu").input("12.0:16").run()
    assert "(hypothetical)" in at.subheader[0].value
    hypothetical = at.table[0].value
    assert hypothetical.loc["tiny2", "Runs on"] == "cuda" and hypothetical.loc["tiny2", "Precision"] == "bfloat16"


@pytest.mark.slow
def test_attention_override_is_honoured_or_refused_with_the_reason(app_env):
    at = start()
    ask(at, "Default attention?")
    at.sidebar.selectbox(key="attention").set_value("eager").run()
    assert "loaded with sdpa; these settings load it again" in sidebar_text(at)
    ask(at, "Eager now?")
    assert chat(at).conversation.turns[-1].metrics["attention"] == "eager"
    assert "Attention: eager" in sidebar_text(at) and "Also loaded: tiny2 (sdpa" in sidebar_text(at)

    at.sidebar.selectbox(key="attention").set_value("flash_attention_2").run()
    assert "flash-attn needs a CUDA GPU" in at.sidebar.warning[0].value
    ask(at, "Flash attention?")
    answer = chat(at).conversation.turns[-1]
    assert answer.text == "" and answer.attempts[0]["outcome"] == "skipped"
    assert "refused attention flash_attention_2" in at.chat_message[5].error[0].value

    at.sidebar.button(key="unload_models").click().run()
    assert default_cache().loaded() == [] and any(
        "Unloaded 2 models; their memory is free." in t.value for t in at.toast
    )


def test_an_unusable_data_dir_is_explained_and_the_chat_still_works(app_env, monkeypatch):
    blocker = app_env / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHATVLMLLM_DATA_DIR", str(blocker / "data"))
    at = start()
    assert "Chats are not being saved" in at.error[0].value and "CHATVLMLLM_DATA_DIR" in at.error[0].value
    ask(at, "Still there?")
    assert [m[0] for m in messages(at)] == ["user", "assistant"]


def test_a_layout_answer_is_drawn_on_its_page(app_env):
    """dots.ocr answers carry extras["layout"]; the page hands them to ui.layout_view with the page image."""
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    session = chat(at)
    question = Turn("user", "Layout?", document="invoice.png", document_sha256=session.document.sha256, pages=[1])
    layout = [
        {"bbox": [10, 10, 300, 60], "category": "Title", "text": "INVOICE 2026-11"},
        {"bbox": [10, 60, 300, 110], "category": "Text", "text": "TOTAL 12.50"},
    ]
    answer = Turn("assistant", json.dumps(layout), model="dots_ocr", extras={"layout": layout})
    for turn in (question, answer):
        session.conversation.add(turn)
        session.store.append_turn(session.conversation, turn)
    at.run()

    assert not at.exception
    assistant = at.chat_message[1]
    assert any("Layout: 2 elements" in (image.proto.imgs[0].caption or "") for image in assistant.image)
    assert "INVOICE 2026-11" in " ".join(m.value for m in assistant.markdown)
    assert assistant.expander[0].label == "Answer as text"


@pytest.mark.slow
def test_a_new_tab_starts_a_new_chat_and_offers_to_continue_the_last(app_env):
    at = start()
    ask(at, "Mine?")
    mine = chat(at).id

    other = AppTest.from_file(APP, default_timeout=90).run()  # a new tab: no ?chat= in the URL
    assert chat(other).id != mine and not other.chat_message  # never another session's chat by itself
    other.button(key="continue_last_chat").click().run()  # only when asked
    assert chat(other).id == mine and messages(other)[0] == ("user", "Mine?")


def test_stored_data_the_page_cannot_draw_degrades_to_a_message(app_env):
    """Odd values in a stored turn (a hand-edited transcript, another version) cost that message, not the page."""
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    session = chat(at)
    odd = [
        Turn("user", "Odd?", document="invoice.png", document_sha256=session.document.sha256, pages=[1]),
        Turn(
            "assistant",
            "read $5 text",
            model="rapidocr",
            metrics={"total_s": "slow", "stopped_by": 3, "ttft_s": None},
            attempts=[{"model": "x", "outcome": "error", "seconds": "slow"}, {"model": "y", "outcome": "answered"}],
            extras={"lines": [{"page": 1, "box": ["a", 1]}, "not a line"], "qa_supported": False},
        ),
        Turn("assistant", "layout", extras={"layout": 5}),
    ]
    for turn in odd:
        session.conversation.add(turn)
        session.store.append_turn(session.conversation, turn)
    at.run()

    assert not at.exception
    assert len(at.chat_message) == 3 and at.chat_input[0] is not None and not at.chat_input[0].disabled
    assert at.chat_message[1].code[0].value == "read $5 text"  # verbatim, as read
    assert "Fallback: 2 attempts" in at.chat_message[1].expander[0].label
    assert "cannot be shown" in at.chat_message[2].warning[0].value  # this message only
    ask(at, "Still answering?")
    assert chat(at).conversation.turns[-1].role == "assistant"


@pytest.mark.slow
def test_a_storage_fault_warns_not_saved_and_keeps_the_history(app_env):
    at = start()
    upload(at, "invoice.png", page_png(), "image/png")
    ask(at, "Before the fault?")
    store = chat(at).store
    for path in store.path.parent.glob(store.path.name + "*"):  # the database is gone bad under us
        path.write_bytes(b"this is not a database" * 100)

    at.run()
    assert not at.exception
    assert messages(at)[0] == ("user", "Before the fault?")  # the readable history stays
    assert any("Saved chats cannot be listed" in w.value for w in at.sidebar.warning)
    ask(at, "After the fault?")
    assert not at.exception
    assert [t.role for t in chat(at).conversation.turns] == ["user", "assistant", "user", "assistant"]
    assert any("not saved" in w.value for w in at.main.warning)
    upload(at, "second.png", image_bytes(text_image(["SECOND"])), "image/png")
    assert not at.exception and chat(at).document.name == "second.png"  # usable, though not saved
    assert any("not saved with the chat" in w.value for w in at.main.warning)


def test_the_upload_limit_is_visible_not_only_a_tooltip(app_env):
    at = start()
    captions = " ".join(c.value for c in at.main.caption)
    pages = format_number(documents.MAX_PAGES)  # "5,000": the interface language's digit grouping
    assert f"up to {settings().max_upload_mb:.0f} MB" in captions and f"up to {pages} pages" in captions


def test_a_chosen_model_that_cannot_run_here_does_not_mislead(tmp_path, monkeypatch):
    """qwen_vl_2b chosen offline (no weights): the page follows ocr_auto, which will really answer."""
    monkeypatch.setenv("CHATVLMLLM_MODELS_FILE", str(tmp_path / "none.toml"))
    fresh_process()
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.selectbox(key="model").set_value("qwen_vl_2b").run()
    assert not at.exception
    # The explanation is at the top of the page, and says who answers instead.
    banner = shown_all([*at.main.info, *at.main.warning])
    assert "qwen_vl_2b" in banner and "Questions go to ocr_auto, which extracts text only" in banner
    quick = [b.label for b in at.main.button if b.key.startswith("quick_")]
    assert quick == ["Extract text", "Table → Markdown", "Key fields → JSON"]  # not the chat model's "Summarise"
    upload(at, "invoice.png", page_png(), "image/png")
    assert at.chat_input[0].placeholder.startswith("Ask to extract the text")  # not "Ask about the document…"

    ask(at, "What is the total?")
    answer = chat(at).conversation.turns[-1]
    assert answer.model == "ocr_auto"
    first = answer.attempts[0]
    assert (first["model"], first["outcome"], first["seconds"]) == ("qwen_vl_2b", "skipped", 0.0)  # never loaded
    captions = [caption.value for caption in at.chat_message[-1].caption]
    assert any(value.endswith("qwen_vl_2b cannot run here; ocr_auto answered.") for value in captions)
    waited = answer.waited_s()
    assert waited is not None and waited >= answer.metrics["total_s"]  # the user's wait, not the engine's
    assert f"ocr_auto · {waited:.1f} s" in captions[-1]
    fresh_process()


def crashed_chat() -> str:
    """A stored chat after two crashes: an answer cut off (incomplete, no figures) and a question killed
    before anything of its answer was saved. Returns its id."""
    conversation = Conversation(title="After a crash")
    store = ChatStore()
    store.save_session(conversation)
    for turn in (
        Turn("user", "Say hello"),
        Turn("assistant", "Hel", model="tiny2", incomplete=True, finished_at=None),
        Turn("user", "What is the total?"),
    ):
        conversation.add(turn)
        store.append_turn(conversation, turn)
    return conversation.id


def test_after_a_crash_the_marks_show_and_a_click_asks_again(app_env):
    session_id = crashed_chat()
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["chat"] = session_id
    at.run()
    assert not at.exception
    cut_off, not_answered = at.chat_message[1], at.chat_message[3]
    assert "incomplete: the app stopped while this answer was being written" in cut_off.caption[-1].value
    assert not_answered.name == "assistant"  # the unanswered question is not followed by another "You"
    assert not_answered.warning[0].value == "Not answered: the app stopped before answering."
    assert at.button(key="retry_1") and at.button(key="retry_2")

    at.button(key="retry_2").click().run()
    assert not at.exception
    turns = chat(at).conversation.turns
    assert [t.role for t in turns[-2:]] == ["user", "assistant"] and turns[-2].text == "What is the total?"
    assert turns[-1].model == "tiny2" and not turns[-1].incomplete
    assert len(ChatStore().load(session_id).conversation.turns) == 5  # nothing before it lost
