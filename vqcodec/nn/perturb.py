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


# ----------------------------------------------------------------------------------------------
# Speaker perturbation of the log-mel encoder input (issue 20): NANSY / FreeVC-style analysis input.
# The encoder sees a copy of each crop whose formants, pitch and channel are changed at random and
# independently; the decoder must rebuild the CLEAN crop from the tokens, the pitch stream and the
# voice vector of another clip of the same speaker. Whatever of the speaker the tokens could carry
# (formant positions, F0, spectral tilt) is then noise to them, and the voice vector is the only
# reliable source of the timbre. Done on the log-magnitude STFT that the log-mel front computes
# anyway (no resynthesis), so it costs two small FFTs per frame.

def random_eq(batch: int, num_bins: int, sample_rate: int, max_db: float, peaks: int = 4) -> torch.Tensor:
    """(batch, num_bins) random parametric EQ curves in dB over the STFT bins 0..Nyquist: `peaks`
    bell filters (centre log-uniform in 150 Hz..6 kHz, gain uniform in +-max_db, width 0.3-1.5 octave,
    Gaussian in log-frequency) plus a low and a high shelf (+-max_db / 2, corners 300 Hz-1 kHz and
    2-5 kHz)."""
    freqs = torch.linspace(0, sample_rate / 2, num_bins).clamp_min(20.0)
    octave = torch.log2(freqs)[None]                                        # (1, F)
    u = torch.rand(batch, peaks, 3)
    centre = math.log2(150) + u[..., 0] * (math.log2(6000) - math.log2(150))
    gain = (2 * u[..., 1] - 1) * max_db
    width = 0.3 + 1.2 * u[..., 2]
    bells = gain[..., None] * torch.exp(-0.5 * ((octave[:, None] - centre[..., None]) / width[..., None]) ** 2)
    s = torch.rand(batch, 4)
    low_corner = math.log2(300) + s[:, 0:1] * (math.log2(1000) - math.log2(300))
    high_corner = math.log2(2000) + s[:, 1:2] * (math.log2(5000) - math.log2(2000))
    low = (s[:, 2:3] - 0.5) * max_db * torch.sigmoid(4 * (low_corner - octave))
    high = (s[:, 3:4] - 0.5) * max_db * torch.sigmoid(4 * (octave - high_corner))
    return bells.sum(1) + low + high


def spectral_envelope(log_mag: torch.Tensor, lifter: int) -> torch.Tensor:
    """The smooth envelope of log-magnitude spectra (B, F, T), F = n_fft // 2 + 1: the real cepstrum
    kept below quefrency `lifter` samples (shorter than a pitch period), transformed back."""
    n_fft = 2 * (log_mag.shape[1] - 1)
    cep = torch.fft.irfft(log_mag.transpose(1, 2), n=n_fft)                 # (B, T, n_fft), real, even
    keep = torch.zeros(n_fft, dtype=log_mag.dtype, device=log_mag.device)
    keep[:lifter] = 1
    keep[n_fft - lifter + 1:] = 1
    return torch.fft.rfft(cep * keep).real.transpose(1, 2)


def _warp_bins(x: torch.Tensor, ratio: torch.Tensor, fill: float | None) -> torch.Tensor:
    """x (B, F, T) along F: out[k] = x[k / ratio] (linear interpolation), so a feature at bin k moves
    to ratio * k. Past the last bin: the edge value (fill None) or `fill`."""
    B, F_, _ = x.shape
    pos = torch.arange(F_, dtype=x.dtype, device=x.device)[None] / ratio.to(x)[:, None]   # (B, F)
    lo = pos.floor().clamp(0, F_ - 1)
    frac = (pos - lo)[..., None]
    lo = lo.long()
    hi = (lo + 1).clamp(max=F_ - 1)
    gather = lambda idx: torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
    out = gather(lo) * (1 - frac) + gather(hi) * frac
    if fill is not None:
        out = torch.where((pos > F_ - 1)[..., None], torch.full_like(out, fill), out)
    return out


def perturb_log_spectrum(log_mag: torch.Tensor, formant: torch.Tensor, pitch: torch.Tensor,
                         eq_db: torch.Tensor | None, lifter: int) -> torch.Tensor:
    """log|STFT| (B, F, T) of a crop -> the same crop as another speaker and channel might give it:
    the spectral envelope (formants) scaled in frequency by `formant` (B,), the harmonic fine
    structure (F0 and its harmonics) by `pitch` (B,), independently, and `eq_db` (B, F) added.
    Envelope and fine structure are split by cepstral liftering (`spectral_envelope`)."""
    envelope = spectral_envelope(log_mag, lifter)
    fine = log_mag - envelope
    out = _warp_bins(envelope, formant, None) + _warp_bins(fine, pitch, 0.0)
    if eq_db is not None:
        out = out + eq_db.to(out)[..., None] * (math.log(10) / 20)
    return out


class SpeakerPerturbation:
    """Draws and applies the random speaker perturbation of `model.invariance` (formant_shift,
    pitch_shift, eq_db, eq_peaks) to log-magnitude spectra; `enabled` is False when all three are 0
    (the model then never calls it)."""

    def __init__(self, formant_shift: float, pitch_shift: float, eq_db: float, eq_peaks: int, sample_rate: int):
        self.formant_shift, self.pitch_shift, self.eq_db, self.eq_peaks = formant_shift, pitch_shift, eq_db, eq_peaks
        self.sample_rate = sample_rate
        self.lifter = max(8, sample_rate // 600)  # < the period of F0 up to 600 Hz

    @property
    def enabled(self) -> bool:
        return self.formant_shift > 0 or self.pitch_shift > 0 or self.eq_db > 0

    def draw(self, batch: int, num_bins: int) -> dict[str, torch.Tensor | None]:
        """Random factors for a batch (CPU global RNG, in a fixed order)."""
        return {"formant": random_warp_factors(batch, self.formant_shift),  # log-uniform in [1/(1+x), 1+x]
                "pitch": random_warp_factors(batch, self.pitch_shift),
                "eq_db": random_eq(batch, num_bins, self.sample_rate, self.eq_db, self.eq_peaks)
                if self.eq_db > 0 else None}

    def __call__(self, log_mag: torch.Tensor, factors: dict | None = None) -> torch.Tensor:
        """log|STFT| (B, F, T) -> perturbed, with freshly drawn factors unless `factors` is given."""
        f = factors or self.draw(log_mag.shape[0], log_mag.shape[1])
        return perturb_log_spectrum(log_mag, f["formant"].to(log_mag.device), f["pitch"].to(log_mag.device),
                                    f["eq_db"], self.lifter)
