"""Training-only pushes towards speaker-independent tokens (issue 14; `[model.invariance]`).

Tokens should carry the phones, not the speaker: the decoder gets the speaker from the voice
vector, so whatever speaker identity the tokens keep costs bits and makes voice conversion leak.
Two independent pushes, both off by default and both absent at inference:

* `frequency_warp` (VTLP, Jaitly & Hinton 2013): the ENCODER INPUT of each training crop is warped
  along the frequency axis by a random factor, which scales pitch and formants together (roughly
  what differs between a short and a long vocal tract) without changing duration. The decoder
  still has to rebuild the original crop from these tokens plus the unwarped voice vector, so the
  encoder gains nothing by keeping the input's spectral scale in its tokens.
* `SpeakerAdversary`: a speaker classifier on the encoder outputs z_e behind a gradient-reversal
  layer (Ganin & Lempitsky 2015): the classifier learns to find the speaker, the encoder gets the
  opposite gradient and learns to hide it.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

WARP_N_FFT = 512
WARP_HOP = 128


def random_warp_factors(batch: int, warp: float) -> torch.Tensor:
    """(batch,) factors log-uniform in [1/(1+warp), 1+warp], drawn on the CPU from torch's global RNG
    (the training loop seeds it and saves it in checkpoints: exact resume, same on CPU and GPU)."""
    span = math.log1p(warp)
    return torch.exp((2 * torch.rand(batch) - 1) * span)


def _princarg(phase: torch.Tensor) -> torch.Tensor:
    return phase - 2 * math.pi * torch.round(phase / (2 * math.pi))


def _lerp(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x (F, N) linearly interpolated along N at positions pos (M,) in [0, N - 1]."""
    lo = pos.floor().long().clamp(max=x.shape[-1] - 1)
    hi = (lo + 1).clamp(max=x.shape[-1] - 1)
    frac = (pos - lo).to(x.dtype)
    return x[:, lo] * (1 - frac) + x[:, hi] * frac


def _fourier_resample(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (T,) -> (n,) band-limited: every frequency times T / n (content past Nyquist dropped)."""
    spec = torch.fft.rfft(x)
    bins = n // 2 + 1
    spec = spec[:bins] if bins <= len(spec) else F.pad(spec, (0, bins - len(spec)))
    return torch.fft.irfft(spec, n=n) * (n / len(x))


@torch.no_grad()
def frequency_warp(wav: torch.Tensor, alpha: torch.Tensor, n_fft: int = WARP_N_FFT,
                   hop: int = WARP_HOP) -> torch.Tensor:
    """wav (B, T), alpha (B,) -> (B, T): every frequency f moved to alpha * f (pitch and formants),
    same length and timing, each item rescaled to its original RMS.

    Band-limited resampling to T / alpha samples moves every frequency by alpha (and the duration
    by 1 / alpha); a phase vocoder (Hann STFT, magnitudes interpolated between frames,
    instantaneous frequencies integrated into the phase, iSTFT) stretches it back to T samples.
    Warping the spectrum along frequency instead (bin k <- bin k / alpha) would also widen or
    narrow each partial's window lobe, which the iSTFT turns into sidebands at the frame rate.
    Phases are taken relative to the frame centre (the (-1)^k factor), where the bins of one
    partial share a phase, so they stay in phase. alpha = 1 gives back the input (float rounding).
    librosa.effects.pitch_shift does the same on numpy arrays; this runs in torch on the training
    device, on the whole batch, without a round trip through numpy."""
    B, T = wav.shape
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    bins = n_fft // 2 + 1
    k = torch.arange(bins, device=wav.device)
    centre = (1 - 2 * (k % 2)).to(wav.dtype)[:, None]  # (-1)^k: frame-start -> frame-centre phase
    expected = (2 * math.pi * hop / n_fft) * k.double()[:, None]  # phase advance per hop of bin k
    out_frames = T // hop + 1
    out = []
    for x, a in zip(wav, alpha.tolist()):
        n = max(2, round(T / a))
        spec = torch.stft(_fourier_resample(x, n), n_fft, hop, window=window, return_complex=True,
                          pad_mode="constant" if n <= n_fft // 2 else "reflect") * centre
        phase = spec.angle().double()
        advance = torch.diff(phase, dim=-1, prepend=phase[:, :1] - expected)
        inst = expected + _princarg(advance - expected)  # radians per hop, the same in and out
        pos = (torch.arange(out_frames, device=wav.device, dtype=torch.float64) * (n / T)).clamp(
            max=spec.shape[-1] - 1)
        steps = torch.cat([phase[:, :1], _princarg(_lerp(inst, pos)[:, 1:])], dim=-1)
        out.append(torch.polar(_lerp(spec.abs(), pos), torch.cumsum(steps, -1).to(wav.dtype)) * centre)
    y = torch.istft(torch.stack(out), n_fft, hop, window=window, length=T)
    rms_in = wav.pow(2).mean(-1, keepdim=True).sqrt()
    rms_out = y.pow(2).mean(-1, keepdim=True).sqrt()
    return y * (rms_in / rms_out.clamp_min(1e-8))


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flowing back through it is multiplied by -scale."""
    return _ReverseGradient.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """Speaker classifier over z_e (B, D, T): a per-frame MLP (1x1 convs), logits averaged over
    time -> one prediction per crop. Trained with the full cross-entropy; the encoder receives
    -weight times its gradient (reverse_gradient). Training-only: inference never calls it."""

    def __init__(self, dim: int, num_speakers: int, weight: float, hidden: int = 256):
        super().__init__()
        self.weight = weight
        self.net = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.GELU(), nn.Conv1d(hidden, hidden, 1), nn.GELU(),
                                 nn.Conv1d(hidden, num_speakers, 1))

    def forward(self, z_e: torch.Tensor, speakers: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"adv": cross-entropy, "spk_acc": share of crops whose speaker it finds}."""
        logits = self.net(reverse_gradient(z_e, self.weight)).mean(-1)
        return {"adv": F.cross_entropy(logits, speakers),
                "spk_acc": (logits.argmax(-1) == speakers).float().mean()}
