"""One writer per run directory: an OS-level lock that dies with its holder.

``filelock`` takes ``fcntl.flock`` on ``<run>/.lock`` (Linux, macOS; ``msvcrt`` on Windows):
the kernel releases it when the holding process exits for any reason, kill -9 included, so
a crashed run never leaves a stale lock and resuming keeps working. Who holds it (pid, host,
start time, command) is written next to it for the one-line refusal a second writer gets.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from srbench.errors import UserError

if TYPE_CHECKING:
    from typing_extensions import Self


class RunLocked(UserError):
    """Another process is writing this run directory."""


class RunLock:
    """``with RunLock(run_dir): ...`` — exclusive writer, or :class:`RunLocked` at once."""

    def __init__(self, run_dir: str | os.PathLike):
        from filelock import FileLock

        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.info_path = self.dir / ".lock.json"
        self._lock = FileLock(str(self.dir / ".lock"), timeout=0)

    def holder(self) -> str:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return "another process (holder unknown)"
        return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')}"
                f" ({' '.join(info.get('command', []))[:120]})")

    def acquire(self) -> Self:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise RunLocked(f"{self.dir} is being written by {self.holder()}; wait for it to finish, or use another "
                            "run_name") from None
        self.info_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}))
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self.info_path.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
