"""Strided 1-D conv encoder: waveform (B, T) -> z_e (B, D, T / hop), hop = stride ** num_strided.

Every strided conv has window `kernel_size` and padding (kernel_size - stride) / 2, so a length that
is a multiple of the hop divides exactly. Receptive field and per-side context are exposed so a
long file can be encoded in blocks with results identical to a whole-file encode (tokenizer.py).

`input = "logmel"` (issue 14, off by default) replaces the strided convs by log-mel frames at the
token hop and two k=3 convs: the tokens can then hold the spectral envelope but not the waveform's
fine temporal structure. `normalize` subtracts each band's mean over the encoded input: the
per-utterance long-term spectrum (much of the voice and the channel) never reaches the tokens. The
mean is over what the encoder is given, so the codec (which encodes on a fixed grid of blocks,
tokenizer.BLOCK_SECONDS) normalises per block.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import EncoderConfig


_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
LOGMEL_BANDS = 80


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, activation: str = "relu"):
        super().__init__()
        self.conv3 = nn.Conv1d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv1d(channels, channels, 1)
        self.act = F.relu if activation == "relu" else F.gelu

    def forward(self, x):
        return x + self.conv1(self.act(self.conv3(self.act(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig, sample_rate: int = 16000):
        super().__init__()
        if (cfg.kernel_size - cfg.stride) % 2:
            raise ValueError("kernel_size - stride must be even for exact downsampling")
        self.cfg = cfg
        if cfg.activation not in _ACTIVATIONS:
            raise ValueError(f"encoder activation must be one of {sorted(_ACTIVATIONS)}, not {cfg.activation!r}")
        widths = list(cfg.widths) or [cfg.channels] * cfg.num_strided
        if len(widths) != cfg.num_strided:
            raise ValueError(f"encoder widths {widths} must list one width per strided layer ({cfg.num_strided})")
        if cfg.input not in ("wave", "logmel"):
            raise ValueError(f"encoder input must be 'wave' or 'logmel', not {cfg.input!r}")
        if cfg.normalize and cfg.input != "logmel":
            raise ValueError("encoder.normalize needs encoder.input = 'logmel'")
        self.hop = cfg.stride ** cfg.num_strided
        pad = (cfg.kernel_size - cfg.stride) // 2
        layers = []
        if cfg.input == "logmel":
            # frames at the token hop, then two k=3 convs: the tokens see the spectral envelope
            # (and harmonics where n_fft resolves them), never the waveform's phase
            from .spectral import LogMel

            # zero padding at the ends, as a whole-file encode pads (reflection would differ per chunk)
            self.front = LogMel(sample_rate, 4 * self.hop, self.hop, LOGMEL_BANDS, pad_mode="constant")
            layers = [nn.Conv1d(LOGMEL_BANDS, widths[-1], 3, padding=1), _ACTIVATIONS[cfg.activation](),
                      nn.Conv1d(widths[-1], widths[-1], 3, padding=1), _ACTIVATIONS[cfg.activation]()]
        else:
            self.front = None
            for i, width in enumerate(widths):  # the big stride early: most layers run at a low rate
                layers += [nn.Conv1d(1 if i == 0 else widths[i - 1], width, cfg.kernel_size,
                                     stride=cfg.stride, padding=pad), _ACTIVATIONS[cfg.activation]()]
        self.strided = nn.Sequential(*layers)
        self.residual = nn.Sequential(*[ResidualBlock(widths[-1], cfg.activation) for _ in range(cfg.num_residual)])
        self.out = nn.Conv1d(widths[-1], cfg.dim, 1)

    @property
    def context(self) -> int:
        """Samples of context on each side beyond which a token's value cannot depend (a bound
        on the receptive field's half-width, rounded up to whole hops)."""
        c = self.cfg
        if self.front is not None:  # half an STFT window, then 2 + num_residual k=3 convs at the token rate
            half = 2 * self.hop + (2 + c.num_residual) * self.hop
            return -(-half // self.hop) * self.hop
        rf = 1
        scale = 1
        for _ in range(c.num_strided):
            rf += (c.kernel_size - 1) * scale
            scale *= c.stride
        rf += 2 * c.num_residual * scale  # each residual block has one k=3 conv at token rate
        return -(-rf // self.hop) * self.hop

    def forward(self, wav: torch.Tensor, perturb=None) -> torch.Tensor:
        """wav: (B, T) with T a multiple of the hop -> (B, D, T // hop). `perturb` (training only,
        log-mel input): a function of the log-magnitude STFT (B, F, frames) applied before the mel
        bands (nn/perturb.SpeakerPerturbation)."""
        if wav.shape[-1] % self.hop:
            raise ValueError(f"input length {wav.shape[-1]} is not a multiple of the hop {self.hop}")
        if self.front is None:
            if perturb is not None:
                raise ValueError("the speaker perturbation needs encoder.input = 'logmel'")
            return self.out(self.residual(self.strided(wav.unsqueeze(1))))
        mag = self.front.magnitude(wav)
        if perturb is not None:
            mag = torch.exp(perturb(torch.log(mag + 1e-5)))
        x = self.front.from_magnitude(mag)[..., :wav.shape[-1] // self.hop]  # frame t: samples t*hop - 2 hop .. t*hop + 2 hop
        x = x - x.mean(-1, keepdim=True) if self.cfg.normalize else (x + 5.0) / 5.0
        return self.out(self.residual(self.strided(x)))
