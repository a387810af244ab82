"""Vector quantizer (van den Oord et al. 2017): nearest neighbour in a K x D codebook,
straight-through gradient, codebook + commitment losses, optional EMA codebook updates and
dead-code restart.

With `ema=True` the codebook is not trained by gradient: it follows exponential moving averages of
the encoder outputs assigned to each code (the paper's appendix), and the codebook loss is 0.
Dead-code restart re-seeds a code that no input chose for `dead_code_steps` training steps with a
random recent encoder output, so the whole codebook stays in use. Under torch.distributed both
statistics are all-reduced and restarts are broadcast from rank 0, so every replica keeps the same
codebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..config import QuantizerConfig


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor      # (B, D, T) straight-through: forward = codebook vectors
    codes: torch.Tensor          # (B, T) int64
    loss: torch.Tensor           # codebook loss + beta * commitment loss
    commitment: torch.Tensor     # ||z_e - sg[e]||^2 (before beta)
    perplexity: torch.Tensor     # exp(entropy of code usage in this batch)


class VectorQuantizer(nn.Module):
    def __init__(self, cfg: QuantizerConfig, dim: int):
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        K = cfg.codebook_size
        self.codebook = nn.Parameter(torch.randn(K, dim) * (1.0 / dim ** 0.5), requires_grad=not cfg.ema)
        self.register_buffer("ema_count", torch.ones(K))
        self.register_buffer("ema_sum", self.codebook.data.clone())
        self.register_buffer("steps_unused", torch.zeros(K, dtype=torch.long))
        self.register_buffer("usage", torch.zeros(K))  # assignments since the last reset_usage()

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, D) -> code indices (N,) of the nearest codebook vectors (squared L2)."""
        cb = self.codebook
        dist2 = (z.pow(2).sum(1, keepdim=True) - 2 * z @ cb.T + cb.pow(2).sum(1)[None, :])
        return dist2.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T) -> vectors (B, D, T)."""
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        B, D, T = z_e.shape
        flat = z_e.transpose(1, 2).reshape(-1, D)
        codes = self.nearest(flat.detach())
        e = self.codebook[codes]
        onehot_counts = torch.bincount(codes, minlength=self.cfg.codebook_size).float()
        if self.training:
            self._update(flat.detach(), codes, onehot_counts)
            e = self.codebook[codes]  # EMA/restart may have moved the codebook
        commitment = F.mse_loss(flat, e.detach())
        codebook_loss = torch.zeros((), device=z_e.device) if self.cfg.ema else F.mse_loss(e, flat.detach())
        loss = codebook_loss + self.cfg.beta * commitment
        quantized = flat + (e - flat).detach()  # straight-through estimator
        probs = onehot_counts / onehot_counts.sum().clamp(min=1)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return QuantizerOutput(quantized.reshape(B, T, D).transpose(1, 2), codes.reshape(B, T),
                               loss, commitment, perplexity)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat) if self.cfg.ema else None
        if distributed:
            dist.all_reduce(counts)
            if sums is not None:
                dist.all_reduce(sums)
        self.usage += counts
        if self.cfg.ema:
            decay = self.cfg.decay
            self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
            self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (n + self.cfg.codebook_size * 1e-5) * n  # Laplace
            self.codebook.data.copy_(self.ema_sum / smoothed[:, None])
        self.steps_unused = torch.where(counts > 0, torch.zeros_like(self.steps_unused), self.steps_unused + 1)
        if self.cfg.dead_code_steps > 0:
            dead = (self.steps_unused >= self.cfg.dead_code_steps).nonzero().flatten()
            if len(dead):
                self._restart(dead, flat, distributed)

    @torch.no_grad()
    def _restart(self, dead: torch.Tensor, flat: torch.Tensor, distributed: bool) -> None:
        pick = torch.randint(0, flat.shape[0], (len(dead),), device=flat.device)
        new = flat[pick] + 0.01 * flat.std() * torch.randn_like(flat[pick])
        self.codebook.data[dead] = new
        self.ema_sum[dead] = new
        self.ema_count[dead] = 1.0
        self.steps_unused[dead] = 0
        if distributed:
            for t in (self.codebook.data, self.ema_sum, self.ema_count):
                dist.broadcast(t, 0)

    def reset_usage(self) -> torch.Tensor:
        """Return per-code assignment counts since the last call and start counting afresh."""
        usage = self.usage.clone()
        self.usage.zero_()
        return usage
