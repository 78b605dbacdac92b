"""A one-line progress bar on stderr.

Hand-written (25 lines) rather than tqdm: the package then depends on httpx alone, and a
library cannot pin tqdm without fighting its users' own pins.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()  # redrawn in a terminal; one final line in a log
        self.started = time.monotonic()

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.live:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self.live else "") + self._line() + "\n")
        self.stream.flush()

    def _line(self, width: int = 30) -> str:
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * width)
        return f"{self.label} [{bar:<{width}}] {self.done}/{self.total} ({time.monotonic() - self.started:.0f}s)"
