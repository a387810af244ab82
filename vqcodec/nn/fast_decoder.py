"""The fast decoder: codebook vectors at the token rate -> waveform, in one deterministic pass.

    z_q (B, D, T) --conv k7--> (B, C, T) --ConvNeXt blocks (adaptive LayerNorm on the voice)-->
    --LayerNorm, linear--> log-magnitude and phase of an n_fft-point STFT per token --iSTFT, hop--> (B, T*hop)

250 tokens/s at 16 kHz is hop 64, an STFT frame rate: the network runs at the token rate and needs
no upsampling; the iSTFT head (Vocos) turns frames into samples. Every layer is non-causal with a
fixed receptive field (`context` tokens each side), so a long file can be decoded in overlapping
chunks (decoders.py). No sampling: the same tokens and voice always give the same audio.

Options (issue 22, all off by default), on models with a pitch stream:
- `excitation = "harmonic"` adds the log spectrum of a sine + noise source at the decoded F0
  (nn/excitation.py) to the input: the network sees the harmonics but must still invent their phase.
- `excitation = "source"` (source-filter): the same features, and the output frames become
      head's frames  +  gain (B, F, T, from a second linear head)  x  STFT(harmonic source)
  where the source is one phase-continuous harmonic waveform at the decoded F0. Its harmonics are
  coherent from frame to frame by construction; the network only shapes them (a per-bin gain, the
  spectral envelope) and adds the aperiodic part through its own frames. The source's phase runs
  on from the start of the sequence (`source_phase`), which chunked decoding passes in.
A larger `n_fft` at the same hop gives the head finer frequency bins. `frames` exposes the head's
STFT frames for the phase losses (nn/spectral.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import FastDecoderConfig
from .excitation import continuous_source, excitation_frames, log_power_with_noise, source_phase
from .pitch import f0_of_features

EXCITATIONS = ("", "harmonic", "source")
SOURCE_GAIN_OFFSET = -3.0  # the source branch starts quiet (gain e^-3) beside the head's own frames


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm over channels whose scale and shift come from the voice vector (identity at init);
    a plain affine LayerNorm when there is no voice."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=cond_dim == 0, eps=1e-6)
        self.scale = self.shift = None
        if cond_dim:
            self.scale = nn.Linear(cond_dim, channels)
            self.shift = nn.Linear(cond_dim, channels)
            for lin, bias in ((self.scale, 1.0), (self.shift, 0.0)):
                nn.init.zeros_(lin.weight)
                nn.init.constant_(lin.bias, bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C), cond (B, cond_dim) or None."""
        x = self.norm(x)
        if self.scale is not None:
            x = x * self.scale(cond).unsqueeze(1) + self.shift(cond).unsqueeze(1)
        return x


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int, mlp_ratio: int, kernel_size: int, cond_dim: int):
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = AdaptiveLayerNorm(channels, cond_dim)
        self.fc1 = nn.Linear(channels, mlp_ratio * channels)
        self.fc2 = nn.Linear(mlp_ratio * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, T)."""
        y = self.dwconv(x).transpose(1, 2)
        y = self.fc2(F.gelu(self.fc1(self.norm(y, cond))))
        return x + (self.gamma * y).transpose(1, 2)


class FastDecoder(nn.Module):
    def __init__(self, cfg: FastDecoderConfig, in_dim: int, voice_dim: int, hop: int, pitch_dim: int = 0,
                 sample_rate: int = 16000):
        super().__init__()
        if cfg.kernel_size % 2 == 0:
            raise ValueError("fast decoder kernel_size must be odd (centred, non-causal)")
        if cfg.n_fft < hop:
            raise ValueError(f"fast decoder n_fft {cfg.n_fft} is smaller than the hop {hop}")
        if cfg.excitation not in EXCITATIONS:
            raise ValueError(f"model.fast.excitation must be one of {EXCITATIONS}, got {cfg.excitation!r}")
        if cfg.excitation and not pitch_dim:
            raise ValueError(f"model.fast.excitation = {cfg.excitation!r} needs the pitch stream ([model.pitch] levels > 0)")
        self.cfg, self.hop, self.voice_dim, self.sample_rate = cfg, hop, voice_dim, sample_rate
        C = cfg.channels
        self.inp = nn.Conv1d(in_dim, C, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.pitch_dim = pitch_dim  # > 0: pitch features (nn/pitch.py) join the tokens at the input
        self.pitch_inp = (nn.Conv1d(pitch_dim, C, cfg.kernel_size, padding=cfg.kernel_size // 2)
                          if pitch_dim else None)
        # the source's log spectrum per frame -> channels (a 1x1 conv: each frame already spans n_fft samples)
        self.excitation_inp = nn.Conv1d(cfg.n_fft // 2 + 1, C, 1) if cfg.excitation else None
        self.norm_in = AdaptiveLayerNorm(C, voice_dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(C, cfg.mlp_ratio, cfg.kernel_size, voice_dim)
                                    for _ in range(cfg.blocks))
        self.norm_out = nn.LayerNorm(C, eps=1e-6)
        self.head = nn.Linear(C, cfg.n_fft + 2)  # log-magnitude and phase of n_fft // 2 + 1 bins
        # "source": the log gain per bin applied to the harmonic source's STFT frames
        self.source_gain = nn.Linear(C, cfg.n_fft // 2 + 1) if cfg.excitation == "source" else None
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    @property
    def context(self) -> int:
        """Tokens each side beyond which an output frame cannot depend, plus the iSTFT's overlap."""
        half = self.cfg.kernel_size // 2
        frame = -(-self.cfg.n_fft // (2 * self.hop))  # tokens one STFT frame spans each side
        return half * (1 + self.cfg.blocks) + frame * (2 if self.excitation_inp is not None else 1)

    @property
    def uses_source(self) -> bool:
        """True: the output includes the filtered harmonic source, whose phase chunked decoding
        passes in (`source_phase`)."""
        return self.source_gain is not None

    def source_phase(self, pitch: torch.Tensor) -> torch.Tensor:
        """The source's phase at each token's start (B, T), from pitch features (B, F, T) of a whole
        sequence: slice it with the tokens when decoding in chunks."""
        return source_phase(f0_of_features(pitch), self.sample_rate, self.hop)

    def forward(self, z_q: torch.Tensor, voice: torch.Tensor | None = None,
                pitch: torch.Tensor | None = None, phase0: torch.Tensor | None = None) -> torch.Tensor:
        """z_q (B, D, T) codebook vectors, voice (B, voice_dim), pitch (B, pitch_dim, T) features
        -> waveform (B, T * hop). phase0: the source's phase per token (`source_phase`; None: from
        this sequence's start)."""
        return self.synthesize(*self.frames(z_q, voice, pitch, phase0))

    def synthesize(self, mag: torch.Tensor, phase: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The head's STFT frames, magnitude and phase (B, n_fft // 2 + 1, T) each, plus the filtered
        source's frames (complex, same shape) if any -> waveform (B, T * hop)."""
        spec = torch.polar(mag, phase)
        if source is not None:
            spec = spec + source
        return torch.istft(spec, self.cfg.n_fft, self.hop, window=self.window,
                           center=True, length=mag.shape[-1] * self.hop)

    def frames(self, z_q: torch.Tensor, voice: torch.Tensor | None = None,
               pitch: torch.Tensor | None = None, phase0: torch.Tensor | None = None) -> tuple:
        """The STFT frames the head predicts (see forward): magnitude and unwrapped phase (radians),
        (B, n_fft // 2 + 1, T) each; with excitation "source" also the filtered source's complex
        frames (a third element)."""
        if self.voice_dim and voice is None:
            raise ValueError("this decoder needs a voice vector")
        if (self.pitch_dim > 0) != (pitch is not None):
            raise ValueError("this decoder needs pitch features" if self.pitch_dim
                             else "this decoder takes no pitch features")
        cond = voice if self.voice_dim else None
        x = self.inp(z_q)
        if pitch is not None:
            x = x + self.pitch_inp(pitch)
        source = None
        if self.uses_source:
            f0 = f0_of_features(pitch)
            if phase0 is None:
                phase0 = source_phase(f0, self.sample_rate, self.hop)
            wave = continuous_source(f0, phase0, self.sample_rate, self.hop)
            source = torch.stft(wave, self.cfg.n_fft, self.hop, window=self.window, center=True,
                                pad_mode="constant", return_complex=True)[..., :f0.shape[-1]]
            x = x + self.excitation_inp(log_power_with_noise(source, f0, self.window))
        elif self.excitation_inp is not None:
            f0 = f0_of_features(pitch)
            x = x + self.excitation_inp(excitation_frames(f0, self.sample_rate, self.hop, self.cfg.n_fft))
        x = self.norm_in(x.transpose(1, 2), cond).transpose(1, 2)
        for block in self.blocks:
            x = block(x, cond)
        h = self.norm_out(x.transpose(1, 2))
        frames = self.head(h)  # (B, T, n_fft + 2)
        log_mag, phase = frames.transpose(1, 2).chunk(2, dim=1)  # (B, F, T) each
        mag = torch.exp(log_mag.clamp(max=6.0))
        if source is None:
            return mag, phase
        gain = torch.exp((self.source_gain(h).transpose(1, 2) + SOURCE_GAIN_OFFSET).clamp(max=6.0))
        return mag, phase, gain * source
