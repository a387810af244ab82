"""The prior: the same WaveNet as the decoder, over token sequences (K-way softmax), optionally
conditioned on the speaker. Trained on tokens of a fixed VQ-VAE; its checkpoint records that
model's id so it is never paired with another codebook."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import PriorConfig
from ..nn.wavenet import WaveNet


class Prior(nn.Module):
    def __init__(self, cfg: PriorConfig, codebook_size: int, num_speakers: int):
        super().__init__()
        self.cfg = cfg
        self.codebook_size = codebook_size
        self.net = WaveNet(cfg.wavenet, num_classes=codebook_size,
                           num_global=num_speakers if cfg.speaker_conditioned else 0)

    def forward(self, tokens: torch.Tensor, speakers: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """tokens (B, T) -> loss = mean negative log-likelihood in nats per token."""
        logits = self.net(tokens, None, speakers if self.cfg.speaker_conditioned else None)
        nll = F.cross_entropy(logits, tokens)
        return {"loss": nll, "bits_per_token": nll / torch.log(torch.tensor(2.0))}
