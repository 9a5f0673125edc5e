"""A progress line for long command-line work: a bar redrawn in place on a terminal, a line every tenth
of the work (and at the end) elsewhere, so CI logs stay short."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, what: str, stream=None):
        self.total = max(total, 0)
        self.what = what
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._next_line = 0

    def step(self, note: str = "") -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        if self.tty:
            width = 30
            filled = width * self.done // self.total if self.total else width
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r{self.what} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s {note[:60]:<60}{end}")
            self.stream.flush()
        elif self.done >= self._next_line or self.done >= self.total:
            self.stream.write(f"{self.what}: {self.done}/{self.total} in {elapsed:.0f}s {note}\n")
            self.stream.flush()
            self._next_line = self.done + max(1, self.total // 10)
