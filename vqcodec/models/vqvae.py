"""The VQ-VAE: strided-conv encoder -> vector quantizer -> speaker-conditioned WaveNet decoder.

    wav (B, T) --Encoder--> z_e (B, D, T/hop) --VQ--> codes (B, T/hop), z_q (B, D, T/hop)
    z_q --conditioning convs (token rate)--> local (B, C, T/hop)
    mu-law(wav) + local + speaker --WaveNet--> logits (B, 256, T)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio import mulaw_encode
from ..config import ModelConfig
from ..nn.encoder import Encoder
from ..nn.quantizer import VectorQuantizer
from ..nn.wavenet import WaveNet

CONDITIONING_CHANNELS = 128


class ConditioningNet(nn.Module):
    """Two non-causal k=3 convs over the codebook vectors at the token rate: each token's
    conditioning sees its neighbours (the decoder needs more than a single 4 ms frame)."""

    def __init__(self, dim: int, channels: int = CONDITIONING_CHANNELS):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, channels, 3, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    context = 2  # tokens of context each side

    def forward(self, z_q):
        return F.relu(self.conv2(F.relu(self.conv1(z_q))))


class VQVAE(nn.Module):
    def __init__(self, cfg: ModelConfig, num_speakers: int):
        super().__init__()
        self.cfg = cfg
        self.num_speakers = num_speakers
        self.encoder = Encoder(cfg.encoder)
        self.quantizer = VectorQuantizer(cfg.quantizer, cfg.encoder.dim)
        self.conditioning = ConditioningNet(cfg.encoder.dim)
        self.decoder = WaveNet(cfg.decoder, num_classes=cfg.mulaw_channels,
                               local_channels=CONDITIONING_CHANNELS, upsample=cfg.hop,
                               num_global=num_speakers)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T), T a multiple of the hop -> codes (B, T / hop)."""
        z_e = self.encoder(wav)
        B, D, T = z_e.shape
        return self.quantizer.nearest(z_e.transpose(1, 2).reshape(-1, D)).reshape(B, T)

    def local_conditioning(self, codes: torch.Tensor) -> torch.Tensor:
        return self.conditioning(self.quantizer.lookup(codes))

    def forward(self, wav: torch.Tensor, speakers: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass. wav (B, T) in [-1, 1], T a multiple of the hop; speakers (B,)."""
        vq = self.quantizer(self.encoder(wav))
        local = self.conditioning(vq.quantized)
        target = mulaw_encode(wav, self.cfg.mulaw_channels)
        logits = self.decoder(target, local, speakers)
        ce = F.cross_entropy(logits, target)
        return {"loss": ce + vq.loss, "ce": ce, "commitment": vq.commitment,
                "perplexity": vq.perplexity, "codes": vq.codes}
