"""Preprocessing cache and fixed-length training crops.

`build_cache` resamples each utterance once (`vqcodec.audio.load`, 16 kHz mono) and stores it as
one int16 .npy per utterance under the cache dir, plus ``index.json``; utterances already cached
are skipped. `open_cache` reads the index back as a list of `Entry`. `CropDataset` yields random
fixed-length crops ``(wav float32 [window], speaker_index int)``, deterministic in
(seed, epoch, item), memory-mapping the arrays (np.load(mmap_mode="r")), zero-padding utterances
shorter than the window.

`export_mulaw` packs a cache into a few 8-bit mu-law .npy shards (half the size of int16, what
the decoder's targets are anyway) with the same index format, for carrying training audio to a
GPU machine; `open_cache` reads either kind.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..audio import SAMPLE_RATE, mulaw_decode, mulaw_encode
from ..errors import VqcodecError
from ..files import atomic_path, remove_stale_temps
from .corpora import Utterance

INDEX = "index.json"
INDEX_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One cached utterance: samples [offset, offset+length) of the array in `file`."""
    key: str          # "speaker/utt_id"
    speaker: str
    file: str         # relative to the cache dir
    offset: int
    length: int
    dtype: str        # "int16" | "mulaw8"
    source: str = ""  # original audio path
    root: str = ""    # the cache dir (filled in by open_cache, not stored)

    @property
    def path(self) -> Path:
        return Path(self.root) / self.file

    @property
    def seconds(self) -> float:
        return self.length / SAMPLE_RATE


def _safe(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    if safe != name:  # keep distinct names distinct
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return safe


def _cache_one(args: tuple[str, str, int]) -> tuple[str, int, str | None]:
    """Resample one file into an int16 .npy; returns (dest, length, error or None)."""
    src, dest, sr = args
    from ..audio import load
    from ..errors import AudioError

    try:
        wav = load(src, sample_rate=sr)
    except AudioError as e:
        return dest, 0, str(e)
    pcm = np.round(np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, pcm)
    return dest, len(pcm), None


def build_cache(utterances: Sequence[Utterance], cache_dir: str | os.PathLike,
                sample_rate: int = SAMPLE_RATE, jobs: int = 1, progress: bool = True,
                skip_bad: bool = True) -> list[Entry]:
    """Resample and store every utterance once; returns the cache's entries (in input order).

    Utterances whose .npy exists and is listed in the index are not read again. Unreadable audio
    is skipped with a warning (skip_bad) or raises its AudioError.
    """
    from ..progress import bar as progress_bar

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(cache_dir)  # what a killed build left half-written
    index = _read_index(cache_dir, missing_ok=True)
    if index and index.get("sample_rate") != sample_rate:
        raise VqcodecError(f"{cache_dir}: cache was made at {index.get('sample_rate')} Hz, "
                           f"not {sample_rate} Hz (use another cache dir)")
    known = {e["key"]: e for e in (index or {}).get("entries", [])}
    todo, entries = [], {}
    for u in utterances:
        key = f"{u.speaker}/{u.utt_id}"
        rel = f"{_safe(u.speaker)}/{_safe(u.utt_id)}.npy"
        e = known.get(key)
        if e and (cache_dir / e["file"]).exists():
            entries[key] = Entry(**{**e, "root": ""})
        else:
            todo.append((u, key, rel))
    if todo:
        args = [(str(u.path), str(cache_dir / rel), sample_rate) for u, _, rel in todo]
        bar = progress_bar(total=len(todo), desc="cache", unit="utt", disable=not progress)
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as ex:
                results = []
                for r in ex.map(_cache_one, args, chunksize=8):
                    results.append(r)
                    bar.update(1)
        else:
            results = []
            for a in args:
                results.append(_cache_one(a))
                bar.update(1)
        bar.close()
        for (u, key, rel), (_dest, length, err) in zip(todo, results):
            if err is not None:
                if not skip_bad:
                    from ..errors import AudioError
                    raise AudioError(err)
                import click
                click.echo(f"warning: skipping {err}", err=True)
                continue
            entries[key] = Entry(key, u.speaker, rel, 0, length, "int16", str(u.path))
        all_entries = {**{k: Entry(**{**v, "root": ""}) for k, v in known.items()}, **entries}
        _write_index(cache_dir, sample_rate, all_entries.values())
    out = []
    for u in utterances:
        e = entries.get(f"{u.speaker}/{u.utt_id}")
        if e is not None:
            out.append(Entry(**{**asdict(e), "root": str(cache_dir)}))
    if not out:
        raise VqcodecError(f"{cache_dir}: no utterance could be cached")
    return out


def _write_index(cache_dir: Path, sample_rate: int, entries: Iterable[Entry]) -> None:
    rows = sorted(({k: v for k, v in asdict(e).items() if k != "root"} for e in entries),
                  key=lambda r: r["key"])
    data = {"version": INDEX_VERSION, "sample_rate": sample_rate, "entries": rows}
    with atomic_path(cache_dir / INDEX) as tmp:
        tmp.write_text(json.dumps(data, indent=0))


def _read_index(cache_dir: Path, missing_ok: bool = False) -> dict | None:
    path = Path(cache_dir) / INDEX
    if not path.exists():
        if missing_ok:
            return None
        raise VqcodecError(f"{cache_dir}: no {INDEX} (not an audio cache)")
    try:
        data = json.loads(path.read_text())
        assert data["version"] == INDEX_VERSION
        return data
    except (json.JSONDecodeError, KeyError, AssertionError, TypeError):
        raise VqcodecError(f"{path}: corrupt or unknown cache index (delete the cache dir)") from None


def open_cache(cache_dir: str | os.PathLike) -> list[Entry]:
    """All entries of a cache dir (int16 per-utterance or mu-law shards), sorted by key."""
    data = _read_index(Path(cache_dir))
    return [Entry(**{**e, "root": str(cache_dir)}) for e in data["entries"]]


def read_entry(entry: Entry, start: int = 0, length: int | None = None, _mmaps: dict | None = None) -> np.ndarray:
    """float32 samples [start, start+length) of one entry (memory-mapped read)."""
    mm = None if _mmaps is None else _mmaps.get(entry.file)
    if mm is None:
        mm = np.load(entry.path, mmap_mode="r")
        if _mmaps is not None:
            _mmaps[entry.file] = mm
    length = entry.length - start if length is None else length
    a = entry.offset + start
    raw = np.asarray(mm[a:a + length])
    if entry.dtype == "int16":
        return raw.astype(np.float32) / 32767.0
    if entry.dtype == "mulaw8":
        return mulaw_decode(torch.from_numpy(raw.astype(np.int64))).numpy().astype(np.float32)
    raise VqcodecError(f"unknown cache dtype {entry.dtype!r}")


def export_mulaw(entries: Sequence[Entry], out_dir: str | os.PathLike,
                 shard_seconds: float = 3600.0) -> list[Entry]:
    """Pack entries into 8-bit mu-law shards (uint8 .npy, ~shard_seconds each) + index.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = int(shard_seconds * SAMPLE_RATE)
    new, buf, pos, shard = [], [], 0, 0

    def flush():
        nonlocal buf, pos, shard
        if buf:
            with atomic_path(out_dir / f"shard{shard:04d}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, np.concatenate(buf))
            buf, pos, shard = [], 0, shard + 1

    mmaps: dict = {}
    for e in sorted(entries, key=lambda e: e.key):
        wav = read_entry(e, _mmaps=mmaps)
        q = mulaw_encode(torch.from_numpy(wav)).numpy().astype(np.uint8)
        if pos and pos + len(q) > limit:
            flush()
        new.append(Entry(e.key, e.speaker, f"shard{shard:04d}.npy", pos, len(q), "mulaw8", e.source))
        buf.append(q)
        pos += len(q)
    flush()
    _write_index(out_dir, SAMPLE_RATE, new)
    return open_cache(out_dir)


class CropDataset(torch.utils.data.Dataset):
    """Random fixed-length crops: item i -> (wav float32 [window], speaker index).

    The utterance (chosen with probability proportional to its length, so every second of audio
    is equally likely) and the offset depend only on (seed, epoch, i). `set_epoch` moves to new
    crops; `batch(step, n)` returns a stacked batch deterministic in step (for step-based loops).
    Utterances shorter than the window are zero-padded at the end.
    """

    def __init__(self, entries: Sequence[Entry], window: int, speakers: Sequence[str] | None = None,
                 seed: int = 0, length: int | None = None):
        if not entries:
            raise VqcodecError("no audio to train on (empty dataset)")
        if window <= 0:
            raise VqcodecError(f"crop window must be positive, not {window}")
        self.entries = list(entries)
        self.window = int(window)
        self.speakers = list(speakers) if speakers is not None else sorted({e.speaker for e in entries})
        index = {s: i for i, s in enumerate(self.speakers)}
        missing = {e.speaker for e in self.entries} - set(index)
        if missing:
            raise VqcodecError(f"speaker(s) not in the speaker index: {', '.join(sorted(missing))}")
        self.speaker_ids = np.array([index[e.speaker] for e in self.entries], dtype=np.int64)
        lengths = np.array([max(1, e.length) for e in self.entries], dtype=np.float64)
        self.cum = np.cumsum(lengths) / lengths.sum()
        self.seed = int(seed)
        self.epoch = 0
        self._length = int(length) if length is not None else len(self.entries)
        self._mmaps: dict = {}

    def __len__(self) -> int:
        return self._length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getstate__(self):  # memory maps are not pickled to DataLoader workers
        state = dict(self.__dict__)
        state["_mmaps"] = {}
        return state

    def crop(self, key: Sequence[int]) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, *key])
        k = int(np.searchsorted(self.cum, rng.random(), side="right"))
        k = min(k, len(self.entries) - 1)
        e = self.entries[k]
        if e.length > self.window:
            start = int(rng.integers(0, e.length - self.window + 1))
            wav = read_entry(e, start, self.window, self._mmaps)
        else:
            wav = np.zeros(self.window, dtype=np.float32)
            wav[:e.length] = read_entry(e, 0, e.length, self._mmaps)
        return torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), int(self.speaker_ids[k])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not 0 <= i < self._length:
            raise IndexError(i)
        return self.crop((self.epoch, int(i)))

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(wav [batch, window], speaker [batch]) for one training step; ranks get distinct crops."""
        items = [self.crop((1 << 20, int(step), int(rank * batch_size + j)))
                 for j in range(batch_size)]
        del world_size
        return torch.stack([w for w, _ in items]), torch.tensor([s for _, s in items], dtype=torch.long)


def fixed_crops(entries: Sequence[Entry], window: int, speakers: Sequence[str], count: int,
                seed: int = 0) -> list[tuple[torch.Tensor, int]]:
    """`count` deterministic crops (a validation set that never changes)."""
    ds = CropDataset(entries, window, speakers, seed=seed, length=count)
    return [ds[i] for i in range(count)]
