"""Progress of a batch: a tqdm bar on a terminal, plain log lines otherwise, and readable units.

On a terminal (and with tqdm installed, as the ``io`` extra does) the bar shows the count, the
frames per second, the ETA, the pixel throughput and the failures so far; messages print above
it. When the output is a log file or a pipe there is no bar: one line at most every second,
with the same figures, so a log stays short and greppable.
"""

from __future__ import annotations

import sys
import time

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str) -> str:
    """``value`` with a decimal prefix and three significant digits (``25.0 MB``).

    Examples
    --------
    >>> si(1234, "B/s"), si(0.5, "B"), si(3.2e9, "B/s")
    ('1.23 kB/s', '0.500 B', '3.20 GB/s')
    """
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{_digits(value / scale)} {prefix}{unit}"
    return f"{_digits(value)} {unit}"


def _digits(x: float) -> str:
    """Three significant digits in fixed notation (``999``, ``25.0``, ``1.23``, ``0.500``)."""
    return f"{x:.{0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2 if abs(x) >= 1 else 3}f}"


def seconds(t: float) -> str:
    """A duration for people: ``'340 ms'``, ``'2.51 s'``, ``'3 min 05 s'``, ``'1 h 02 min'``.

    Examples
    --------
    >>> seconds(0.0123), seconds(2), seconds(185), seconds(3720)
    ('12.3 ms', '2.00 s', '3 min 05 s', '1 h 02 min')
    """
    if t < 1:
        return f"{_digits(t * 1e3)} ms"
    if t < 60:
        return f"{_digits(t)} s"
    if t < 3600:
        return f"{int(t // 60)} min {int(t % 60):02d} s"
    return f"{int(t // 3600)} h {int(t % 3600 // 60):02d} min"


class Progress:
    """Counts finished files and shows them: a tqdm bar on a terminal, log lines otherwise.

    ``update(result)`` counts one file (``result.ok``, ``result.pixels_bytes``), ``line(text)``
    prints a message (above the bar on a terminal), ``close()`` leaves the final state.
    """

    def __init__(self, total: int, stream=None, quiet: bool = False):
        self.total = total
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.done = self.failed = 0
        self.bytes = 0
        self.last = 0.0
        self.bar = None
        isatty = getattr(self.stream, "isatty", None)
        if not quiet and total and isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # without tqdm a terminal gets the log lines
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=self.stream, unit=" frames", leave=True,
                                dynamic_ncols=True, mininterval=0.1, smoothing=0,
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        self.start = time.perf_counter()  # the averages of the bar and of the figures agree

    def line(self, text: str) -> None:
        """Print a message line (above the bar on a terminal)."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _figures(self, elapsed: float) -> str:
        return si(self.bytes / elapsed, "B/s") + (f", {self.failed} failed" if self.failed
                                                    else "")

    def update(self, res) -> None:
        """Count a finished file; redraw the bar, or log a line (at most one a second)."""
        self.done += 1
        self.failed += not res.ok
        self.bytes += res.pixels_bytes
        now = time.perf_counter()
        elapsed = max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(self._figures(elapsed), refresh=False)
            self.bar.update(1)
            return
        if self.quiet or (now - self.last < 1.0 and self.done < self.total):
            return
        self.last = now
        eta = (self.total - self.done) * elapsed / self.done
        self.line(f"[{self.done:>{len(str(self.total))}}/{self.total}] "
                  f"{self.done / elapsed:.1f} frames/s, {self._figures(elapsed)}"
                  + (f", eta {seconds(eta)}" if self.done < self.total else ""))

    def close(self) -> None:
        """Draw the final state of the bar and release the terminal line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
