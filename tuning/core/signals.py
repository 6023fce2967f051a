"""Ctrl-C (SIGINT) and SIGTERM stop a study between two steps of training, never mid-row.

Python turns SIGINT into a `KeyboardInterrupt` raised wherever the main thread happens to be. If
that is a finalizer, a weak-reference or garbage-collector callback (JAX registers one), Python
prints "Exception ignored" and the study runs on. So the first signal is only remembered, and
the study asks for it where raising is safe: at the end of every epoch and before every trial
(`raise_if_stopped`), so it stops within an epoch. A second signal raises at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler): handled as Ctrl-C is."""


class StopSignals:
    """While the ``with`` block runs, SIGINT makes the next `raise_if_stopped` raise
    `KeyboardInterrupt`, and SIGTERM `Terminated`; a second signal raises at once. Outside the
    main thread it does nothing, and a signal this process was started ignoring (``nohup``, a
    shell's background job: SIGINT) stays ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._at_once = False

    def __deepcopy__(self, memo: dict[int, Any]) -> StopSignals:
        # scikit-learn deep-copies an estimator's callbacks for each fold: they must all see
        # the one object the signal handler sets
        return self

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again, self.received = self.received is not None, signum
        if again or self._at_once:
            self.raise_if_stopped()
        # no logging here: the main thread may hold the logging lock
        os.write(2, b"stopping at the end of this epoch (again to stop at once)\n")

    @contextmanager
    def at_once(self) -> Iterator[None]:
        """Within this block the first signal raises at once: for a stage with no step to
        finish and nothing it could leave half written (listing, reading and comparing results,
        whose files are written whole and renamed)."""
        self.raise_if_stopped()
        previous, self._at_once = self._at_once, True
        try:
            yield
        finally:
            self._at_once = previous

    def raise_if_stopped(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated("terminated")
        if self.received is not None:
            raise KeyboardInterrupt("interrupted")


PARENT_WATCH = "tuning-parent-watch"
PARENT_POLL_SECONDS = 0.5


def die_with_parent(parent: int) -> None:
    """End this process (SIGKILL) as soon as ``parent`` is no longer its parent: a grid worker
    whose grid was killed (``kill -9`` of the parent runs no clean-up) must not go on with the
    queue as an orphan. The study it was running stops as a kill would stop it, and is resumed
    by the next run, as after any crash. A watching thread polls the parent's pid; called again
    in the same process, it starts no second thread."""
    if any(t.name == PARENT_WATCH for t in threading.enumerate()):
        return
    if os.getppid() != parent:  # the parent ended before the watch began
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name=PARENT_WATCH, daemon=True).start()
