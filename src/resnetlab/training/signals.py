"""Stopping cleanly on Ctrl-C or SIGTERM: finish the step in progress, write `last`, say how to resume."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    """A flag the training loop checks after every optimizer step.

    SIGINT (Ctrl-C) and SIGTERM set it; a second SIGINT stops at once (KeyboardInterrupt), as a user
    pressing Ctrl-C twice expects. Code may also call `request` (tests, callbacks).
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signalled = False  # a signal asked (a request from code does not make the next Ctrl-C the second)

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Route SIGINT/SIGTERM to this flag while the block runs (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, frame: object) -> None:
            if self.signalled and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signalled = True
            self.request(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
