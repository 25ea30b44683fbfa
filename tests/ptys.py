"""Pseudo-terminals, for tests of what agentctl shows on a terminal."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def reader(master: int) -> tuple[threading.Thread, Callable[[], str]]:
    """A started thread that reads everything written to the pseudo-terminal whose master end
    is `master` (until every writer closed the other end), and what it received so far."""
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # every writer closed its end
                return
            if not chunk:
                return
            received.append(chunk)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, lambda: b"".join(received).decode("utf-8", "replace")
