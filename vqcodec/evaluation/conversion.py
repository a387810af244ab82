"""Voice-conversion measures that do not rest on resemblyzer (issue 20; `eval-convert --like-refs`).

A model whose voice path takes resemblyzer's d-vector as input can look good on resemblyzer's own
similarity while moving the voice little. These checks do not use any speaker encoder:

* `parallel_distance`: when the target voice read the same sentence, the DTW-aligned
  mel-cepstral distance (c1..c24, dB) of the converted speech to the target's own reading and to
  the source; a win = closer to the target.
* `SpeakerClassifier`: logistic regression on MFCC statistics of real clips of the evaluation's
  voices; which voice it names for each converted file.
* `swap_sensitivity`: how far the same tokens move when decoded with another voice vector,
  relative to the codec's own reconstruction error (near 0: the decoder ignores the vector).
* `median_f0` of converted speech against the target's, in semitones.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS, N_CEPS = 512, 160, 40, 24   # 32 ms frames every 10 ms; c1..c24
SILENCE_DB = 40.0                                 # frames this far below the loudest are left out
_MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)   # cepstral distance in dB (Kubichek's MCD)


def mel_cepstra(wav: np.ndarray, sr: int = SAMPLE_RATE, drop_silence: bool = True) -> np.ndarray:
    """(frames, 25) mel-cepstra c0..c24 (DCT-II of a 40-band log-mel amplitude spectrum), frames
    more than 40 dB below the loudest dropped. Not analysis.baseline's MFCCs (librosa's dB scale,
    orthonormal DCT, for k-means): a distance in dB needs the cepstral scale of log amplitude, and
    silence would dominate a DTW average."""
    import torch
    from scipy.fft import dct

    from ..nn.spectral import mel_filterbank, stft_magnitude

    x = torch.from_numpy(np.asarray(wav, dtype=np.float32).reshape(1, -1))
    power = stft_magnitude(x, N_FFT, HOP, pad_mode="constant")[0].numpy() ** 2
    mel = mel_filterbank(sr, N_FFT, N_MELS) @ power                   # (40, frames)
    log_mel = np.log(np.maximum(mel, 1e-10))
    if drop_silence and log_mel.shape[1]:
        energy_db = 10 * np.log10(np.maximum(mel.sum(0), 1e-20))
        log_mel = log_mel[:, energy_db >= energy_db.max() - SILENCE_DB]
    # cepstra of the log AMPLITUDE, scaled so that log|A| = c0 + 2 sum c_k cos(k w) (the scale the
    # MCD formula assumes; an orthonormal DCT would inflate distances by sqrt(N_MELS / 2))
    return (dct(0.5 * log_mel, type=2, axis=0) / (2 * N_MELS))[:N_CEPS + 1].T


def dtw_mcd(a: np.ndarray, b: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Mel-cepstral distance (dB, c1..c24) between two readings of the same text, averaged along
    their DTW alignment (librosa.sequence.dtw, Euclidean frame distance)."""
    from librosa.sequence import dtw

    ca, cb = mel_cepstra(a, sr)[:, 1:], mel_cepstra(b, sr)[:, 1:]
    if not len(ca) or not len(cb):
        return float("nan")
    _, path = dtw(X=ca.T, Y=cb.T, metric="euclidean")
    diff = ca[path[:, 0]] - cb[path[:, 1]]
    return float(_MCD_SCALE * np.mean(np.sqrt((diff ** 2).sum(-1))))  # (10 / ln 10) sqrt(2 sum d^2)


def speaker_features(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """MFCC statistics of a clip: means and standard deviations of c1..c24 and of their deltas."""
    c = mel_cepstra(wav, sr)[:, 1:]
    if len(c) < 3:
        c = np.pad(c, ((0, 3 - len(c)), (0, 0)), mode="edge") if len(c) else np.zeros((3, N_CEPS))
    d = np.diff(c, axis=0)
    return np.concatenate([c.mean(0), c.std(0), d.std(0)])


class SpeakerClassifier:
    """Names the voice of a clip among the evaluation's voices: standardised MFCC statistics and a
    logistic regression (scikit-learn), trained on real clips of every voice (eval-convert adds each
    clip as the codec gives it back in its own voice, so that codec artefacts alone do not decide
    the answer). Independent of any speaker encoder a model may use."""

    def __init__(self, clips_by_voice: dict[str, list[np.ndarray]], sr: int = SAMPLE_RATE):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.sr = sr
        self.voices = sorted(v for v, clips in clips_by_voice.items() if clips)
        if len(self.voices) < 2:
            raise ValueError("the speaker classifier needs clips of at least two voices")
        feats, labels = [], []
        for v in self.voices:
            for clip in clips_by_voice[v]:
                feats.append(speaker_features(clip, sr))
                labels.append(v)
        self.num_clips = len(labels)
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        self.model.fit(np.stack(feats), np.array(labels))
        self.training_accuracy = float(self.model.score(np.stack(feats), np.array(labels)))

    def name(self, wav: np.ndarray) -> str:
        return str(self.model.predict(speaker_features(wav, self.sr)[None])[0])


def swap_sensitivity(converted: np.ndarray, own_voice: np.ndarray, original: np.ndarray,
                     sr: int = SAMPLE_RATE) -> float:
    """mean |log-mel(converted) - log-mel(own-voice decode)| / mean |log-mel(own-voice decode) -
    log-mel(original)|: how much another voice vector changes the output, in units of the codec's
    own reconstruction error (the same tokens for both decodes)."""
    from .metrics import log_mel

    n = min(len(converted), len(own_voice), len(original))
    conv, own, orig = (log_mel(np.asarray(x[:n], dtype=np.float32), sr) for x in (converted, own_voice, original))
    err = float(np.mean(np.abs(own - orig)))
    return float(np.mean(np.abs(conv - own)) / max(err, 1e-8))


def median_f0(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Median F0 in Hz of the voiced frames (YIN, nn/pitch.py), None if nothing is voiced."""
    import torch

    from ..nn.pitch import PitchQuantizer, yin_f0

    if sr != SAMPLE_RATE:
        from ..audio import resample

        wav = resample(np.asarray(wav, dtype=np.float32), sr, SAMPLE_RATE)
    x = torch.from_numpy(np.asarray(wav, dtype=np.float32).reshape(1, -1))
    f0 = yin_f0(x, SAMPLE_RATE, 256, 50.0, 500.0)
    m = float(PitchQuantizer.median(f0)[0])
    return m if m > 0 else None


def semitones(a: float | None, b: float | None) -> float | None:
    """|12 log2(a / b)|, None if either is missing."""
    if not a or not b:
        return None
    return float(abs(12 * np.log2(a / b)))
