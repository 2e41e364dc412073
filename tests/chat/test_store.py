"""The SQLite chat store: sessions, turns and documents survive a restart; list, rename, delete."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chatvlmllm.chat.conversation import Conversation, Turn
from chatvlmllm.chat.store import ChatStore
from chatvlmllm.errors import UserError
from chatvlmllm.settings import DB_NAME, settings


def test_data_dir_comes_from_the_environment_or_the_xdg_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATVLMLLM_DATA_DIR", str(tmp_path / "mine"))
    assert settings().data_dir == tmp_path / "mine"
    assert ChatStore().path == tmp_path / "mine" / DB_NAME
    monkeypatch.delenv("CHATVLMLLM_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert settings().data_dir == tmp_path / "xdg" / "chatvlmllm"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert settings().data_dir == Path.home() / ".local" / "share" / "chatvlmllm"


def chat_with_turns(store: ChatStore, questions: list[str]) -> Conversation:
    conversation = Conversation()
    for question in questions:
        user = conversation.add(Turn("user", question, document="a.png", document_sha256="sha-a", pages=[1]))
        store.append_turn(conversation, user)
        answer = conversation.add(Turn("assistant", f"answer to {question}", model="tiny", metrics={"total_s": 0.1}))
        store.append_turn(conversation, answer)
    return conversation


def test_turns_and_documents_survive_a_restart(tmp_path):
    path = tmp_path / "chats.sqlite3"
    store = ChatStore(path)
    conversation = chat_with_turns(store, ["first?", "second?"])
    store.save_document(conversation.id, "sha-a", "a.png", b"\x89PNG bytes")
    store.save_session(conversation, active_document="sha-a", pages=[2, 3])

    restarted = ChatStore(path).load(conversation.id)  # a new process opens the same file

    assert restarted.conversation == conversation
    assert restarted.documents["sha-a"].name == "a.png" and restarted.documents["sha-a"].data == b"\x89PNG bytes"
    assert restarted.active_document == "sha-a" and restarted.pages == [2, 3]


def test_list_is_most_recent_first_with_turn_counts(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    older = chat_with_turns(store, ["old"])
    newer = chat_with_turns(store, ["new", "newer"])
    sessions = store.list_sessions()
    assert [s.id for s in sessions] == [newer.id, older.id]
    assert [s.turn_count for s in sessions] == [4, 2]
    assert sessions[0].title == "new"


def test_rename_and_delete(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    conversation = chat_with_turns(store, ["q"])
    store.save_document(conversation.id, "sha-a", "a.png", b"data")
    store.rename(conversation.id, "  Receipts   March ")
    assert store.load(conversation.id).conversation.title == "Receipts March"
    with pytest.raises(UserError, match="needs a name"):
        store.rename(conversation.id, "   ")

    store.delete(conversation.id)
    assert store.list_sessions() == [] and not store.exists(conversation.id)
    with pytest.raises(UserError, match="no saved chat"):
        store.load(conversation.id)
    with sqlite3.connect(store.path) as db:  # turns and documents went with the session
        assert db.execute("SELECT COUNT(*) FROM turns").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone() == (0,)


def test_save_conversation_replaces_the_turns(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    conversation = chat_with_turns(store, ["a", "b"])
    conversation.turns = conversation.turns[:1]
    store.save_conversation(conversation)
    assert store.load(conversation.id).conversation.turns == conversation.turns


def test_concurrent_sessions_write_without_losing_turns(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    errors: list[BaseException] = []

    def chat(index: int) -> None:
        try:
            chat_with_turns(store, [f"thread {index} q{n}" for n in range(5)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(s.turn_count for s in store.list_sessions()) == [10, 10, 10, 10]


def test_an_unusable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="CHATVLMLLM_DATA_DIR") as error:
        ChatStore(blocker / "chats.sqlite3")
    assert ".." not in str(error.value) and str(error.value).count("cannot be opened") == 1


DAMAGED = b"this is not a database" * 100


def test_a_damaged_file_at_start_is_kept_aside_and_a_new_history_starts(tmp_path):
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(DAMAGED)
    Path(f"{path}-wal").write_bytes(b"half a log")
    store = ChatStore(path)

    (aside,) = tmp_path.glob("chats.sqlite3.damaged-*[0-9]")
    assert aside.read_bytes() == DAMAGED and Path(f"{aside}-wal").read_bytes() == b"half a log"  # nothing lost
    assert store.notice is not None and str(path) in store.notice and str(aside) in store.notice
    assert "damaged (file is not a database)" in store.notice and "CHATVLMLLM_DATA_DIR" not in store.notice
    conversation = Conversation(title="After the repair")
    conversation.add(Turn("user", "saved again"))
    store.save_conversation(conversation)
    assert [s.title for s in ChatStore(path).list_sessions()] == ["After the repair"]


def test_a_file_damaged_while_running_says_so_and_what_to_do(tmp_path):
    path = tmp_path / "chats.sqlite3"
    store = ChatStore(path)
    conversation = Conversation(title="Before")
    store.save_conversation(conversation)
    for part in tmp_path.glob("chats.sqlite3*"):
        part.write_bytes(DAMAGED)

    assert store.list_sessions() == [] and store.fault is not None
    message = str(store.fault)
    assert message.startswith(f"The chat history file {path} is damaged (file is not a database).")
    assert "Restart the app" in message and "CHATVLMLLM_DATA_DIR" not in message and ".." not in message
    assert store.fault.fault == "damaged"
    with pytest.raises(UserError, match="is damaged"):
        store.exists(conversation.id, quiet=False)  # not "deleted": the history cannot be read


def test_two_tabs_on_one_chat_keep_both_answers(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    conversation = chat_with_turns(store, ["shared"])
    tab_a = store.load(conversation.id).conversation
    tab_b = store.load(conversation.id).conversation
    store.append_turn(tab_a, tab_a.add(Turn("user", "from tab A")))
    store.append_turn(tab_b, tab_b.add(Turn("user", "from tab B")))
    texts = [t.text for t in store.load(conversation.id).conversation.turns]
    assert texts == ["shared", "answer to shared", "from tab A", "from tab B"]


def test_a_session_opens_only_the_chat_it_names_never_the_most_recent(tmp_path):
    from chatvlmllm.chat.session import ChatSession

    store = ChatStore(tmp_path / "chats.sqlite3")
    other = Conversation(title="New chat")
    other.add(Turn("user", "someone else's question"))
    store.save_conversation(other)
    assert ChatSession.open_or_new(store, None).id != other.id
    fresh = ChatSession.open_or_new(store, "no-such-chat")
    assert fresh.id != other.id and not fresh.conversation.turns
    assert ChatSession.open_or_new(store, other.id).conversation.turns[0].text == "someone else's question"


def test_stored_data_that_no_longer_fits_the_schema_cannot_stop_a_chat_opening(tmp_path):
    import sqlite3

    from chatvlmllm.chat.session import ChatSession

    store = ChatStore(tmp_path / "chats.sqlite3")
    conversation = Conversation()
    conversation.add(Turn("user", "question"))
    conversation.add(Turn("assistant", "answer"))
    store.save_conversation(conversation)
    with sqlite3.connect(store.path) as db:  # an older writer, a hand edit, a bad import of the past
        db.execute(
            "UPDATE turns SET data = ? WHERE position = 1",
            ('{"role": "assistant", "text": "a", "attempts": [{"seconds": "slow"}]}',),
        )
        db.execute("UPDATE sessions SET pages = 'not json'")
    opened = ChatSession.open(store, conversation.id)
    turns = opened.conversation.turns
    assert turns[0].text == "question" and "could not be read" in (turns[1].error or "")
    assert "attempts[0].seconds" in (turns[1].error or "") and opened.pages == [1]
