"""The pitch stream (issue 14; `[model.pitch]`): a coarse F0 contour given to the fast decoder
apart from the tokens.

Why: with no pitch given to it, the iSTFT decoder has to find the excitation (F0, voicing) in the
tokens, so the tokens split phones by pitch and carry the speaker (measured: a classifier names the
speaker from token histograms 100% of the time). Speech resynthesis from discrete units (Polyak et
al. 2021, "Speech Resynthesis from Discrete Disentangled Self-Supervised Representations") gives
the decoder three separate streams: content units, a quantized F0 contour and a speaker vector.
This module is the F0 part:

    wav (B, T) --yin_f0 (one value every `every` tokens)--> f0 in Hz (B, P), 0 = unvoiced
      --quantize: semitones from the utterance's median F0, `levels - 1` steps over +-`semitones`-->
    levels (B, P) ints in [0, levels), 0 = unvoiced       (in the .vqc file, with the median)
      --features (F0 = median x 2^(semitones / 12), log scale, Fourier features)--> (B, F, T tokens)

Conversion keeps the contour (levels) and replaces the median by the reference voice's: the new
voice speaks with the source's intonation at its own pitch.

The F0 tracker is YIN (de Cheveigne & Kawahara 2002), written here in torch rather than taken from
librosa: it runs on training batches on the GPU, inside the model's forward pass, and the codec
commands never import librosa (its import costs a second of start-up). `tests/test_pitch.py`
checks it against librosa.yin.
"""
from __future__ import annotations

import math

import torch

F0_REFERENCE_HZ = 100.0   # features use log2(F0 / 100 Hz)
FOURIER_FEATURES = 7      # sin/cos pairs of the log F0 at octave scales 1..7 halves
NUM_FEATURES = 2 + 2 * FOURIER_FEATURES


def yin_f0(wav: torch.Tensor, sample_rate: int, hop: int, f0_min: float = 50.0, f0_max: float = 500.0,
           threshold: float = 0.15, silence_rms: float = 0.003, window: int = 400,
           max_frames: int = 1024) -> torch.Tensor:
    """F0 in Hz (B, P) of wav (B, T), 0 where unvoiced; P = ceil(T / hop), frame p centred on sample
    p * hop + hop // 2 (zeros beyond the ends). Each frame is a function of its own samples only, so
    any split of a file gives the same values. Unvoiced: frame RMS below `silence_rms` (inputs are
    level-normalised to RMS 0.1: -30 dB), or no lag whose cumulative-mean-normalised difference
    falls below `threshold`. The lag is the first dip below the threshold (its minimum), refined
    by a parabola through its neighbours."""
    if wav.ndim != 2:
        raise ValueError(f"yin_f0 wants (batch, samples), got shape {tuple(wav.shape)}")
    B, T = wav.shape
    P = -(-T // hop)
    max_lag = int(math.ceil(sample_rate / f0_min))
    min_lag = max(2, int(math.floor(sample_rate / f0_max)))
    length = yin_frame_length(sample_rate, f0_min, window)
    start0 = hop // 2 - length // 2
    pad_l = max(0, -start0)
    pad_r = max(0, (P - 1) * hop + start0 + length - T)
    x = torch.nn.functional.pad(wav.float(), (pad_l, pad_r))
    frames = x[:, start0 + pad_l:].unfold(1, length, hop)[:, :P]  # frame p starts at p * hop + start0 (a view)
    rows = max(1, max_frames // max(P, 1))  # bounded memory: about max_frames frames copied at once
    out = []
    for b in range(0, B, rows):
        blocks = []
        for i in range(0, P, max_frames):
            block = frames[b:b + rows, i:i + max_frames]
            blocks.append(_yin_frames(block.reshape(-1, length), sample_rate, window, min_lag, max_lag,
                                      threshold, silence_rms).view(block.shape[0], block.shape[1]))
        out.append(torch.cat(blocks, 1))
    return torch.cat(out, 0)


def yin_frame_length(sample_rate: int, f0_min: float, window: int = 400) -> int:
    """Samples one YIN frame spans (its integration window plus the longest lag): a frame depends on
    nothing farther than this from its centre, which is the margin blocked computation needs."""
    return window + int(math.ceil(sample_rate / f0_min)) + 1


def _yin_frames(frames: torch.Tensor, sample_rate: int, window: int, min_lag: int, max_lag: int,
                threshold: float, silence_rms: float) -> torch.Tensor:
    N, L = frames.shape
    f = frames.double()  # the difference function subtracts large, nearly equal sums
    n_fft = _fast_size(L + window - 1)  # linear (not circular) correlation up to max_lag
    spec = torch.fft.rfft(f, n_fft)
    head = torch.fft.rfft(f[:, :window], n_fft)
    corr = torch.fft.irfft(spec * head.conj(), n_fft)[:, :max_lag + 1]        # r(tau) = sum x_j x_{j+tau}
    sq = torch.nn.functional.pad(f.square().cumsum(1), (1, 0))
    energy_lag = sq[:, window:window + max_lag + 1] - sq[:, :max_lag + 1]      # sum_{j=tau}^{tau+W-1} x_j^2
    diff = (energy_lag[:, :1] + energy_lag - 2 * corr).clamp_min(0)            # d(tau)
    cum = diff[:, 1:].cumsum(1)
    lags = torch.arange(1, max_lag + 1, dtype=torch.float64)
    cmnd = torch.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags / cum.clamp_min(1e-12)
    idx = torch.arange(max_lag + 1)
    below = (cmnd < threshold) & (idx >= min_lag) & (idx < max_lag)
    voiced = below.any(1)
    first = below.int().argmax(1, keepdim=True)
    after = idx[None, :] >= first
    dip = torch.cumprod((below | ~after).int(), 1).bool() & after              # the first run below
    tau = torch.where(dip, cmnd, torch.full_like(cmnd, math.inf)).argmin(1).clamp(1, max_lag - 1)
    c = cmnd.gather(1, torch.stack([tau - 1, tau, tau + 1], 1))
    denom = c[:, 0] - 2 * c[:, 1] + c[:, 2]
    shift = torch.where(denom.abs() > 1e-12, 0.5 * (c[:, 0] - c[:, 2]) / denom, torch.zeros_like(denom))
    period = tau.double() + shift.clamp(-1, 1)
    rms = (sq[:, window] / window).sqrt()
    voiced &= rms >= silence_rms
    return torch.where(voiced, sample_rate / period, torch.zeros_like(period)).float()


def _fast_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: an FFT length as fast as a power of two, often much shorter.
    (scipy.fft.next_fast_len does this, but importing scipy.fft costs the codec 0.4 s of start-up.)"""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class PitchQuantizer:
    """F0 (Hz, 0 = unvoiced) <-> levels: 0 unvoiced, 1..levels-1 semitone steps around the median.

    `levels - 1` voiced levels span [-semitones, +semitones] around the utterance's median F0
    (levels 32, 12 semitones: 0.8 semitone steps, 5 bits a value); values outside are clipped."""

    def __init__(self, levels: int, semitones: float):
        if levels < 3:
            raise ValueError(f"model.pitch.levels must be 0 (off) or at least 3, got {levels}")
        if not semitones > 0:
            raise ValueError(f"model.pitch.semitones must be positive, got {semitones}")
        self.levels = levels
        self.step = 2 * semitones / (levels - 2)
        self.centre = 1 + (levels - 2) / 2

    @staticmethod
    def median(f0: torch.Tensor) -> torch.Tensor:
        """(B,) median F0 of each row's voiced frames (geometric: the median of log F0); 0 if none."""
        out = torch.zeros(f0.shape[0], dtype=torch.float32, device=f0.device)
        for b in range(f0.shape[0]):
            v = f0[b][f0[b] > 0]
            if v.numel():
                out[b] = torch.exp(torch.log(v).median())
        return out

    def quantize(self, f0: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        """f0 (B, P), median (B,) -> levels (B, P) int64."""
        semis = 12 * torch.log2(f0.clamp_min(1e-3) / median.clamp_min(1e-3)[:, None])
        q = torch.round(semis / self.step + self.centre).clamp(1, self.levels - 1).long()
        return torch.where((f0 > 0) & (median[:, None] > 0), q, torch.zeros_like(q))

    def dequantize(self, levels: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        """levels (B, P), median (B,) -> F0 in Hz (B, P), 0 where unvoiced."""
        f0 = median[:, None] * torch.exp2((levels.float() - self.centre) * self.step / 12)
        return torch.where(levels > 0, f0, torch.zeros_like(f0))


def pitch_features(f0: torch.Tensor, every: int, num_tokens: int) -> torch.Tensor:
    """F0 (B, P) in Hz (0 unvoiced) -> decoder input (B, NUM_FEATURES, num_tokens): voicing, log2 F0
    relative to 100 Hz, and sin/cos of it at several scales (a smooth code a linear layer can use),
    each pitch value held for its `every` tokens."""
    voiced = (f0 > 0).float()
    x = torch.log2(f0.clamp_min(1.0) / F0_REFERENCE_HZ) * voiced
    k = torch.arange(1, FOURIER_FEATURES + 1, dtype=x.dtype, device=x.device)
    ang = math.pi * x[..., None] * k / 2
    feats = torch.cat([voiced[..., None], x[..., None], torch.sin(ang) * voiced[..., None],
                       torch.cos(ang) * voiced[..., None]], -1)                 # (B, P, F)
    feats = feats.repeat_interleave(every, dim=1)[:, :num_tokens]
    if feats.shape[1] < num_tokens:
        raise ValueError(f"pitch stream too short: {f0.shape[1]} values for {num_tokens} tokens")
    return feats.transpose(1, 2).contiguous()


def f0_of_features(feats: torch.Tensor) -> torch.Tensor:
    """The inverse of `pitch_features`: (B, NUM_FEATURES, T) -> F0 in Hz per token (B, T), 0 where
    unvoiced (from the voicing and log2 F0 rows; equal to the held F0 to float rounding)."""
    voiced = feats[:, 0] > 0.5
    f0 = F0_REFERENCE_HZ * torch.exp2(feats[:, 1])
    return torch.where(voiced, f0, torch.zeros_like(f0))
