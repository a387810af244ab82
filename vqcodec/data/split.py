"""Deterministic train / valid / test split by utterance, and the speaker index.

Each utterance's subset depends only on a hash of (seed, utt_id): adding or removing other
utterances, or listing them in another order, never moves it. Held-out speakers go to test whole.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from ..errors import VqcodecError
from .corpora import Utterance

SUBSETS = ("train", "valid", "test")


def _unit(utt_id: str, seed: int) -> float:
    """A uniform number in [0, 1) from (seed, utt_id), stable across runs and platforms."""
    digest = hashlib.sha256(f"{seed}\0{utt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def subset_of(utt: Utterance, valid_fraction: float = 0.05, test_fraction: float = 0.05,
              seed: int = 0, holdout_speakers: Iterable[str] = (), valid_speakers: Iterable[str] = ()) -> str:
    """"train" | "valid" | "test" for one utterance."""
    if utt.speaker in set(holdout_speakers):
        return "test"
    if utt.speaker in set(valid_speakers):
        return "valid"
    u = _unit(f"{utt.speaker}/{utt.utt_id}", seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def split(utterances: Sequence[Utterance], valid_fraction: float = 0.05, test_fraction: float = 0.05,
          seed: int = 0, holdout_speakers: Iterable[str] = (),
          valid_speakers: Iterable[str] = ()) -> dict[str, list[Utterance]]:
    """{"train": [...], "valid": [...], "test": [...]} (each sorted like the input is).

    Fractions are of the non-held-out utterances (per-utterance hash, so only approximately
    exact on small corpora). Unknown held-out speaker names are an error (a typo must not
    silently train on the evaluation speaker).
    """
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise VqcodecError(f"bad split fractions valid={valid_fraction} test={test_fraction}")
    held, valid = set(holdout_speakers), set(valid_speakers)
    known = {u.speaker for u in utterances}
    missing = (held | valid) - known
    if missing:
        raise VqcodecError(f"held-out speaker(s) not in the corpus: {', '.join(sorted(missing))}")
    out: dict[str, list[Utterance]] = {k: [] for k in SUBSETS}
    for u in utterances:
        out[subset_of(u, valid_fraction, test_fraction, seed, held, valid)].append(u)
    return out


def speaker_index(utterances: Iterable[Utterance]) -> list[str]:
    """Sorted distinct speaker names; a speaker's integer id is its position in this list."""
    return sorted({u.speaker for u in utterances})
