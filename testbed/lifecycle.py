"""Start and stop, written once for every piece of the test bed (links, daemons, clusters).

Each piece creates things that outlive a crashed test unless undone: namespaces, veth
pairs, daemons, temporary directories. So each follows one discipline, kept here rather
than copied into every class: start() registers stop() with atexit, so an interrupted run
still cleans up; a start() that fails part-way calls stop() before re-raising; stop() is
idempotent and unregisters itself; ``with`` calls both. Processes are stopped by PID
(`terminate`), never by name, so that parallel runs leave each other alone.
"""

from __future__ import annotations

import atexit
import logging
import signal
import subprocess
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

_STOP_GRACE = 3.0


def terminate(
    process: subprocess.Popen[bytes], *, name: str, grace: float = _STOP_GRACE
) -> int | None:
    """SIGTERM `process` (by its PID), SIGKILL it after `grace` seconds; return its status."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %s) ignored SIGTERM for %g s; killing it", name, process.pid, grace)
        process.kill()
        return process.wait()


class Lifecycle(ABC):
    """start(), stop() and ``with`` around a subclass's `_start()` and `_stop()`.

    `_stop()` must be idempotent and cope with a `_start()` that failed half-way. To refuse
    a second start(), a subclass overrides start() to check, then calls super().start().
    """

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Undo whatever start() did, as far as it got; idempotent."""
        self._stop()
        atexit.unregister(self.stop)

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _stop(self) -> None: ...
