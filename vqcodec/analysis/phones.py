"""The one shared phone inventory: ARPAbet 39 (CMUdict, no stress) plus "sil".

Every alignment source is mapped into it before analysis: MFA / CMUdict ARPAbet (stress digits
stripped), and the SAMPA sets of the mbrola voices (us1/us2/us3 share one, en1 has its own).

The SAMPA maps were checked by running ``espeak-ng -v mb-VOICE --pho`` over all ~55,000
corpus sentences plus 40,000 dictionary words: every label produced is a key below. Users can
see them (``MBROLA_MAPS``) and override them (``normalize(label, mapping={...})``,
``mbrola_map(voice, overrides)``).
"""
from __future__ import annotations

import re

from ..errors import VqcodecError

PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH",
    "UW", "V", "W", "Y", "Z", "ZH", "sil",
)
SILENCE = "sil"
_PHONE_SET = frozenset(PHONES)

# Labels meaning silence, pause or noise in MFA, Kaldi, TIMIT, mbrola and pocketsphinx output
# (compared lower-case).
SILENCE_LABELS: frozenset[str] = frozenset({
    "", "sp", "spn", "sil", "_", "<eps>", "<sil>", "pau", "h#", "#", "epi", "nsn", "<unk>",
    "[noise]", "[laughter]", "+noise+", "+breath+", "silence", "noise", "<s>", "</s>",
})

# Shared consonants of both mbrola SAMPA sets.
_CONSONANTS = {
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G",
    "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH",
    "h": "HH", "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "N": "NG",
    "l": "L", "r": "R", "w": "W", "j": "Y",
    "l#": "L", "l/": "L", "n-": "N", "m-": "M", "n=": "N", "m=": "M",
}

# mbrola us1 / us2 / us3 (American English SAMPA as espeak-ng writes it).
US_SAMPA: dict[str, str] = {
    **_CONSONANTS,
    "p_h": "P", "t_h": "T", "k_h": "K",   # aspirated stops
    "4": "T",                             # flap (writer, better): ARPAbet 39 has no DX
    "l=": "L", "r=": "ER",
    "i": "IY", "I": "IH", "E": "EH", "e": "EH", "{": "AE", "A": "AA", "V": "AH", "O": "AO",
    "O2": "AO", "U": "UH", "u": "UW", "@": "AH", "EI": "EY", "AI": "AY", "OI": "OY",
    "aU": "AW", "@U": "OW", "o": "OW", "A~": "AA", "O~": "AO",
}

# mbrola en1 (British RP SAMPA): long vowels with ":", centring diphthongs, dark l "5".
EN1_SAMPA: dict[str, str] = {
    **_CONSONANTS,
    "5": "L", "r=": "ER",
    "i:": "IY", "I": "IH", "e": "EH", "E": "EH", "{": "AE", "A:": "AA", "Q": "AA", "V": "AH",
    "O:": "AO", "O": "AO", "U": "UH", "u:": "UW", "@": "AH", "3:": "ER", "eI": "EY",
    "aI": "AY", "OI": "OY", "aU": "AW", "@U": "OW", "o": "OW", "I@": "IH", "e@": "EH",
    "U@": "UH", "A~": "AA", "O~": "AO",
    "p_h": "P", "t_h": "T", "k_h": "K",
}

MBROLA_MAPS: dict[str, dict[str, str]] = {"us1": US_SAMPA, "us2": US_SAMPA, "us3": US_SAMPA,
                                          "en1": EN1_SAMPA}

_STRESS = re.compile(r"^([A-Za-z]+)[012]$")


def mbrola_map(voice: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """SAMPA -> ARPAbet map of an mbrola voice (a copy; `overrides` win)."""
    if voice not in MBROLA_MAPS:
        raise VqcodecError(f"no phone map for mbrola voice {voice!r} (known: {', '.join(MBROLA_MAPS)})")
    out = dict(MBROLA_MAPS[voice])
    out.update(overrides or {})
    return out


def normalize(label: str, mapping: dict[str, str] | None = None, strict: bool = False) -> str:
    """Map one alignment label into the shared inventory.

    Silence/noise labels become "sil"; a `mapping` (e.g. ``mbrola_map("en1")``) is applied
    first (case-sensitive, as SAMPA is); otherwise ARPAbet stress digits are stripped and the
    label upper-cased ("ah0" -> "AH"). Unknown labels are returned upper-cased, or raise a
    VqcodecError with strict=True.
    """
    raw = label.strip()
    if raw.lower() in SILENCE_LABELS:
        return SILENCE
    if mapping is not None and raw in mapping:
        out = mapping[raw]
        return SILENCE if out.lower() in SILENCE_LABELS else out
    m = _STRESS.match(raw)
    out = (m.group(1) if m else raw).upper()
    if strict and out not in _PHONE_SET:
        raise VqcodecError(f"phone label {label!r} is not in the ARPAbet-39 inventory "
                           f"(pass a mapping to normalize it)")
    return out


def is_phone(label: str) -> bool:
    """True when `label` is already in the shared inventory."""
    return label in _PHONE_SET
