"""The voice encoder: a whole utterance -> one small vector that says how it sounds.

log-mel (80 bands, 16 ms hop) -> three k=5 convs -> mean and standard deviation over time ->
linear -> tanh: `dim` values in [-1, 1]. They are quantized to 8 bits each (straight-through in
training), because that is how they travel in the .vqc header: `dim` bytes per file. Trained jointly
with the tokenizer and the fast decoder from reconstruction alone, on a reference crop taken from
ANOTHER utterance of the same speaker, so the vector can only carry what is constant across a
speaker's utterances (the voice), not what was said.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import VoiceConfig
from .spectral import LogMel

LEVELS = 255  # 8 bits: value v in [-1, 1] <-> byte round((v + 1) * 127.5)


def quantize(v: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid; straight-through gradient."""
    q = torch.round((v + 1) * (LEVELS / 2)) / (LEVELS / 2) - 1
    return v + (q - v).detach()


def to_bytes(v: torch.Tensor | np.ndarray) -> np.ndarray:
    """(dim,) floats in [-1, 1] -> (dim,) uint8."""
    v = np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64)
    return np.clip(np.round((v + 1) * (LEVELS / 2)), 0, LEVELS).astype(np.uint8)


def from_bytes(b: np.ndarray) -> torch.Tensor:
    """(dim,) uint8 -> (dim,) float32 in [-1, 1] (exactly the grid `quantize` rounds to)."""
    return torch.from_numpy(np.asarray(b, dtype=np.float32) / (LEVELS / 2) - 1)


class VoiceEncoder(nn.Module):
    def __init__(self, cfg: VoiceConfig, sample_rate: int = 16000):
        super().__init__()
        self.cfg = cfg
        if cfg.norm not in ("tanh", "layernorm"):
            raise ValueError(f"model.voice.norm must be 'tanh' or 'layernorm', not {cfg.norm!r}")
        if cfg.input not in ("logmel", "dvector"):
            raise ValueError(f"model.voice.input must be 'logmel' or 'dvector', not {cfg.input!r}")
        if cfg.input == "dvector":
            # a frozen pretrained speaker encoder -> a learned MLP (nn/dvector.py)
            from .dvector import DIM, SpeakerEmbedder

            self.embedder = SpeakerEmbedder(sample_rate)
            self.proj = nn.Sequential(nn.Linear(DIM, cfg.channels), nn.GELU(), nn.Linear(cfg.channels, cfg.dim))
        else:
            self.mel = LogMel(sample_rate, 1024, 256, cfg.n_mels)
            C = cfg.channels
            self.convs = nn.ModuleList([nn.Conv1d(cfg.n_mels, C, 5, padding=2), nn.Conv1d(C, C, 5, padding=2),
                                        nn.Conv1d(C, C, 5, padding=2)])
            self.out = nn.Linear(2 * C, cfg.dim)
        # layernorm: the outputs have zero mean and unit spread across dimensions before the tanh,
        # so they cannot all drift into its flat ends (where the shipped models' vectors sit)
        self.norm = nn.LayerNorm(cfg.dim, elementwise_affine=False) if cfg.norm == "layernorm" else None

    @property
    def takes_dvector(self) -> bool:
        return self.cfg.input == "dvector"

    def from_dvector(self, dvector: torch.Tensor) -> torch.Tensor:
        """d-vectors (B, 256) -> (B, dim) on the 8-bit grid (models with voice.input = "dvector"; in
        training the task gives precomputed d-vectors of the reference utterances)."""
        return self._squash(self.proj(dvector))

    def _squash(self, v: torch.Tensor) -> torch.Tensor:
        return quantize(torch.tanh(self.norm(v) if self.norm is not None else v))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T), level-normalised -> (B, dim) on the 8-bit grid. A clip shorter than half an
        STFT window (512 samples, 32 ms) cannot be reflect-padded: it is zero-padded to 513 samples
        (its voice vector is a guess, but a 1-sample file still encodes)."""
        if self.takes_dvector:
            with torch.no_grad():  # frozen; its STFT pads with zeros, so any length works
                dvector = self.embedder(wav)
            return self.from_dvector(dvector)
        short = self.mel.n_fft // 2 + 1 - wav.shape[-1]
        if short > 0:
            wav = F.pad(wav, (0, short))
        x = self.mel(wav)
        x = (x + 5.0) / 5.0  # log-mel of speech spans about -11..+3: centre it
        for conv in self.convs:
            x = F.gelu(conv(x))
        stats = torch.cat([x.mean(-1), x.std(-1, unbiased=False)], dim=-1)
        return self._squash(self.out(stats))
