"""ONE WaveNet: causal dilated convolutions with gated units, residual and skip paths, local and
global conditioning. The VQ-VAE decoder (over mu-law samples) and the prior (over tokens) are both
this module.

Two paths over the same weights:

* `forward` — teacher-forced, parallel over time (training, scoring);
* `step` — one time step for a batch of independent streams, with per-layer circular buffers of
  past activations (fast-wavenet, Paine et al. 2016). `step` reproduces `forward`'s logits exactly
  (tests/test_wavenet.py).

Conventions: the input sequence `x` holds class indices (mu-law levels or codes). `forward(x)`
returns logits whose position t predicts x[t] from x[<t] (the module shifts the input right by one
and feeds a start symbol first). Local conditioning is given at a coarser rate, `upsample` input
steps per conditioning frame, and is projected per layer at the coarse rate before being repeated
(the 1x1 projection commutes with repetition, so this is exact and 64x cheaper for the decoder).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import WaveNetConfig


class WaveNet(nn.Module):
    def __init__(self, cfg: WaveNetConfig, num_classes: int, local_channels: int = 0,
                 upsample: int = 1, num_global: int = 0):
        """num_classes: input and output alphabet; local_channels: channels of the local
        conditioning (0: none); upsample: input steps per local frame; num_global: size of the
        global-conditioning vocabulary (speakers; 0: none)."""
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.upsample = upsample
        self.kernel_size = cfg.kernel_size
        self.dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.layers)]
        R, G, S = cfg.residual_channels, cfg.gate_channels, cfg.skip_channels
        if G % 2:
            raise ValueError("gate_channels must be even (tanh and sigmoid halves)")
        self.start_symbol = num_classes  # extra embedding row fed before the first sample
        self.embed = nn.Embedding(num_classes + 1, R)
        self.dilated = nn.ModuleList(nn.Conv1d(R, G, cfg.kernel_size, dilation=d) for d in self.dilations)
        self.local_proj = (nn.ModuleList(nn.Conv1d(local_channels, G, 1, bias=False) for _ in self.dilations)
                           if local_channels else None)
        self.global_embed = nn.Embedding(num_global, cfg.global_dim) if num_global and cfg.global_dim else None
        self.global_proj = (nn.ModuleList(nn.Linear(cfg.global_dim, G, bias=False) for _ in self.dilations)
                            if self.global_embed is not None else None)
        self.res_out = nn.ModuleList(nn.Conv1d(G // 2, R, 1) for _ in self.dilations[:-1])
        self.skip_out = nn.ModuleList(nn.Conv1d(G // 2, S, 1) for _ in self.dilations)
        self.post1 = nn.Conv1d(S, S, 1)
        self.post2 = nn.Conv1d(S, num_classes, 1)

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    # ------------------------------------------------------------------ conditioning
    def _local_projections(self, local: torch.Tensor | None):
        """Per-layer local projections at the coarse rate: list of (B, G, frames)."""
        if self.local_proj is None:
            return None
        if local is None:
            raise ValueError("this WaveNet needs local conditioning")
        return [proj(local) for proj in self.local_proj]

    def _global_bias(self, global_ids: torch.Tensor | None):
        """Per-layer global biases: list of (B, G, 1)."""
        if self.global_proj is None:
            return None
        if global_ids is None:
            raise ValueError("this WaveNet needs a global conditioning id (speaker)")
        g = self.global_embed(global_ids)
        return [proj(g).unsqueeze(-1) for proj in self.global_proj]

    # ------------------------------------------------------------------ teacher forcing
    def forward(self, x: torch.Tensor, local: torch.Tensor | None = None,
                global_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T) class indices; local: (B, C, ceil(T / upsample)); global_ids: (B,).
        Returns logits (B, num_classes, T); position t predicts x[:, t]."""
        B, T = x.shape
        start = torch.full((B, 1), self.start_symbol, dtype=x.dtype, device=x.device)
        h = self.embed(torch.cat([start, x[:, :-1]], dim=1)).transpose(1, 2)  # (B, R, T)
        local_c, global_c = self._local_projections(local), self._global_bias(global_ids)
        skip = 0
        for i, (conv, d) in enumerate(zip(self.dilated, self.dilations)):
            pad = (self.kernel_size - 1) * d
            z = conv(F.pad(h, (pad, 0)))
            if local_c is not None:
                z = z + torch.repeat_interleave(local_c[i], self.upsample, dim=2)[:, :, :T]
            if global_c is not None:
                z = z + global_c[i]
            a, b = z.chunk(2, dim=1)
            gated = torch.tanh(a) * torch.sigmoid(b)
            skip = skip + self.skip_out[i](gated)
            if i < len(self.res_out):
                h = h + self.res_out[i](gated)
        return self.post2(F.relu(self.post1(F.relu(skip))))

    # ------------------------------------------------------------------ incremental
    def init_state(self, batch_size: int, local: torch.Tensor | None = None,
                   global_ids: torch.Tensor | None = None) -> "WaveNetState":
        """State for `batch_size` independent streams, all starting at t=0 with the start symbol
        as the previous input. local: (B, C, frames) at the coarse rate; its per-layer
        projections are computed one frame at a time as generation reaches it, so memory stays
        O(B * C * frames) however long the stream."""
        p = self.embed.weight
        buffers = [torch.zeros(batch_size, self.cfg.residual_channels, (self.kernel_size - 1) * d,
                               device=p.device, dtype=p.dtype) for d in self.dilations]
        if (self.local_proj is not None) != (local is not None):
            raise ValueError("local conditioning given to a WaveNet without it, or missing")
        local_weight = (torch.cat([proj.weight[:, :, 0] for proj in self.local_proj])  # (layers*G, C)
                        if self.local_proj is not None else None)
        global_c = self._global_bias(global_ids)
        # Split each dilated conv into per-tap matrices once: W[j] multiplies x[t - (k-1-j) d].
        taps = [conv.weight.permute(2, 0, 1).contiguous() for conv in self.dilated]  # (k, G, R)
        prev = torch.full((batch_size,), self.start_symbol, dtype=torch.long, device=p.device)
        return WaveNetState(t=0, prev=prev, buffers=buffers, local=local, local_weight=local_weight,
                            glob=global_c, taps=taps)

    @torch.no_grad()
    def step(self, state: "WaveNetState") -> torch.Tensor:
        """Logits (B, num_classes) for position state.t, given the inputs fed so far.
        Call `state.feed(x_t)` with the chosen classes before the next step."""
        h = self.embed(state.prev)  # (B, R)
        skip = 0
        local_now = state.local_frame(state.t // self.upsample, len(self.dilations))
        for i, d in enumerate(self.dilations):
            buf = state.buffers[i]
            L = buf.shape[2]
            W = state.taps[i]
            z = self.dilated[i].bias + h @ W[-1].T
            for j in range(self.kernel_size - 1):  # older taps, read from the circular buffer
                z = z + buf[:, :, (state.t + j * d) % L] @ W[j].T
            buf[:, :, state.t % L] = h  # x[t] replaces x[t - L], which no later step needs
            if local_now is not None:
                z = z + local_now[:, i]
            if state.glob is not None:
                z = z + state.glob[i][:, :, 0]
            a, b = z.chunk(2, dim=1)
            gated = torch.tanh(a) * torch.sigmoid(b)
            skip = skip + F.linear(gated, self.skip_out[i].weight[:, :, 0], self.skip_out[i].bias)
            if i < len(self.res_out):
                h = h + F.linear(gated, self.res_out[i].weight[:, :, 0], self.res_out[i].bias)
        out = F.linear(F.relu(skip), self.post1.weight[:, :, 0], self.post1.bias)
        return F.linear(F.relu(out), self.post2.weight[:, :, 0], self.post2.bias)


@dataclass
class WaveNetState:
    """Per-stream incremental state. buffers[i][:, :, t % L] holds layer i's input at time t - L
    (L = (k-1) * dilation) until step t overwrites it."""
    t: int
    prev: torch.Tensor
    buffers: list[torch.Tensor]
    local: torch.Tensor | None          # (B, C, frames) raw local conditioning
    local_weight: torch.Tensor | None   # (layers * G, C) all layers' local projections
    glob: list[torch.Tensor] | None
    taps: list[torch.Tensor]
    _frame: int = -1
    _local_now: torch.Tensor | None = None

    def local_frame(self, frame: int, layers: int) -> torch.Tensor | None:
        """(B, layers, G) local projections for one conditioning frame, cached while t stays in it."""
        if self.local is None:
            return None
        if frame != self._frame:
            self._local_now = (self.local[:, :, frame] @ self.local_weight.T).view(self.local.shape[0], layers, -1)
            self._frame = frame
        return self._local_now

    def feed(self, x: torch.Tensor) -> None:
        """Advance one step with the classes x (B,) chosen for position t."""
        self.prev = x
        self.t += 1
