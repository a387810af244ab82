"""Vector quantizer (van den Oord et al. 2017): nearest neighbour in a K x D codebook,
straight-through gradient, codebook + commitment losses, optional EMA codebook updates and
dead-code restart.

With `ema=True` the codebook is not trained by gradient: it follows exponential moving averages of
the encoder outputs assigned to each code (the paper's appendix), and the codebook loss is 0.
Dead-code restart re-seeds a code that no input chose for `dead_code_steps` training steps with a
random recent encoder output, so the whole codebook stays in use. Under torch.distributed both
statistics are all-reduced and restarts are broadcast from rank 0, so every replica keeps the same
codebook.

`ResidualVectorQuantizer` (model.quantizer.codebooks = N > 1) chains N of these: codebook i quantizes
what codebooks 0..i-1 left of z_e, and a frame's vector is the sum of its first k codebook vectors,
for any k <= N (a bitrate ladder from one model). Trained with quantizer dropout (model.quantizer.
dropout), each training item uses only its first k codebooks, k drawn uniformly in 1..N from the torch
RNG (so a resumed run draws what an uninterrupted one would). One codebook stays a plain
`VectorQuantizer` (its state-dict keys, hence shipped models and their ids, are unchanged); both
classes take the same calls (`forward(z_e, keep)`, `nearest`, `lookup(codes, keep)`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..codes import MAX_CODEBOOKS  # what a .vqc content stream can hold
from ..config import QuantizerConfig


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor      # (B, D, T) straight-through: forward = codebook vectors
    codes: torch.Tensor          # (B, T) int64; residual quantizer: (B, T, N), every codebook's
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

    def nearest(self, z: torch.Tensor, candidates: int = 0) -> torch.Tensor:
        """z: (N, D) -> code indices (N,) of the nearest codebook vectors (squared L2).

        The distances are |z|^2 - 2 z.c + |c|^2 (one matmul). In float32 that sum cancels: its
        rounding, ~1e-7 |z|^2, can exceed the gap between the two nearest codes, so a near tie
        falls by rounding rather than by z. candidates > 0 (the codec's float32 encode) re-ranks
        each row's `candidates` nearest by that sum with the direct float64 distance |z - c|^2."""
        cb = self.codebook
        dist2 = (z.pow(2).sum(1, keepdim=True) - 2 * z @ cb.T + cb.pow(2).sum(1)[None, :])
        if candidates <= 0:
            return dist2.argmin(1)
        top = dist2.topk(min(candidates, cb.shape[0]), dim=1, largest=False).indices  # (N, candidates)
        exact = (z.double()[:, None, :] - cb.double()[top]).pow(2).sum(-1)
        return top.gather(1, exact.argmin(1, keepdim=True))[:, 0]

    def lookup(self, codes: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """codes (B, T) (or (B, T, 1)) -> vectors (B, D, T); items whose `keep` (B,) is <= 0 get zeros."""
        if codes.dim() == 3:
            codes = codes[..., 0]
        vectors = F.embedding(codes, self.codebook).transpose(1, 2)
        return vectors if keep is None else vectors * (keep > 0).to(vectors)[:, None, None]

    def forward(self, z_e: torch.Tensor, keep: torch.Tensor | None = None) -> QuantizerOutput:
        """z_e (B, D, T). keep (B,): how many codebooks each item uses from this one on (quantizer
        dropout); items with keep <= 0 are left out of the losses (their codes still update the codebook)."""
        B, D, T = z_e.shape
        flat = z_e.transpose(1, 2).reshape(-1, D)
        codes = self.nearest(flat.detach())
        e = self.codebook[codes]
        onehot_counts = torch.bincount(codes, minlength=self.cfg.codebook_size).float()
        if self.training:
            self._update(flat.detach(), codes, onehot_counts)
            e = self.codebook[codes]  # EMA/restart may have moved the codebook
        weights = None if keep is None else (keep > 0).to(flat).repeat_interleave(T)
        commitment = _mse(flat, e.detach(), weights)
        codebook_loss = torch.zeros((), device=z_e.device) if self.cfg.ema else _mse(e, flat.detach(), weights)
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


def _mse(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error of rows (N, D); with weights (N,), the weighted mean over rows (0 if none count)."""
    if weights is None:
        return F.mse_loss(a, b)
    return ((a - b).pow(2).mean(1) * weights).sum() / weights.sum().clamp(min=1)


class ResidualVectorQuantizer(nn.Module):
    """N `VectorQuantizer` stages, each on the residual the ones before left (see the module docstring).

    Codes are (B, T, N); `lookup` of (B, T, k) codes, k <= N, sums the first k codebooks' vectors. In
    training every stage sees every item's residual (its EMA and dead-code restart learn from all of
    them: a residual does not depend on k), while an item's losses and its quantized output count only
    the stages it keeps. Each stage's commitment is that of z_e to the sum of the codebooks up to it,
    so the encoder commits to every prefix it is decoded from."""

    def __init__(self, cfg: QuantizerConfig, dim: int):
        super().__init__()
        if not 2 <= cfg.codebooks <= MAX_CODEBOOKS:
            raise ValueError(f"a residual quantizer has 2 to {MAX_CODEBOOKS} codebooks, got {cfg.codebooks}")
        self.cfg = cfg
        self.dim = dim
        self.stages = nn.ModuleList(VectorQuantizer(cfg, dim) for _ in range(cfg.codebooks))

    @property
    def codebook(self) -> torch.Tensor:
        """The first codebook (what a caller asking for the quantizer's device or dtype reads)."""
        return self.stages[0].codebook

    def draw_keep(self, batch: int) -> torch.Tensor:
        """Codebooks per training item (B,) under quantizer dropout: a share `dropout` of the items draw
        k uniformly in 1..N, the others keep N. From the torch RNG (CPU generator): exact resume."""
        n = len(self.stages)
        drawn = torch.randint(1, n + 1, (batch,))
        dropped = torch.rand(batch) < self.cfg.dropout
        return torch.where(dropped, drawn, torch.full_like(drawn, n))

    def nearest(self, z: torch.Tensor, candidates: int = 0) -> torch.Tensor:
        """z: (M, D) -> codes (M, N): each codebook's nearest vector to what the ones before left
        (`candidates`: VectorQuantizer.nearest's)."""
        out = []
        for stage in self.stages:
            c = stage.nearest(z, candidates)
            z = z - stage.codebook[c]
            out.append(c)
        return torch.stack(out, 1)

    def lookup(self, codes: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """codes (B, T, k) with 1 <= k <= N, or (B, T) (the first codebook) -> the sum of each frame's
        first k codebook vectors (B, D, T); with keep (B,), item b sums only its first keep[b]."""
        if codes.dim() == 2:
            codes = codes[..., None]
        k = codes.shape[-1]
        if not 1 <= k <= len(self.stages):
            raise ValueError(f"codes of {k} codebooks; this quantizer has {len(self.stages)}")
        return sum(stage.lookup(codes[..., i], None if keep is None else keep - i)
                   for i, stage in enumerate(self.stages[:k]))

    def forward(self, z_e: torch.Tensor, keep: torch.Tensor | None = None) -> QuantizerOutput:
        """z_e (B, D, T); keep (B,) codebooks per item (None: all N). The output is straight-through as a
        whole (forward: the sum of the kept codebook vectors; gradient: identity to z_e); loss and
        commitment add up the stages' over the items that keep them; perplexity is the first codebook's."""
        residual, outs = z_e, []
        for i, stage in enumerate(self.stages):
            out = stage(residual, None if keep is None else keep - i)
            residual = residual - out.quantized.detach()
            outs.append(out)
        codes = torch.stack([o.codes for o in outs], -1)
        total = self.lookup(codes, keep)
        return QuantizerOutput(z_e + (total - z_e).detach(), codes, sum(o.loss for o in outs),
                               sum(o.commitment for o in outs), outs[0].perplexity)

    def reset_usage(self) -> torch.Tensor:
        """Per-code assignment counts (N, K) since the last call, then counting afresh."""
        return torch.stack([stage.reset_usage() for stage in self.stages])


def make_quantizer(cfg: QuantizerConfig, dim: int) -> VectorQuantizer | ResidualVectorQuantizer:
    """The quantizer of `model.quantizer`: one codebook, or a residual chain of `codebooks`."""
    if not 0.0 <= cfg.dropout <= 1.0 or (cfg.dropout > 0 and cfg.codebooks < 2):
        raise ValueError(f"model.quantizer.dropout must lie in [0, 1] and needs codebooks > 1, got "
                         f"dropout {cfg.dropout} with {cfg.codebooks} codebook(s)")
    if not 1 <= cfg.codebooks <= MAX_CODEBOOKS:
        raise ValueError(f"model.quantizer.codebooks must lie in [1, {MAX_CODEBOOKS}], got {cfg.codebooks}")
    return VectorQuantizer(cfg, dim) if cfg.codebooks == 1 else ResidualVectorQuantizer(cfg, dim)
