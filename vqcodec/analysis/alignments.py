"""Phone alignments: read and write Praat TextGrid (interval tiers); read mbrola .pho, TSV and CTM.

Every reader returns a list of `Interval`s in seconds. `read_alignment` dispatches on the file
extension and normalises labels to the shared inventory of `phones.py`; `find_alignment` locates
the alignment of an audio file.
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


# --------------------------------------------------------------------------- other formats
ALIGNMENT_EXTENSIONS = (".TextGrid", ".textgrid", ".pho", ".tsv", ".ctm")


def read_pho(path: str | os.PathLike, mapping: dict[str, str] | str | None = None) -> list[Interval]:
    """Phone intervals of an mbrola .pho file.

    Each line is `PHONE DURATION_MS [pitch points]`; `;` starts a comment; blank lines are
    ignored. Times are cumulative from 0. Labels are the voice's SAMPA, normalised to the shared
    inventory with `phones.normalize(label, mapping)`; mapping: a SAMPA -> ARPAbet dict, a voice
    name ("us1", "en1", ...) or None for the US English voices' map.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise VqcodecError(f"{path}: cannot read .pho file ({e.strerror})") from None
    table = _pho_mapping(mapping)
    from .phones import normalize

    out, t = [], 0.0
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            dur = float(fields[1]) / 1000.0
        except (IndexError, ValueError):
            raise VqcodecError(f"{path}:{n}: not a .pho line (PHONE DURATION_MS ...): {line!r}") from None
        out.append(Interval(t, t + dur, normalize(fields[0], table)))
        t += dur
    return out


def _pho_mapping(mapping):
    if mapping is None or isinstance(mapping, str):
        from . import phones
        return phones.mbrola_map(mapping or "us1")
    return mapping


def read_tsv(path: str | os.PathLike) -> list[Interval]:
    """Phone intervals from a whitespace- or tab-separated file, one phone a line, either
    `start end phone` (seconds) or CTM `utt channel start duration phone [confidence]`.
    `#`/`;` comment lines and a header line (non-numeric times) are skipped. Labels are normalised
    with `phones.normalize`."""
    from .phones import normalize

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise VqcodecError(f"{path}: cannot read alignment ({e.strerror})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        f = s.split()
        try:
            if len(f) >= 5 and _is_number(f[2]) and _is_number(f[3]):  # CTM
                start = float(f[2])
                out.append(Interval(start, start + float(f[3]), normalize(f[4])))
            elif len(f) >= 3:
                out.append(Interval(float(f[0]), float(f[1]), normalize(f[2])))
            else:
                raise ValueError
        except ValueError:
            if not out and not any(_is_number(x) for x in f[:2]):
                continue  # a header line
            raise VqcodecError(f"{path}:{n}: expected 'start end phone' or CTM fields: {s!r}") from None
    return sorted(out, key=lambda iv: iv.start)


def _is_number(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


def read_alignment(path: str | os.PathLike, tier: str = "phones") -> list[Interval]:
    """Phone intervals from a .TextGrid (tier `tier`), .pho, .tsv or .ctm file, labels
    normalised to the shared inventory (`phones.PHONES`; silences and noises -> "sil")."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".textgrid":
        from .phones import normalize
        return [Interval(iv.start, iv.end, normalize(iv.label)) for iv in read_textgrid(path, tier)]
    if ext == ".pho":
        return read_pho(path)
    if ext in (".tsv", ".ctm", ".txt"):
        return read_tsv(path)
    raise VqcodecError(f"{path}: unknown alignment format (expected .TextGrid, .pho, .tsv or .ctm)")


def find_alignment(audio_path: str | os.PathLike, alignments_dir: str | os.PathLike | None = None) -> Path | None:
    """The alignment of an audio file: a file with the same stem and an alignment extension,
    under `alignments_dir` when given (mirroring the audio's last folders: dir/spk/utt.TextGrid,
    then dir/utt.TextGrid), else next to the audio. None when there is none."""
    audio_path = Path(audio_path)
    if alignments_dir is not None:
        parts = audio_path.with_suffix("").parts
        bases = [Path(alignments_dir).joinpath(*parts[-k:]) for k in (3, 2, 1) if k <= len(parts)]
    else:
        bases = [audio_path.with_suffix("")]
    for base in bases:
        for ext in ALIGNMENT_EXTENSIONS:
            cand = base.with_name(base.name + ext)
            if cand.is_file():
                return cand
    return None
