"""Spectral pieces shared by the voice encoder, the fast decoder and its losses.

torch.stft / torch.istft do the transforms (no second implementation); the mel filterbank comes
from librosa (Slaney-style, the same one `vqcodec eval`'s mel distance uses) and is stored as a
non-persistent buffer, so it is rebuilt from the config and never saved in a checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _window(n_fft: int, device, dtype=torch.float32) -> torch.Tensor:
    return torch.hann_window(n_fft, device=device, dtype=dtype)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| (B, n_fft // 2 + 1, frames) of wav (B, T), Hann window, centred frames."""
    spec = torch.stft(wav, n_fft, hop, window=_window(n_fft, wav.device, wav.dtype), center=True,
                      return_complex=True)
    return spec.abs()


class LogMel(nn.Module):
    """log(mel(|STFT|) + eps): (B, T) -> (B, n_mels, frames)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
        super().__init__()
        import librosa

        self.n_fft, self.hop = n_fft, hop
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2)
        self.register_buffer("fb", torch.from_numpy(fb).float(), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        mag = stft_magnitude(wav, self.n_fft, self.hop)
        return torch.log(torch.matmul(self.fb, mag) + 1e-5)


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
