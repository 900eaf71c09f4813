"""Progress of feature extraction, in videos/s, on stderr.

I3D runs at about one video per second on a CPU, so `vgan-jax eval --num_videos 256`
takes minutes; a user must see that it is working and how long it will take. On a
terminal this is a tqdm bar. Anywhere else (a log file, a notebook's `!` cell, CI)
a tqdm bar is one ever-growing line of carriage returns, so there we print a plain
line when the work starts, every `interval` seconds, and when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

# Seconds between two progress lines when stderr is not a terminal.
LINE_INTERVAL_S = 30.0


def note(message: str, stream: TextIO | None = None) -> None:
    """One line of status on stderr (e.g. "loading 2048 real clips")."""
    stream = stream or sys.stderr
    print(message, file=stream, flush=True)


class Progress:
    """Counts videos through an extraction loop and reports videos/s on stderr.

    Args:
      total: videos expected (None: unknown, no ETA).
      desc: what is being counted, e.g. "features: generated".
      enabled: False makes every method a no-op (e.g. on non-main hosts).
      interval: seconds between lines when stderr is not a terminal.
      stream: where to write (default `sys.stderr`).

    Use as a context manager, calling `update(n)` after each batch.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        enabled: bool = True,
        interval: float = LINE_INTERVAL_S,
        stream: TextIO | None = None,
    ):
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.interval = interval
        self.count = 0
        self._stream = stream or sys.stderr
        self._start = self._last_line = time.perf_counter()
        self._bar = None
        if not enabled:
            return
        if _is_terminal(self._stream):
            self._bar = tqdm(
                total=total, desc=desc, unit=" videos", file=self._stream,
                dynamic_ncols=True, mininterval=0.5, leave=True,
            )
        else:
            note(f"{desc}: 0/{total if total is not None else '?'} videos", self._stream)

    def update(self, num: int) -> None:
        """`num` more videos are done."""
        if not self.enabled:
            return
        self.count += num
        if self._bar is not None:
            self._bar.update(num)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.interval:
            self._last_line = now
            note(self._line(now), self._stream)

    def close(self) -> None:
        """Final line: videos, elapsed time and rate."""
        if not self.enabled:
            return
        self.enabled = False
        if self._bar is not None:
            self._bar.close()
        else:
            note(self._line(time.perf_counter(), final=True), self._stream)

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = now - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        total = "?" if self.total is None else self.total
        line = (
            f"{self.desc}: {self.count}/{total} videos, {rate:.2f} videos/s, "
            f"elapsed {tqdm.format_interval(elapsed)}"
        )
        if not final and self.total is not None and rate > 0:
            line += f", eta {tqdm.format_interval((self.total - self.count) / rate)}"
        return line + (" (done)" if final else "")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
