"""Phone alignments: read and write Praat TextGrid (interval tiers).

Readers for mbrola .pho and CTM/TSV, and phone-set normalisation, live here too.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import VqcodecError
from ..files import atomic_path


@dataclass(frozen=True)
class Interval:
    start: float  # seconds
    end: float    # seconds
    label: str


def write_textgrid(path: str | os.PathLike, tiers: dict[str, list[Interval]], xmax: float | None = None) -> None:
    """Write interval tiers as a long-format Praat TextGrid (what MFA writes), atomically."""
    if xmax is None:
        xmax = max((iv.end for ivs in tiers.values() for iv in ivs), default=0.0)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0", f"xmax = {xmax:.6f}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for i, (name, intervals) in enumerate(tiers.items(), 1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                  "        xmin = 0", f"        xmax = {xmax:.6f}",
                  f"        intervals: size = {len(intervals)}"]
        for j, iv in enumerate(intervals, 1):
            label = iv.label.replace('"', '""')
            lines += [f"        intervals [{j}]:", f"            xmin = {iv.start:.6f}",
                      f"            xmax = {iv.end:.6f}", f'            text = "{label}"']
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")


_TOKEN = re.compile(r'"((?:[^"]|"")*)"|([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(<exists>)|([A-Za-z_][\w?]*)')


def read_textgrid(path: str | os.PathLike, tier: str | None = "phones") -> list[Interval]:
    """Interval tier `tier` of a TextGrid (long or short text format). tier=None: the first
    interval tier. Empty labels are kept (as ""), so callers decide what silence is."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="utf-16")
    except OSError as e:
        raise VqcodecError(f"{path}: cannot read TextGrid ({e.strerror})") from None
    # Tokenise: strings and numbers carry all the information in both formats; keys ("xmin =")
    # only decorate the long format.
    values = []
    text = re.sub(r"\[\s*\d*\s*\]", " ", text)  # "item [1]:", "intervals [3]:" (long format)
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            values.append(("s", m.group(1).replace('""', '"')))
        elif m.group(2) is not None:
            values.append(("n", float(m.group(2))))
    try:
        pos = 0
        assert values[0] == ("s", "ooTextFile") and values[1] == ("s", "TextGrid")
        pos = 2
        _xmin, _xmax = values[pos][1], values[pos + 1][1]
        pos += 2
        n_tiers = int(values[pos][1])
        pos += 1
        names = []
        for _ in range(n_tiers):
            kind, name = values[pos][1], values[pos + 1][1]
            pos += 4  # class, name, xmin, xmax
            count = int(values[pos][1])
            pos += 1
            names.append(name)
            if kind == "IntervalTier":
                ivs = [Interval(values[pos + 3 * k][1], values[pos + 3 * k + 1][1], values[pos + 3 * k + 2][1])
                       for k in range(count)]
                pos += 3 * count
                if tier is None or name == tier:
                    return ivs
            else:  # TextTier: (time, mark) pairs
                pos += 2 * count
    except (AssertionError, IndexError, TypeError, ValueError):
        raise VqcodecError(f"{path}: not a valid Praat TextGrid") from None
    raise VqcodecError(f"{path}: no interval tier named {tier!r} (tiers: {', '.join(names) or 'none'})")
