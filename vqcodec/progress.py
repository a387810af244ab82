"""Progress bars: tqdm on a terminal, a few plain lines when stderr is not one.

A tqdm bar redraws itself with carriage returns, which in a log file or a CI page becomes one
line per refresh. When stderr is not a TTY, `bar` returns a `PlainBar` instead: the same small
interface (iterate, update, close, set_postfix, context manager), printing one line at the start
and at each quarter of the work, with the rate.
"""
from __future__ import annotations

import sys
import time


def bar(iterable=None, *, total=None, desc: str = "", unit: str = "it", disable: bool = False,
        leave: bool = True, unit_scale: bool = False, stream=None, bar_format: str | None = None):
    """A tqdm bar (stderr is a terminal; `bar_format` is tqdm's) or a PlainBar (it is not);
    `disable` gives a silent one."""
    stream = stream if stream is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not disable and not _isatty(stream):
        return PlainBar(iterable, total=total, desc=desc, unit=unit, stream=stream)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave,
                unit_scale=unit_scale, file=stream, bar_format=bar_format)


def bar_for(progress, *, total=None, desc: str = "", unit: str = "it", **kw):
    """`progress` as a bar: a bar the caller made (anything with `update`, e.g. one bar over a batch
    of files), advanced here and never closed here, its `n` counting only this part's updates; or,
    for True / False, a bar of its own (silent for False)."""
    if hasattr(progress, "update"):
        return _Part(progress)
    return bar(total=total, desc=desc, unit=unit, disable=not progress, **kw)


class _Part:
    """Part of a caller's bar: update() advances it, close() leaves it open, n is this part's count."""

    def __init__(self, whole):
        self.whole, self.n = whole, 0

    def update(self, n=1) -> None:
        self.n += n
        self.whole.update(n)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class PlainBar:
    """Progress as plain lines: 'desc: 0/60.0 s', then a line each time the work passes a quarter
    (25/50/75/100 %), saying the share actually done (one update past two quarters gives one
    line), with the rate; close() adds the last figure if the work stopped short of 100 %."""

    def __init__(self, iterable=None, total=None, desc: str = "", unit: str = "it", stream=None):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self._start = time.perf_counter()
        self._next_quarter = 1
        self._closed = False
        self._last = None  # the count of the last line printed
        self._line(f"{self._fmt(0)}{'/' + self._fmt(total) if total else ''} {unit}")

    def _fmt(self, x) -> str:
        return f"{x:.1f}" if isinstance(x, float) and not float(x).is_integer() else f"{x:g}"

    def _line(self, text: str) -> None:
        print(f"{self.desc}: {text}" if self.desc else text, file=self.stream, flush=True)

    def update(self, n=1) -> None:
        self.n += n
        if not self.total or self._next_quarter > 4 \
                or self.n < self.total * self._next_quarter / 4 - 1e-9:
            return
        while self._next_quarter <= 4 and self.n >= self.total * self._next_quarter / 4 - 1e-9:
            self._next_quarter += 1
        self._progress_line()

    def _progress_line(self) -> None:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        share = min(100, int(100 * self.n / self.total + 1e-6))
        self._line(f"{share}% ({self._fmt(round(self.n, 1))}/{self._fmt(round(self.total, 1))} "
                   f"{self.unit}, {self.n / elapsed:.3g} {self.unit}/s, {elapsed:.1f} s)")
        self._last = self.n

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if not self._closed and not self.total:
            self._line(f"done ({self._fmt(self.n)} {self.unit}, {time.perf_counter() - self._start:.1f} s)")
        elif not self._closed and self.n and self._last != self.n and self._next_quarter <= 4:
            self._progress_line()  # stopped short of 100 %: say where
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def write(text: str, file=None) -> None:
        print(text, file=file if file is not None else sys.stderr, flush=True)


def write(text: str) -> None:
    """A line on stderr that does not break a tqdm bar being drawn there."""
    if _isatty(sys.stderr):
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)
