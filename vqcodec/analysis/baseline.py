"""A classical tokenizer to compare with: k-means on MFCC frames at the model's token rate.

Features: 13 MFCCs (25 ms window) + deltas + delta-deltas = 39 dims, one frame per `hop` samples,
each frame centred on the matching token's centre ((i + 0.5) * hop samples), then mean- and
variance-normalised per utterance. Codebook: k-means (scipy.cluster.vq.kmeans2, k-means++ seeding)
with the model's K, fitted on frames of the training utterances only. The resulting codes are
scored by exactly the same code as the model's tokens (`metrics.analyze_tokens`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def mfcc_frames(wav: np.ndarray, sample_rate: int, hop: int, n_mfcc: int = 13,
                win_seconds: float = 0.025, num_frames: int | None = None) -> np.ndarray:
    """[num_frames, 3 * n_mfcc] features, frame i centred at sample (i + 0.5) * hop.
    num_frames defaults to len(wav) // hop (one per whole token)."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if num_frames is None:
        num_frames = max(1, len(wav) // hop)
    n_fft = max(hop, int(round(win_seconds * sample_rate)))
    left = n_fft // 2 - hop // 2          # frame j of the padded signal is centred at j*hop + hop/2
    total = left + num_frames * hop + n_fft
    padded = np.zeros(total, dtype=np.float32)
    n = min(len(wav), total - left)
    padded[left:left + n] = wav[:n]
    mfcc = librosa.feature.mfcc(y=padded, sr=sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop,
                                win_length=n_fft, center=False, n_mels=40)[:, :num_frames]
    if mfcc.shape[1] < num_frames:  # pragma: no cover - padding makes this impossible
        mfcc = np.pad(mfcc, ((0, 0), (0, num_frames - mfcc.shape[1])), mode="edge")
    width = min(9, mfcc.shape[1] if mfcc.shape[1] % 2 else mfcc.shape[1] - 1)
    if width >= 3:
        d1 = librosa.feature.delta(mfcc, width=width, order=1, mode="nearest")
        d2 = librosa.feature.delta(mfcc, width=width, order=2, mode="nearest")
    else:
        d1 = d2 = np.zeros_like(mfcc)
    feats = np.concatenate([mfcc, d1, d2]).T.astype(np.float64)
    feats -= feats.mean(axis=0)
    feats /= feats.std(axis=0) + 1e-5
    return feats


@dataclass
class MFCCKMeans:
    """Fitted baseline tokenizer; `encode` has the codec's signature."""
    centroids: np.ndarray   # [K, dim]
    hop: int
    sample_rate: int

    @property
    def codebook_size(self) -> int:
        return len(self.centroids)

    def encode(self, wav: np.ndarray, sample_rate: int | None = None, num_frames: int | None = None) -> np.ndarray:
        if sample_rate is not None and sample_rate != self.sample_rate:
            from ..audio import resample
            wav = resample(wav, sample_rate, self.sample_rate)
        return self.encode_features(mfcc_frames(wav, self.sample_rate, self.hop, num_frames=num_frames))

    def encode_features(self, feats: np.ndarray) -> np.ndarray:
        from scipy.cluster.vq import vq

        return vq(feats, self.centroids, check_finite=False)[0].astype(np.int64)


def fit_mfcc_kmeans(wavs: Sequence[np.ndarray], sample_rate: int, hop: int, k: int, seed: int = 0,
                    max_frames: int = 100_000, iters: int = 20) -> MFCCKMeans:
    """k-means with `k` centroids on the MFCC frames of `wavs` (at most `max_frames`, sampled)."""
    from scipy.cluster.vq import kmeans2

    feats = np.concatenate([mfcc_frames(w, sample_rate, hop) for w in wavs])
    rng = np.random.default_rng(seed)
    if len(feats) > max_frames:
        feats = feats[rng.choice(len(feats), max_frames, replace=False)]
    k_eff = min(k, len(feats))
    with warnings.catch_warnings():  # "One of the clusters is empty" on tiny data
        warnings.simplefilter("ignore")
        centroids, _ = kmeans2(feats, k_eff, iter=iters, minit="++", seed=rng, check_finite=False)
    return MFCCKMeans(centroids=centroids, hop=hop, sample_rate=sample_rate)
