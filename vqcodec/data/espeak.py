"""espeak-ng's own (formant) voices with exact phone timing, through libespeak-ng and ctypes.

``espeak-ng --pho`` prints nothing for these voices, but the library reports where each phoneme
starts in the audio it returns (espeakEVENT_PHONEME, enabled by espeakINITIALIZE_PHONEME_EVENTS).
`synthesize` returns the 22.05 kHz audio and (phone, duration_ms) rows in the same form as the
mbrola .pho rows, so the corpus generator handles both engines alike. Labels are espeak-ng's
English phoneme mnemonics; `ESPEAK_EN` maps them into the shared ARPAbet inventory (checked on
600 corpus sentences read by en-us+m3 and by en+f2: every label produced is a key).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle

import numpy as np

from ..errors import MissingToolError, VqcodecError

_AUDIO_OUTPUT_RETRIEVAL = 1
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER

# espeak-ng English mnemonics -> ARPAbet 39 + sil. Several are one interval for two ARPAbet
# phones (r-coloured vowels "A@", "e@", ...): the vowel is kept.
ESPEAK_EN: dict[str, str] = {
    "_": "sil", "_:": "sil", "_!": "sil", "_^_": "sil", ";": "", "'": "", ",": "",  # "" = no phone
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V",
    "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "x": "K",
    "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "N": "NG", "l": "L", "r": "R", "w": "W", "j": "Y",
    "t#": "T", "t2": "T", "d#": "D", "?": "T", "n-": "N", "m-": "M", "l-": "L", "@L": "L", "r-": "ER",
    "a": "AE", "aa": "AE", "a#": "AH", "A:": "AA", "A@": "AA", "0": "AA", "V": "AH", "@": "AH",
    "@2": "AH", "@5": "AH", "@-": "AH", "3": "ER", "3:": "ER", "E": "EH", "e": "EH", "e@": "EH",
    "eI": "EY", "I": "IH", "I2": "IH", "I#": "IH", "i": "IY", "i:": "IY", "i@": "IH", "i@3": "IH",
    "O": "AO", "O:": "AO", "O2": "AO", "O@": "AO", "o@": "AO", "O~": "AO", "OI": "OY", "oU": "OW",
    "U": "UH", "U@": "UH", "u": "UW", "u:": "UW", "aI": "AY", "aI@": "AY", "aI3": "AY",
    "aU": "AW", "aU@": "AW",
}

_lib = None
_SAMPLE_RATE = 22050


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
_state: dict = {"audio": [], "events": []}


@_Callback
def _on_synth(wav, num_samples, events):
    if num_samples > 0:
        _state["audio"].append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    i = 0
    while events[i].type != _EVENT_LIST_TERMINATED:
        if events[i].type == _EVENT_PHONEME:
            _state["events"].append((events[i].sample, events[i].id.string.decode("ascii", "replace")))
        i += 1
    return 0


def library():
    """libespeak-ng, initialised once per process for retrieval with phoneme events (only ever
    in `synthesize`'s short-lived child processes)."""
    global _lib, _SAMPLE_RATE
    if _lib is None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise MissingToolError("libespeak-ng not found: apt-get install espeak-ng") from None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if rate <= 0:
            raise MissingToolError("libespeak-ng failed to initialise (is espeak-ng-data installed?)")
        lib.espeak_SetSynthCallback(_on_synth)
        _SAMPLE_RATE, _lib = rate, lib
    return _lib


def has_voice(voice: str) -> bool:
    """Whether espeak-ng knows `voice` ("LANG" or "LANG+VARIANT"), checked without loading the
    library into this process (see `synthesize`)."""
    import re
    import subprocess
    from pathlib import Path

    base, _, variant = voice.partition("+")
    try:
        ok = subprocess.run(["espeak-ng", "-v", base, "-q", "a"], capture_output=True, timeout=30,
                            stdin=subprocess.DEVNULL).returncode == 0
        version = subprocess.run(["espeak-ng", "--version"], capture_output=True, timeout=30, text=True).stdout
    except FileNotFoundError:
        raise MissingToolError("espeak-ng not found: apt-get install espeak-ng") from None
    if not ok or not variant:
        return ok
    m = re.search(r"Data at:\s*(\S+)", version)
    return bool(m) and (Path(m.group(1)) / "voices" / "!v" / variant).is_file()


def synthesize(voice: str, text: str, speed: int = 175, pitch: int = 50, pitch_range: int = 50
               ) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
    """(int16 audio, its sample rate, [(phone, duration_ms)]) for `text` in espeak-ng `voice`
    (e.g. "en-us+m3"). The rows cover the audio exactly: leading audio before the first phoneme
    event is a "_" row, and each phone lasts until the next one starts.

    Each call runs in a freshly forked child process: libespeak-ng keeps state between
    syntheses (the same text comes out a few samples longer or shorter on the second call, even
    after re-initialising), so only a first synthesis in a clean process is reproducible; and a
    process forked from one that loaded the library hangs in it, so this process never loads it.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: load, synthesize, send the result, exit without cleanup
        try:
            os.close(r)
            try:
                result = ("ok", _synthesize_here(voice, text, speed, pitch, pitch_range))
            except VqcodecError as e:
                result = ("error", type(e).__name__, str(e))
            with os.fdopen(w, "wb") as fh:
                pickle.dump(result, fh)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    if not data:
        raise VqcodecError(f"espeak-ng crashed synthesizing with voice {voice!r}")
    result = pickle.loads(data)  # our own child's output
    if result[0] == "error":
        raise (MissingToolError if result[1] == "MissingToolError" else VqcodecError)(result[2])
    return result[1]


def _synthesize_here(voice: str, text: str, speed: int, pitch: int, pitch_range: int):
    lib = library()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise MissingToolError(f"espeak-ng voice {voice!r} not found: apt-get install espeak-ng-data")
    for param, value in ((_RATE, speed), (_PITCH, pitch), (_RANGE, pitch_range)):
        lib.espeak_SetParameter(param, int(value), 0)
    _state["audio"], _state["events"] = [], []
    data = text.encode("utf-8")
    err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
    lib.espeak_Synchronize()
    audio = np.concatenate(_state["audio"]) if _state["audio"] else np.zeros(0, np.int16)
    events = _state["events"]
    if err != 0 or not events or audio.size == 0:
        raise VqcodecError(f"espeak-ng produced no speech for voice {voice!r} (error {err})")
    rows: list[list] = []
    starts = [min(max(0, s), audio.size) for s, _ in events] + [audio.size]
    if starts[0] > 0:
        rows.append(["_", starts[0] * 1000.0 / _SAMPLE_RATE])
    for (_, label), a, b in zip(events, starts[:-1], starts[1:]):
        ms = (b - a) * 1000.0 / _SAMPLE_RATE
        if ESPEAK_EN.get(label) == "" and rows:  # a modifier, not a phone: part of the previous one
            rows[-1][1] += ms
        elif ms > 0:
            rows.append([label, ms])
    return audio, _SAMPLE_RATE, [(p, d) for p, d in rows]


__all__ = ["ESPEAK_EN", "synthesize", "has_voice"]
