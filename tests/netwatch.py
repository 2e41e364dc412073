"""Outbound network attempts, observed through Python's audit hooks (PEP 578).

"Fails fast while offline" is tested as "tries no network at all": a count of name
lookups and connections to anything but this machine, not a stopwatch.
"""

from __future__ import annotations

import contextlib
import ipaddress
import sys
import threading
from collections.abc import Iterator
from typing import Any

_watchers: list[list[str]] = []
_installed = False
_install_lock = threading.Lock()


def _is_remote(host: Any) -> bool:
    if not isinstance(host, str | bytes) or host in ("localhost", b"localhost", "", b""):
        return False
    try:
        return not ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host).is_loopback
    except ValueError:
        return True  # a name: resolving it is already a network attempt


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _watchers:
        return
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if _is_remote(host):
        for attempts in list(_watchers):
            attempts.append(f"{event} {host!r}")


@contextlib.contextmanager
def outbound_attempts() -> Iterator[list[str]]:
    """Yield a list that collects every outbound lookup or connection made inside the block."""
    global _installed
    with _install_lock:
        if not _installed:  # audit hooks cannot be removed: install one, switch it by watchers
            sys.addaudithook(_hook)
            _installed = True
    attempts: list[str] = []
    _watchers.append(attempts)
    try:
        yield attempts
    finally:
        _watchers.remove(attempts)
