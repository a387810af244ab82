"""The harmonic excitation (`model.fast.excitation = "harmonic"`, issue 22): what a neural
source-filter / DDSP vocoder feeds its filter, given to the fast decoder as STFT-frame features.

Why: the fast decoder has to invent the harmonic fine structure from tokens and coarse pitch
features; measured on real speech, v2's harmonics stop at about 1.5 kHz and the band above is
noise-like (harmonicity 1.5-4 kHz 0.15 against the original's 0.41). NSF (arXiv 1810.11946) found
a sine excitation at the known F0 essential. Here the excitation is not the signal the iSTFT head
shapes (its magnitude and phase stay the network's own, which the spectral and phase losses
train); the decoder *sees* the source: each STFT frame of it, at the decoder's n_fft and hop, as a
log-magnitude spectrum projected into the ConvNeXt input. The network then has harmonic combs up
to Nyquist, at the exact F0, to copy from.

    per-token F0 (B, T) --held for the token's hop samples--> per-sample F0 around each frame
      --phase accumulated sample by sample from the frame centre, sum of the harmonics below Nyquist-->
    frames (B, T, n_fft) --Hann, |rfft|^2 + the noise's expected power, log--> (B, n_fft/2+1, T)

Each frame is synthesised on its own (phase 0 at its centre), so a frame depends only on the F0 of
the tokens its window spans: chunked decoding stays exact with ceil(n_fft / (2 hop)) more tokens
of context, and there is no randomness. The noise part (NSF: voiced frames a little noise,
unvoiced frames only noise) enters through its expected power spectrum, which for white noise
under a Hann window is flat (sigma^2 sum w^2): a random draw would make decoding non-deterministic
and depend on where a chunk starts.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SINE_AMPLITUDE = 0.1      # NSF's choice: each harmonic's amplitude
VOICED_NOISE_STD = 0.003  # noise under the harmonics in voiced frames
UNVOICED_NOISE_STD = SINE_AMPLITUDE / 3  # unvoiced frames: noise only


def harmonic_sum(phase: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """SINE_AMPLITUDE * sum_{k=1..K} sin(k phase), elementwise (K may change from sample to sample).
    Closed form sum_{k<=K} sin(k phi) = sin(K phi/2) sin((K+1) phi/2) / sin(phi/2): three sines a
    sample, not one per harmonic."""
    psi = phase - 2 * math.pi * torch.round(phase / (2 * math.pi))   # the same angle in [-pi, pi]
    den = torch.sin(psi / 2)
    small = psi.abs() < 1e-3  # near 0 the quotient is 0 / 0: there sum_k sin(k psi) ~ psi K (K + 1) / 2
    closed = torch.sin(K * psi / 2) * torch.sin((K + 1) * psi / 2) / torch.where(small, torch.ones_like(den), den)
    return SINE_AMPLITUDE * torch.where(small, psi * K * (K + 1) / 2, closed)


def harmonics_below_nyquist(f0: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """K: how many harmonics k * F0 lie below sample_rate / 2 (0 where F0 is 0: unvoiced)."""
    return torch.where(f0 > 0, torch.ceil((sample_rate / 2) / f0.clamp_min(1.0)) - 1, torch.zeros_like(f0))


def harmonic_source(f0: torch.Tensor, sample_rate: int, centre: int = 0) -> torch.Tensor:
    """Sum of the harmonics k * F0 < sample_rate / 2, each of amplitude SINE_AMPLITUDE, of a per-sample
    F0 (..., L) in Hz (0: unvoiced, silent there); the phase is accumulated sample by sample, 0 at
    index `centre`."""
    f0 = f0.float()
    cum = torch.cumsum(f0, -1)
    phase = 2 * math.pi / sample_rate * (cum - cum[..., centre:centre + 1])
    return harmonic_sum(phase, harmonics_below_nyquist(f0, sample_rate))


def source_phase(f0_tokens: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """The phase (radians, in [0, 2 pi), float64) of `continuous_source` at each token's first sample:
    2 pi / sample_rate * hop * sum of the earlier tokens' F0, (B, T). Computed once for a whole
    sequence and sliced, it makes a chunk's source the whole file's (decoders.FastDecoder)."""
    steps = f0_tokens.double() * (2 * math.pi * hop / sample_rate)
    cum = torch.cumsum(steps, -1) - steps
    return torch.remainder(cum, 2 * math.pi)


def continuous_source(f0_tokens: torch.Tensor, phase0: torch.Tensor, sample_rate: int, hop: int) -> torch.Tensor:
    """The harmonic source as a waveform (B, T * hop): each token's F0 held for its hop samples, the
    phase continuous across tokens, starting from `phase0` (B, T) (`source_phase`) at each token's
    first sample. Unlike `excitation_frames` (phase 0 at every frame's centre, features only), this is
    a signal whose harmonics stay coherent from frame to frame: what the "source" decoder filters."""
    B, T = f0_tokens.shape
    f0 = f0_tokens.float()
    n = torch.arange(hop, device=f0.device, dtype=torch.float32)
    phase = phase0.float()[..., None] + (2 * math.pi / sample_rate) * f0[..., None] * n       # (B, T, hop)
    K = harmonics_below_nyquist(f0, sample_rate)[..., None].expand(B, T, hop)
    return harmonic_sum(phase, K).reshape(B, T * hop)


def excitation_frames(f0_tokens: torch.Tensor, sample_rate: int, hop: int, n_fft: int) -> torch.Tensor:
    """Per-token F0 (B, T) in Hz -> log power spectra (B, n_fft // 2 + 1, T) of the sine + noise
    source, frame t centred on sample t * hop (the iSTFT head's framing); F0 beyond the ends is
    the edge token's."""
    B, T = f0_tokens.shape
    samples = f0_tokens.float().repeat_interleave(hop, dim=1)                     # (B, T * hop)
    pad = n_fft // 2
    samples = F.pad(samples[:, None], (pad, pad), mode="replicate")[:, 0]
    frames = samples.unfold(1, n_fft, hop)[:, :T]                                  # (B, T, n_fft)
    window = torch.hann_window(n_fft, device=f0_tokens.device)
    spec = torch.fft.rfft(harmonic_source(frames, sample_rate, centre=pad) * window, dim=-1)
    return log_power_with_noise(spec.transpose(1, 2), f0_tokens, window)


def log_power_with_noise(spec: torch.Tensor, f0_tokens: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """log(|spec|^2 + the NSF noise's expected power) (B, F, T), the noise's level set by each frame's
    voicing (see the module docstring)."""
    voiced = (f0_tokens > 0).float()[:, None, :]
    noise_std = voiced * VOICED_NOISE_STD + (1 - voiced) * UNVOICED_NOISE_STD
    noise_power = noise_std.square() * window.square().sum()
    return torch.log(spec.abs().square() + noise_power + 1e-8)
