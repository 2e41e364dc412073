"""Storage faults mid-session (a full or read-only data folder) become "not saved" warnings.

The faults are real: the data folder is a 2 MB tmpfs in a private mount namespace
(`unshare -rm`), filled to the last byte or remounted read-only while the chat goes on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os, subprocess, sys
from chatvlmllm.chat.session import ChatSession
from chatvlmllm.chat.conversation import Turn
from chatvlmllm.documents.loading import load_document
from chatvlmllm.chat.store import ChatStore
from tests.helpers import image_bytes, text_image

folder, fault = sys.argv[1], sys.argv[2]
store = ChatStore(os.path.join(folder, "chats.sqlite3"))
earlier = ChatSession(store=store)
earlier.conversation.add(Turn("user", "written before the fault"))
store.save_conversation(earlier.conversation)

if fault == "full":
    with open(os.path.join(folder, "filler"), "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
else:
    subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
    store = ChatStore(os.path.join(folder, "chats.sqlite3"))  # a restart on the read-only disk

session = ChatSession.new(store)
page = load_document(image_bytes(text_image(["NOT SAVED"], size=(800, 600)), "BMP"), "page.bmp")
session.attach(page)  # a document upload
attach_error = session.save_error
session.conversation.add(Turn("user", "after the fault"))
session.save_turn(session.conversation.turns[-1])  # a question
turn_error = session.save_error
listed = [s.id for s in store.list_sessions()]
reopened = ChatSession.open(store, earlier.id).conversation.turns[0].text
print(json.dumps({
    "attach_error": attach_error, "turn_error": turn_error, "listed": listed, "earlier": earlier.id,
    "reopened": reopened, "fault": store.fault.fault if store.fault else None, "msg": str(store.fault),
}))
"""


def run_with_fault(tmp_path, fault: str) -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    folder = tmp_path / "data"
    folder.mkdir()
    command = f'mount -t tmpfs -o size=2m tmpfs "{folder}" && exec "{sys.executable}" -c "$0" "{folder}" {fault}'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", command, SCRIPT], capture_output=True, text=True, timeout=120, cwd="."
    )
    if done.returncode != 0 and "mount" in done.stderr and "permission" in done.stderr.lower():
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("fault", ["full", "read_only"])
def test_a_storage_fault_is_a_warning_and_history_stays_readable(tmp_path, fault):
    result = run_with_fault(tmp_path, fault)
    assert "not saved" in result["attach_error"] and "not saved" in result["turn_error"]
    assert result["earlier"] in result["listed"] and result["reopened"] == "written before the fault"
    assert result["fault"] == fault, result
