"""A classical tokenizer to compare with: k-means on MFCC frames at the model's token rate.

Features: 13 MFCCs (25 ms window) + deltas + delta-deltas = 39 dims, one frame per `hop` samples,
each frame centred on the matching token's centre ((i + 0.5) * hop samples), then mean- and
variance-normalised per utterance. Codebook: scikit-learn's MiniBatchKMeans (k-means++ seeding on
a subsample, mini-batches of 8192 frames) with the model's K, fitted on at most 100,000 frames of
the training utterances only; frames are assigned with `pairwise_distances_argmin` (BLAS, chunked).
scipy's kmeans2 was here before: its k-means++ seeding is a Python loop, 80 s for 10,000 frames at
K=512 (the 744 s of issue 11); MiniBatchKMeans fits 100,000 frames in ~15 s on a busy 2-core machine. The resulting codes are
scored by exactly the same code as the model's tokens (`metrics.analyze_tokens`).

The same k-means also runs on the model's own encoder outputs z_e (`encoder_frames`: the
continuous vectors the quantizer rounds to the nearest codebook entry), so the report can tell
what the learnt codebook adds or loses over clustering the same features at the same K and rate.
z_e is not normalised per utterance (the quantizer sees it raw); MFCCs are.
"""
from __future__ import annotations

import functools
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
    mfcc = _mfcc(padded, sample_rate, n_mfcc, n_fft, hop)[:, :num_frames]
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


def _mfcc(y: np.ndarray, sr: int, n_mfcc: int, n_fft: int, hop: int, n_mels: int = 40) -> np.ndarray:
    """What librosa.feature.mfcc(y, sr, n_mfcc, n_fft=n_fft, hop_length=hop, win_length=n_fft,
    center=False, n_mels=n_mels) computes (power mel spectrogram, power_to_db, orthonormal DCT-II),
    with the mel projection as one matrix product: librosa's einsum for it took 90% of the
    baseline's MFCC time (50 of 57 CPU-seconds per hour of audio)."""
    import librosa
    import scipy.fft

    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=n_fft, center=False)) ** 2
    mel = _mel_basis(sr, n_fft, n_mels) @ power
    return scipy.fft.dct(librosa.power_to_db(mel), axis=0, type=2, norm="ortho")[:n_mfcc]


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    from ..nn.spectral import mel_filterbank  # librosa.filters.mel's matrix (tested equal)

    return mel_filterbank(sr, n_fft, n_mels)


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
        return assign(feats, self.centroids)


def fit_mfcc_kmeans(wavs: Sequence[np.ndarray], sample_rate: int, hop: int, k: int, seed: int = 0,
                    max_frames: int = 100_000, feats: np.ndarray | None = None) -> MFCCKMeans:
    """k-means with `k` centroids on the MFCC frames of `wavs` (at most `max_frames`, sampled), or
    on `feats` when the frames are already computed."""
    if feats is None:
        feats = np.concatenate([mfcc_frames(w, sample_rate, hop) for w in wavs])
    return MFCCKMeans(centroids=fit_kmeans(feats, k, seed, max_frames), hop=hop, sample_rate=sample_rate)


def fit_kmeans(feats: np.ndarray, k: int, seed: int = 0, max_frames: int = 100_000) -> np.ndarray:
    """[k', dim] centroids (k' = k, or fewer when there are fewer distinct frames) of
    MiniBatchKMeans on `feats` (a random `max_frames` of them when there are more)."""
    from sklearn.cluster import MiniBatchKMeans

    feats = np.asarray(feats, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(feats) > max_frames:
        feats = feats[rng.choice(len(feats), max_frames, replace=False)]
    k_eff = min(k, len(np.unique(feats, axis=0)) if len(feats) <= 4 * k else k)
    with _one_thread():
        km = MiniBatchKMeans(n_clusters=k_eff, init="k-means++", n_init=1, batch_size=8192,
                             random_state=seed, compute_labels=False).fit(feats)
    return km.cluster_centers_.astype(np.float64)


def assign(feats: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each frame (int64)."""
    from sklearn.metrics import pairwise_distances_argmin

    with _one_thread():
        return pairwise_distances_argmin(np.asarray(feats, dtype=np.float64), centroids).astype(np.int64)


def _one_thread():
    """BLAS and OpenMP limited to one thread: on 2 cores shared with other work, MiniBatchKMeans
    with 2 threads took 194 s where 1 thread took 29 s (5,000 frames, K=512, load average 12;
    bench/analysis_speed.py), as with generation (`generate.sample_stream`)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def has_encoder(codec) -> bool:
    """Whether `encoder_frames` can run on this codec (a `vqcodec.api.Codec`, v1 or v2)."""
    return all(hasattr(codec, a) for a in ("prepare", "gain_of")) and \
        getattr(getattr(codec, "model", None), "encoder", None) is not None


def encoder_frames(codec, wav: np.ndarray, sample_rate: int, num_frames: int | None = None) -> np.ndarray:
    """[frames, D] continuous encoder outputs z_e of a waveform, one row per token, in float64:
    the input prepared and level-normalised as `Codec.encode_utterance` does it (v2 models; v1
    models have gain 1), zero-padded to whole tokens and encoded in one pass (the analysis runs on
    utterances of seconds, not hours). `num_frames` trims or edge-pads to the token count."""
    import torch

    wav = codec.prepare(wav, sample_rate)
    hop = int(codec.hop)
    x = np.zeros(-(-len(wav) // hop) * hop, dtype=np.float32)
    x[:len(wav)] = wav * np.float32(codec.gain_of(wav))
    encoder = codec.model.encoder
    device = next(encoder.parameters()).device
    with torch.inference_mode():
        z = encoder(torch.from_numpy(x).view(1, -1).to(device))[0].T.double().cpu().numpy()
    if num_frames is not None and len(z) != num_frames:
        z = z[:num_frames] if len(z) > num_frames else np.pad(z, ((0, num_frames - len(z)), (0, 0)), mode="edge")
    return z
