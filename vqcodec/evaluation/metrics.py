"""Objective speech-quality metrics: PESQ-WB, STOI, mel distance, speaker similarity, alignment.

All functions take 1-D float arrays. PESQ and STOI are thin wrappers over the pip packages
`pesq` and `pystoi`; a missing package raises MissingToolError with the pip command.
Classical codecs delay the signal (codec2 by ~20 ms): `vqcodec.evaluation.baselines` measures each
codec's delay once with `envelope_delay` on a probe signal, and the report removes exactly that
delay (`shift`) before scoring. Per-file waveform cross-correlation is not used for alignment: for
a codec that synthesises its waveform (vqcodec, codec2's low modes) its peak is meaningless.
"""
from __future__ import annotations

import functools
import numpy as np

from ..audio import resample
from ..errors import MissingToolError

PESQ_SR = 16000


def _mono(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _equal_length(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


# --------------------------------------------------------------------------- alignment
def estimate_delay(ref, deg, sr: int = 16000, max_lag_s: float = 0.1) -> int:
    """Samples by which `deg` lags `ref` (negative: `deg` leads), from the peak of their
    cross-correlation within +-max_lag_s."""
    from scipy.signal import correlate

    ref, deg = _mono(ref), _mono(deg)
    if len(ref) == 0 or len(deg) == 0:
        return 0
    max_lag = int(round(max_lag_s * sr))
    xc = correlate(deg, ref, mode="full", method="fft")  # index i <-> lag i - (len(ref) - 1)
    zero = len(ref) - 1
    lo, hi = max(0, zero - max_lag), min(len(xc), zero + max_lag + 1)
    if hi <= lo:
        return 0
    return int(np.argmax(xc[lo:hi]) + lo - zero)


def shift(deg, lag: int, length: int | None = None) -> np.ndarray:
    """Undo a delay of `lag` samples (drop the first `lag` samples, or zero-pad if negative);
    then cut or zero-pad to `length` if given."""
    deg = np.asarray(deg, dtype=np.float32).reshape(-1)
    if lag > 0:
        deg = deg[lag:]
    elif lag < 0:
        deg = np.concatenate([np.zeros(-lag, dtype=np.float32), deg])
    if length is not None:
        deg = deg[:length] if len(deg) >= length else np.pad(deg, (0, length - len(deg)))
    return deg


def envelope_delay(ref, deg, sr: int = 16000, max_lag_s: float = 0.1, win_s: float = 0.005) -> int:
    """Samples by which `deg` lags `ref`, from the cross-correlation of their log-energy envelopes
    (energy smoothed over `win_s`). Unlike waveform cross-correlation it does not need the codec
    to keep the waveform's phase, which codec2 does not; resolution is a few samples."""
    from scipy.signal import correlate

    def env(x):
        win = max(1, int(round(win_s * sr)))
        e = np.log(np.convolve(_mono(x) ** 2, np.ones(win) / win, mode="same") + 1e-6)
        return e - e.mean()

    ref, deg = _mono(ref), _mono(deg)
    if len(ref) == 0 or len(deg) == 0:
        return 0
    max_lag = int(round(max_lag_s * sr))
    xc = correlate(env(deg), env(ref), mode="full", method="fft")
    zero = len(ref) - 1
    lo, hi = max(0, zero - max_lag), min(len(xc), zero + max_lag + 1)
    return int(np.argmax(xc[lo:hi]) + lo - zero)


# --------------------------------------------------------------------------- quality metrics
def pesq_wb(ref, deg, sr: int = 16000) -> float:
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO 1.0-4.64) at 16 kHz; other rates are resampled.
    Returns NaN when PESQ finds no speech in the reference."""
    try:
        from pesq import pesq
        from pesq import PesqError
    except ImportError:
        raise MissingToolError("PESQ needs the `pesq` package: pip install pesq") from None
    ref, deg = _mono(ref), _mono(deg)
    if sr != PESQ_SR:
        ref = resample(ref.astype(np.float32), sr, PESQ_SR)
        deg = resample(deg.astype(np.float32), sr, PESQ_SR)
    ref, deg = _equal_length(ref, deg)
    try:
        return float(pesq(PESQ_SR, ref, deg, "wb"))
    except PesqError:
        return float("nan")


def stoi(ref, deg, sr: int = 16000, extended: bool = False) -> float:
    """Short-time objective intelligibility (Taal et al. 2011), 0..1, via pystoi."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        raise MissingToolError("STOI needs the `pystoi` package: pip install pystoi") from None
    ref, deg = _equal_length(_mono(ref), _mono(deg))
    if len(ref) == 0:
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystoi warns on too-short/silent input and returns 1e-5
        return float(_stoi(ref, deg, sr, extended=extended))


MEL_N_FFT = 1024
MEL_HOP = 256
MEL_BANDS = 80
MEL_FLOOR = 1e-5


def log_mel(wav, sr: int = 16000) -> np.ndarray:
    """log10 of an 80-band magnitude mel spectrogram (n_fft 1024, hop 256, Hann window,
    centred frames, Slaney mel scale, fmin 0, fmax sr/2), floored at 1e-5. Shape (80, frames)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(wav, dtype=np.float32).reshape(-1), sr=sr,
                                         n_fft=MEL_N_FFT, hop_length=MEL_HOP, n_mels=MEL_BANDS,
                                         power=1.0, center=True)
    return np.log10(np.maximum(mel, MEL_FLOOR))


def mel_axis(sr: int = 16000, n_mels: int = MEL_BANDS, ticks_hz=(500, 1000, 2000, 4000, 8000)) -> list[tuple[float, float]]:
    """Where frequencies fall on a `log_mel` picture: (Hz, height as a fraction of the picture,
    0 = bottom) for each tick up to sr/2. Band b (from the bottom) is centred on the (b+1)-th of
    n_mels + 2 points spread evenly on the Slaney mel scale from 0 to sr/2 and drawn as the row
    [b, b + 1), so a frequency sits at (its band position + 0.5) / n_mels."""
    from ..nn.spectral import _hz_to_mel

    top = float(_hz_to_mel(sr / 2))
    out = []
    for hz in ticks_hz:
        if 0 < hz <= sr / 2:
            band = float(_hz_to_mel(hz)) / top * (n_mels + 1) - 1
            out.append((float(hz), min(1.0, max(0.0, (band + 0.5) / n_mels))))
    return out


def khz_label(hz: float) -> str:
    return f"{hz / 1000:g} kHz"


def mel_distance(ref, deg, sr: int = 16000) -> float:
    """Mean absolute difference of log10 mel spectrograms (see `log_mel`), over all 80 bands
    and all frames, after trimming both signals to the shorter length. 0 for identical signals;
    unit: log10 magnitude (0.1 = about 2 dB). Compare only with numbers from this function."""
    ref, deg = _equal_length(_mono(ref), _mono(deg))
    if len(ref) == 0:
        return float("nan")
    return float(np.mean(np.abs(log_mel(ref, sr) - log_mel(deg, sr))))


# --------------------------------------------------------------------------- speaker similarity
@functools.lru_cache(maxsize=1)
def _voice_encoder():
    import warnings

    try:
        with warnings.catch_warnings():  # resemblyzer imports a deprecated scipy.ndimage path
            warnings.simplefilter("ignore", DeprecationWarning)
            from resemblyzer import VoiceEncoder
    except ImportError as e:
        raise MissingToolError(
            "speaker similarity needs resemblyzer: pip install webrtcvad-wheels && "
            f"pip install resemblyzer --no-deps ({e})") from None
    return VoiceEncoder(device="cpu", verbose=False)


def speaker_embedding(wavs, sr: int = 16000) -> np.ndarray:
    """Unit-norm resemblyzer (GE2E, 256-d) embedding of one utterance or of a list of
    utterances of one speaker (their normalised mean)."""
    encoder = _voice_encoder()
    from resemblyzer import preprocess_wav

    many = isinstance(wavs, (list, tuple))
    items = [preprocess_wav(_mono(w).astype(np.float32), source_sr=sr) for w in (wavs if many else [wavs])]
    items = [w if len(w) >= 1600 else np.pad(w, (0, 1600 - len(w))) for w in items]  # VAD may empty it
    if many:
        e = encoder.embed_speaker(items)
    else:
        e = encoder.embed_utterance(items[0])
    return e / max(np.linalg.norm(e), 1e-12)


def speaker_similarity(wav_a, wav_b, sr: int = 16000) -> float:
    """Cosine similarity of resemblyzer embeddings (higher = more alike; compare values, e.g.
    converted-vs-target against converted-vs-source, rather than reading one on its own).
    Either argument may be a list of utterances of one speaker."""
    return float(np.dot(speaker_embedding(wav_a, sr), speaker_embedding(wav_b, sr)))


__all__ = ["estimate_delay", "envelope_delay", "shift", "pesq_wb", "stoi", "mel_distance", "log_mel",
           "speaker_similarity", "speaker_embedding"]


HARMONIC_BAND = (1500.0, 4000.0)
HARMONIC_FRAME = 320   # 20 ms analysis frames (the pitch drifts little within one)
HARMONIC_HOP = 160     # every 10 ms


def harmonicity(ref, deg, sr: int = 16000, band: tuple[float, float] = HARMONIC_BAND) -> float | None:
    """How periodic `deg` is at the original's pitch in a high band: in the frames where the
    ORIGINAL `ref` is voiced (YIN, nn/pitch.py), the normalised autocorrelation of `deg`'s
    1.5-4 kHz band at the original's F0 period, averaged over those frames. harmonicity(ref, ref)
    is the original's own value; a decoder that turns the upper harmonics into noise scores far
    below it although its energy there may be right. None when nothing is voiced."""
    import torch

    from ..nn.pitch import yin_f0

    ref_a, deg_a = _equal_length(ref, deg)
    if len(ref_a) < HARMONIC_FRAME:
        return None
    f0 = yin_f0(torch.from_numpy(ref_a.astype(np.float32))[None], sr, HARMONIC_HOP, 60.0, 400.0)[0].numpy()
    spec = np.fft.rfft(deg_a.astype(np.float64))
    freqs = np.fft.rfftfreq(len(deg_a), 1.0 / sr)
    spec[(freqs < band[0]) | (freqs > band[1])] = 0.0
    x = np.fft.irfft(spec, n=len(deg_a))
    values = []
    for i, f in enumerate(f0):
        start = i * HARMONIC_HOP - HARMONIC_FRAME // 2
        if f <= 0 or start < 0:
            continue
        period = int(round(sr / f))
        if start + HARMONIC_FRAME + period > len(x):
            break
        a = x[start:start + HARMONIC_FRAME]
        b = x[start + period:start + period + HARMONIC_FRAME]
        energy = np.sqrt(np.dot(a, a) * np.dot(b, b))
        if energy > 1e-12:
            values.append(float(np.dot(a, b) / energy))
    return float(np.mean(values)) if values else None
