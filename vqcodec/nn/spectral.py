"""Spectral pieces shared by the voice encoder, the fast decoder and its losses.

torch.stft / torch.istft do the transforms (no second implementation); the mel filterbank is
librosa's (Slaney-style, the one `vqcodec eval`'s mel distance uses), computed by `mel_filterbank`
and stored as a non-persistent buffer, so it is rebuilt from the config and never saved in a
checkpoint.
"""
from __future__ import annotations

import math

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


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping to [-pi, pi]: the distance of two phases, blind to whole turns (APNet)."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def phase_losses(mag: torch.Tensor, phase: torch.Tensor, target: torch.Tensor, n_fft: int,
                 hop: int) -> dict[str, torch.Tensor]:
    """APNet-style phase losses (Ai & Ling, arXiv 2305.07952) of predicted STFT frames against the
    target waveform's STFT at the same framing (Hann, centred; T frames of T * hop samples):
    anti-wrapped instantaneous phase ("ip"), group delay (the phase difference between neighbouring
    bins, "gd") and instantaneous frequency (between neighbouring frames, "iaf"), and the STFT
    consistency ("consistency": the L1 distance, real and imaginary parts, between the frames and
    the STFT of their own iSTFT; a frame set no waveform has is lost in the overlap-add).
    mag, phase (B, n_fft // 2 + 1, T); target (B, T * hop). Costs two STFTs and one iSTFT."""
    T = phase.shape[-1]
    window = _window(n_fft, target.device, target.dtype)

    def stft(wav):
        return torch.stft(wav, n_fft, hop, window=window, center=True, return_complex=True)[..., :T]

    true = stft(target).angle()
    spec = torch.polar(mag, phase)
    resynth = stft(torch.istft(spec, n_fft, hop, window=window, center=True, length=T * hop))
    out = {"ip": anti_wrap(phase - true).mean(),
           "gd": anti_wrap(torch.diff(phase, dim=1) - torch.diff(true, dim=1)).mean(),
           "iaf": anti_wrap(torch.diff(phase, dim=2) - torch.diff(true, dim=2)).mean(),
           "consistency": (resynth - spec).real.abs().mean() + (resynth - spec).imag.abs().mean()}
    out["phase"] = out["ip"] + out["gd"] + out["iaf"] + out["consistency"]
    return out


class SpectralLoss(nn.Module):
    """Multi-resolution STFT loss (L1 of log-magnitudes + spectral convergence, averaged over the
    resolutions) plus an L1 log-mel loss: what the fast decoder trains on (Parallel WaveGAN's
    STFT loss, Vocos' mel loss). With phase_weight > 0 also `phase_losses` on the decoder's own
    frames (pass them as `frames`), at the decoder's framing `phase_frame` = (n_fft, hop)."""

    def __init__(self, resolutions, sample_rate: int = 16000, mel_weight: float = 2.0,
                 stft_weight: float = 1.0, phase_weight: float = 0.0, phase_frame: tuple[int, int] = (256, 64)):
        super().__init__()
        if phase_weight < 0:
            raise ValueError("model.loss.phase_weight must be >= 0 (0: off)")
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        self.mel = LogMel(sample_rate, 1024, 256, 80)
        self.mel_weight, self.stft_weight = mel_weight, stft_weight
        self.phase_weight, self.phase_frame = phase_weight, phase_frame

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                frames: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        mag_loss = pred.new_zeros(())
        sc_loss = pred.new_zeros(())
        for n_fft, hop in self.resolutions:
            p, t = stft_magnitude(pred, n_fft, hop), stft_magnitude(target, n_fft, hop)
            mag_loss = mag_loss + F.l1_loss(torch.log(p + 1e-5), torch.log(t + 1e-5))
            sc_loss = sc_loss + torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-5)
        k = max(len(self.resolutions), 1)
        stft = (mag_loss + sc_loss) / k
        mel = F.l1_loss(self.mel(pred), self.mel(target))
        out = {"loss": self.stft_weight * stft + self.mel_weight * mel, "stft": stft, "mel": mel}
        if self.phase_weight > 0:
            if frames is None:
                raise ValueError("the phase losses need the decoder's STFT frames (magnitude, phase)")
            phase = phase_losses(*frames, target, *self.phase_frame)
            out = {**out, **phase, "loss": out["loss"] + self.phase_weight * phase["phase"]}
        return out
