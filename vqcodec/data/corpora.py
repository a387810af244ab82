"""Corpus readers: VCTK (0.80 and 0.92), LibriSpeech and a generic SPEAKER/ folder tree.

Each returns a sorted list of `Utterance`; `load_corpus(kind, root)` dispatches on a name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from ..errors import VqcodecError
from ..files import walk

KINDS = ("folders", "vctk", "librispeech")


@dataclass(frozen=True, order=True)
class Utterance:
    path: Path
    speaker: str
    utt_id: str
    transcript: str | None = None


def _root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise VqcodecError(f"{root}: corpus root does not exist")
    if not root.is_dir():
        raise VqcodecError(f"{root}: corpus root is not a directory")
    return root


def _read_text(path: Path) -> str | None:
    try:
        return " ".join(path.read_text(encoding="utf-8", errors="replace").split()) or None
    except OSError:
        return None


def _done(utts: list[Utterance], root: Path, what: str) -> list[Utterance]:
    if not utts:
        raise VqcodecError(f"{root}: no audio files found ({what})")
    return sorted(utts, key=lambda u: (u.speaker, u.utt_id, str(u.path)))


def vctk(root: str | os.PathLike, mic: str = "mic1") -> list[Utterance]:
    """VCTK 0.80 (wav48/pXXX/pXXX_NNN.wav) or 0.92 (wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac).

    `root` is the folder holding wav48/ or wav48_silence_trimmed/ (or a parent of it, e.g. the
    extracted archive's top folder). Transcripts from txt/pXXX/pXXX_NNN.txt when present.
    """
    if mic not in ("mic1", "mic2"):
        raise VqcodecError(f"VCTK mic must be mic1 or mic2, not {mic!r}")
    base = _root(root)
    candidates = [base] + sorted(p for p in base.iterdir() if p.is_dir())
    for cand in candidates:
        new, old = cand / "wav48_silence_trimmed", cand / "wav48"
        if new.is_dir() or old.is_dir():
            base = cand
            break
    new, old = base / "wav48_silence_trimmed", base / "wav48"
    utts = []
    if new.is_dir():
        suffix = f"_{mic}"
        for f in (f for f in walk(new, (".flac",)) if f.parent.parent == new and f.name.endswith(suffix + ".flac")):
            utt_id = f.name[: -len(suffix + ".flac")]
            utts.append(Utterance(f, f.parent.name, utt_id,
                                  _read_text(base / "txt" / f.parent.name / f"{utt_id}.txt")))
    elif old.is_dir():
        for f in (f for f in walk(old, (".wav",)) if f.parent.parent == old):
            utts.append(Utterance(f, f.parent.name, f.stem,
                                  _read_text(base / "txt" / f.parent.name / f"{f.stem}.txt")))
    else:
        raise VqcodecError(f"{base}: not a VCTK folder (no wav48/ or wav48_silence_trimmed/)")
    return _done(utts, base, f"VCTK, {mic}")


def librispeech(root: str | os.PathLike) -> list[Utterance]:
    """LibriSpeech SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac with SPEAKER-CHAPTER.trans.txt.

    `root` may be one subset (LibriSpeech/train-clean-100) or any parent of several.
    """
    base = _root(root)
    utts = []
    trans_cache: dict[Path, dict[str, str]] = {}
    for f in walk(base, (".flac",)):
        parts = f.stem.split("-")
        if len(parts) != 3:
            continue
        speaker, chapter, _ = parts
        trans_file = f.parent / f"{speaker}-{chapter}.trans.txt"
        if trans_file not in trans_cache:
            table = {}
            if trans_file.exists():
                for line in trans_file.read_text(encoding="utf-8", errors="replace").splitlines():
                    key, _, text = line.strip().partition(" ")
                    if key:
                        table[key] = text.strip()
            trans_cache[trans_file] = table
        utts.append(Utterance(f, speaker, f.stem, trans_cache[trans_file].get(f.stem)))
    return _done(utts, base, "LibriSpeech *.flac")


def folders(root: str | os.PathLike) -> list[Utterance]:
    """Generic ROOT/SPEAKER/**/*.wav|flac|...; speaker = first folder level.

    Transcript from a sibling UTT.txt or UTT.lab. utt_id = path below the speaker folder, without
    extension, '/' replaced by '_' (unique within a speaker).
    """
    base = _root(root)
    utts = []
    for spk_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in walk(spk_dir, AUDIO_EXTENSIONS):
            rel = f.relative_to(spk_dir).with_suffix("")
            transcript = None
            for ext in (".txt", ".lab"):
                side = f.with_suffix(ext)
                if side.exists():
                    transcript = _read_text(side)
                    break
            utts.append(Utterance(f, spk_dir.name, "_".join(rel.parts), transcript))
    return _done(utts, base, "expected ROOT/SPEAKER/*.wav or *.flac")


def load_corpus(kind: str, root: str | os.PathLike, **kw) -> list[Utterance]:
    """Dispatch: kind in folders | vctk | librispeech (kw passed on, e.g. mic= for VCTK)."""
    readers = {"folders": folders, "vctk": vctk, "librispeech": librispeech}
    if kind not in readers:
        raise VqcodecError(f"unknown corpus kind {kind!r} (choose from {', '.join(KINDS)})")
    import inspect

    allowed = set(inspect.signature(readers[kind]).parameters) - {"root"}
    unknown = set(kw) - allowed
    if unknown:
        raise VqcodecError(f"option(s) {', '.join(sorted(unknown))} do not apply to corpus kind {kind!r}")
    return readers[kind](root, **kw)
