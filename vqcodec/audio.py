"""Audio in and out: any soundfile format to 16 kHz mono float32, wav out, mu-law companding.

Resampling uses soxr (the resampler librosa uses); mu-law is done in torch so the decoder's
targets and its sampled outputs share one implementation. torch and soxr are imported inside
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
# Sample rates accepted at all: narrowband recordings to hi-res studio files. A header outside this
# range is damaged or crafted (1 Hz made a 9-sample file an 8.9 h upsampled reference).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 768000
# A reference voice (`convert --like`, `sample --like`): at least this long to be a voice at all,
# and at most what the voice vector is taken from (a file's first minute).
MIN_REFERENCE_SECONDS = 1.0
VOICE_MAX_SECONDS = 60


def info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header of an audio file, with our error messages."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        header = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({_short(e)})") from None
    check_sample_rate(header.samplerate, str(path))
    return header


def check_sample_rate(sample_rate, what: str = "audio") -> None:
    """Refuse a sample rate that is not a whole number of Hz in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE],
    before anything is read or resampled."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float, np.floating)) \
            or not float(sample_rate).is_integer() or sample_rate <= 0:
        raise AudioError(f"{what}: sample rate must be a positive integer number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{what}: sample rate {int(sample_rate)} Hz is outside the {MIN_SAMPLE_RATE}-"
                         f"{MAX_SAMPLE_RATE} Hz accepted (a damaged header?)")


def check_reference(num_samples: int, sample_rate: int, what: str = "reference voice") -> None:
    """Refuse a reference recording shorter than MIN_REFERENCE_SECONDS or longer than the
    VOICE_MAX_SECONDS a voice is taken from (checked on the header, before it is read)."""
    seconds = num_samples / sample_rate
    if seconds < MIN_REFERENCE_SECONDS:
        raise AudioError(f"{what}: too short ({seconds:.2f} s; a reference voice needs at least "
                         f"{MIN_REFERENCE_SECONDS:g} s of speech, 3-10 s is best)")
    if seconds > VOICE_MAX_SECONDS:
        raise AudioError(f"{what}: too long ({seconds:.1f} s; a reference voice is taken from at most "
                         f"{VOICE_MAX_SECONDS} s, 3-10 s is best): cut it, e.g. sox REF.wav short.wav trim 0 10")


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


MAX_CHANNELS = 16  # a 2-D array with more columns than this is not (samples, channels)
_INT_SCALE = {np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0}


def as_mono_float(wav, sample_rate, what: str = "audio") -> np.ndarray:
    """The one check of in-memory audio given to the API: a 1-D float32 array in [-1, 1].

    Accepts float arrays (any float dtype, values in [-1, 1]: a peak above 2 is refused as
    probably unscaled integers), int16 and int32 PCM (scaled by 2^15 / 2^31), lists and torch
    tensors. Shapes: (samples,) or (samples, channels) as soundfile returns it, channels averaged.
    Refused with a message saying which layout is expected: channels-first (channels, samples),
    other 2-D shapes where samples and channels cannot be told apart, 0-D and >2-D arrays, other
    dtypes (int64, uint8, bool, ...: their scale is unknown), empty or non-finite audio, and a
    sample rate that is not an integer in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]. Raises AudioError;
    `what` names the input."""
    check_sample_rate(sample_rate, what)
    if hasattr(wav, "detach"):  # torch.Tensor
        wav = wav.detach().cpu().numpy()
    try:
        arr = np.asarray(wav)
    except (TypeError, ValueError) as e:
        raise AudioError(f"{what}: not an array of samples ({e})") from None
    layout = "expected (samples,) or (samples, channels) as soundfile.read returns it"
    if arr.ndim == 0 or arr.ndim > 2:
        raise AudioError(f"{what}: got a {arr.ndim}-D array of shape {arr.shape}; {layout}")
    if arr.size == 0:
        raise AudioError(f"{what}: audio is empty (0 samples)")
    if arr.ndim == 2:
        rows, cols = arr.shape
        if cols == 1 or (cols <= MAX_CHANNELS and rows > cols):
            pass  # (samples, channels)
        elif rows <= MAX_CHANNELS and cols > rows:
            raise AudioError(f"{what}: shape {arr.shape} looks channels-first ({rows} channels x {cols} "
                             f"samples); {layout}: pass wav.T")
        else:
            raise AudioError(f"{what}: cannot tell samples from channels in shape {arr.shape}; {layout} "
                             f"with at most {MAX_CHANNELS} channels")
    if arr.dtype in _INT_SCALE:
        arr = arr.astype(np.float32) / np.float32(_INT_SCALE[arr.dtype])
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
        if not np.all(np.isfinite(arr)):
            raise AudioError(f"{what}: audio contains NaN or infinite samples")
        peak = float(np.abs(arr).max())
        if peak > 2.0:
            raise AudioError(f"{what}: float samples must lie in [-1, 1], peak is {peak:g} (integer PCM "
                             f"stored as float? divide by 32768, or pass the int16 array itself)")
    else:
        raise AudioError(f"{what}: samples of dtype {arr.dtype} are not accepted; give float samples in "
                         f"[-1, 1], or int16 / int32 PCM")
    if arr.ndim == 2:
        arr = arr.mean(axis=1) if arr.shape[1] > 1 else arr[:, 0]
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """soxr high-quality resampling: what librosa.resample(res_type="soxr_hq") does, called directly
    (importing librosa costs seconds per command)."""
    if orig_sr == target_sr:
        return wav
    import soxr

    return np.asarray(soxr.resample(np.asarray(wav, dtype=np.float32), orig_sr, target_sr, quality="HQ"),
                      dtype=np.float32)


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
