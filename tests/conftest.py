"""Shared pytest fixtures: tiny generated audio files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch


def make_signal(seconds: float = 0.25, sr: int = 16000, kind: str = "sine", freq: float = 440.0,
                channels: int = 1, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """float32 [frames] (mono) or [frames, channels]: a sine, white noise, or a sine plus noise."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    if kind == "sine":
        x = np.sin(2 * np.pi * freq * t)
    elif kind == "noise":
        x = rng.uniform(-1, 1, n)
    elif kind == "mix":
        x = 0.8 * np.sin(2 * np.pi * freq * t) + 0.2 * rng.uniform(-1, 1, n)
    else:
        raise ValueError(kind)
    x = (amplitude * x).astype(np.float32)
    if channels > 1:
        x = np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
    return x


@pytest.fixture
def make_wav(tmp_path):
    """Factory: make_wav("name.wav", seconds=0.25, sr=16000, kind="sine"|"noise"|"mix",
    freq=440, channels=1, amplitude=0.5, seed=0, subtype=None) -> Path of a written audio file.
    The format follows the extension (.wav, .flac, .ogg). Relative names go under tmp_path."""
    def make(name: str | Path = "tone.wav", seconds: float = 0.25, sr: int = 16000, kind: str = "sine",
             freq: float = 440.0, channels: int = 1, amplitude: float = 0.5, seed: int = 0,
             subtype: str | None = None) -> Path:
        path = Path(name)
        if not path.is_absolute():
            path = tmp_path / path
        path.parent.mkdir(parents=True, exist_ok=True)
        x = make_signal(seconds, sr, kind, freq, channels, amplitude, seed)
        fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
        if subtype is None:
            subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}.get(fmt)
        sf.write(str(path), x, sr, format=fmt, subtype=subtype)
        return path
    return make


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and don't fight a busy machine's other work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
