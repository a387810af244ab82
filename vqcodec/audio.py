"""Audio in and out: any soundfile format to 16 kHz mono float32, wav out, mu-law companding.

Resampling uses soxr (the resampler librosa uses); mu-law is done in torch so the decoder's
targets and its sampled outputs share one implementation. torch and librosa are imported inside
the functions that use them: the CLI imports this module, and `vqcodec --help` / `info` must not
pay for torch's ~1 s import.
"""
from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from .errors import AudioError
from .files import atomic_path

if TYPE_CHECKING:
    import torch

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")


def info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header of an audio file, with our error messages."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({_short(e)})") from None


def load(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, start: int = 0,
         frames: int = -1, verbose_resample: bool = False) -> np.ndarray:
    """Read `path` as float32 mono at `sample_rate`.

    Channels are averaged; other rates are resampled with soxr. `start`/`frames` select a
    region in the file's own sample rate (used for bounded-memory chunked encoding).
    Raises AudioError for a missing file, a non-audio file, zero-length audio or NaN/inf samples.
    """
    path = Path(path)
    file_info = info(path)
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True, start=start, frames=frames)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: cannot decode audio ({_short(e)})") from None
    if wav.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    wav = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if sr != sample_rate:
        if verbose_resample:
            import click
            click.echo(f"note: resampling {path.name} from {sr} Hz to {sample_rate} Hz", err=True)
        wav = resample(wav, sr, sample_rate)
    del file_info
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """soxr high-quality resampling (via librosa)."""
    if orig_sr == target_sr:
        return wav
    import librosa

    return librosa.resample(wav, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(np.float32)


def save(path: str | os.PathLike, wav: "np.ndarray | torch.Tensor", sample_rate: int = SAMPLE_RATE,
         force: bool = True) -> Path:
    """Write 16-bit PCM wav atomically (temporary file, then rename)."""
    if hasattr(wav, "detach"):  # a torch.Tensor (torch is not imported just to check)
        wav = wav.detach().cpu().numpy()
    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    path = Path(path)
    with atomic_path(path, force=force) as tmp:
        sf.write(str(tmp), wav, sample_rate, subtype="PCM_16", format="WAV")
    return path


def mulaw_encode(x: "torch.Tensor", channels: int = 256) -> "torch.Tensor":
    """Float waveform in [-1, 1] -> integer classes in [0, channels)."""
    import torch

    mu = channels - 1
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / torch.log1p(torch.tensor(float(mu)))
    return ((y + 1) / 2 * mu + 0.5).long().clamp(0, mu)


def mulaw_decode(q: "torch.Tensor", channels: int = 256) -> "torch.Tensor":
    """Integer classes in [0, channels) -> float waveform in [-1, 1]."""
    import torch

    mu = channels - 1
    y = 2 * q.float() / mu - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return text[:160]
