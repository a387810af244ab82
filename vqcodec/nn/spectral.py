"""Spectral pieces shared by the voice encoder, the fast decoder and its losses.

torch.stft / torch.istft do the transforms (no second implementation); the mel filterbank is
librosa's (Slaney-style, the one `vqcodec eval`'s mel distance uses), computed by `mel_filterbank`
and stored as a non-persistent buffer, so it is rebuilt from the config and never saved in a
checkpoint.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _hz_to_mel(hz):
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    lin = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, lin)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32: the same matrix as librosa.filters.mel with its defaults
    (Slaney scale, Slaney area normalisation; tested against it). Written out here because
    importing librosa (scipy.signal, numba) cost 1.5-2.5 s in every encode/decode/convert command,
    more than decoding a 10 s file; eval and analysis still use librosa itself."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _window(n_fft: int, device, dtype=torch.float32) -> torch.Tensor:
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, pad_mode: str = "reflect") -> torch.Tensor:
    """|STFT| (B, n_fft // 2 + 1, frames) of wav (B, T), Hann window, centred frames."""
    spec = torch.stft(wav, n_fft, hop, window=_window(n_fft, wav.device, wav.dtype), center=True,
                      pad_mode=pad_mode, return_complex=True)
    return spec.abs()


class LogMel(nn.Module):
    """log(mel(|STFT|) + eps): (B, T) -> (B, n_mels, frames)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
                 pad_mode: str = "reflect"):
        super().__init__()
        self.n_fft, self.hop, self.pad_mode = n_fft, hop, pad_mode
        fb = mel_filterbank(sample_rate, n_fft, n_mels)
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.from_magnitude(self.magnitude(wav))

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """|STFT| (B, n_fft // 2 + 1, frames) with this front's framing."""
        return stft_magnitude(wav, self.n_fft, self.hop, self.pad_mode)

    def from_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """|STFT| (B, n_fft // 2 + 1, frames) -> log-mel (B, n_mels, frames)."""
        return torch.log(torch.matmul(self.fb.to(mag.dtype), mag) + 1e-5)


class SpectralLoss(nn.Module):
    """Multi-resolution STFT loss (L1 of log-magnitudes + spectral convergence, averaged over the
    resolutions) plus an L1 log-mel loss: what the fast decoder trains on (Parallel WaveGAN's
    STFT loss, Vocos' mel loss; no adversarial term)."""

    def __init__(self, resolutions, sample_rate: int = 16000, mel_weight: float = 2.0,
                 stft_weight: float = 1.0):
        super().__init__()
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        self.mel = LogMel(sample_rate, 1024, 256, 80)
        self.mel_weight, self.stft_weight = mel_weight, stft_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        mag_loss = pred.new_zeros(())
        sc_loss = pred.new_zeros(())
        for n_fft, hop in self.resolutions:
            p, t = stft_magnitude(pred, n_fft, hop), stft_magnitude(target, n_fft, hop)
            mag_loss = mag_loss + F.l1_loss(torch.log(p + 1e-5), torch.log(t + 1e-5))
            sc_loss = sc_loss + torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-5)
        k = max(len(self.resolutions), 1)
        stft = (mag_loss + sc_loss) / k
        mel = F.l1_loss(self.mel(pred), self.mel(target))
        return {"loss": self.stft_weight * stft + self.mel_weight * mel, "stft": stft, "mel": mel}
