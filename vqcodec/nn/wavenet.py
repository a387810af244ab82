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
                 upsample: int = 1, num_global: int = 0, global_vector_dim: int = 0):
        """num_classes: input and output alphabet; local_channels: channels of the local
        conditioning (0: none); upsample: input steps per local frame; num_global: size of the
        global-conditioning vocabulary (speakers; 0: none); global_vector_dim: instead of ids, the
        global conditioning is a float vector of this size per stream (the v2 voice vector)."""
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
        self.global_vector_dim = global_vector_dim
        self.global_embed = (nn.Embedding(num_global, cfg.global_dim)
                             if num_global and cfg.global_dim and not global_vector_dim else None)
        global_in = global_vector_dim or (cfg.global_dim if self.global_embed is not None else 0)
        self.global_proj = (nn.ModuleList(nn.Linear(global_in, G, bias=False) for _ in self.dilations)
                            if global_in else None)
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
            raise ValueError("this WaveNet needs global conditioning (a speaker id or voice vector)")
        g = global_ids if self.global_vector_dim else self.global_embed(global_ids)
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
        O(B * C * frames) however long the stream.

        The weights are rearranged once here for `step` (bench/codec_speed.py measures why):
        each dilated conv becomes one (k*R, G) matrix over [x[t-(k-1)d], ..., x[t-d], x[t]]; the
        conv bias, the global bias and the local projection are summed into one per-layer bias
        that changes only when the conditioning frame does; the skip 1x1 convs of all layers are
        one (layers*G/2, S) matrix applied once per step to the layers' gated outputs, which
        the layers write side by side into one preallocated tensor."""
        p = self.embed.weight
        B, R, G = batch_size, self.cfg.residual_channels, self.cfg.gate_channels
        n, k = len(self.dilations), self.kernel_size
        if (self.local_proj is not None) != (local is not None):
            raise ValueError("local conditioning given to a WaveNet without it, or missing")
        with torch.no_grad():
            # buffers[i][s] (B, R): layer i's input at the time step s was last written
            buffers = [p.new_zeros((k - 1) * d, B, R) for d in self.dilations]
            # W[j] multiplies x[t - (k-1-j) d]: stacked so that input [x[t-(k-1)d] ... x[t]] works
            taps = [conv.weight.permute(2, 1, 0).reshape(k * R, G).contiguous() for conv in self.dilated]
            bias = torch.stack([conv.bias for conv in self.dilated])  # (layers, G)
            glob = self._global_bias(global_ids)
            if glob is not None:
                bias = bias.unsqueeze(1) + torch.stack([g[:, :, 0] for g in glob])  # (layers, B, G)
            else:
                bias = bias.unsqueeze(1).expand(n, B, G)
            bias = bias.contiguous()
            local_weight = (torch.cat([proj.weight[:, :, 0] for proj in self.local_proj]).T.contiguous()
                            if self.local_proj is not None else None)  # (C, layers*G)
            res_w = [conv.weight[:, :, 0].T.contiguous() for conv in self.res_out]  # (G/2, R)
            res_b = [conv.bias for conv in self.res_out]
            skip_w = torch.cat([conv.weight[:, :, 0].T for conv in self.skip_out]).contiguous()  # (layers*G/2, S)
            skip_b = torch.stack([conv.bias for conv in self.skip_out]).sum(0)
            post = (self.post1.weight[:, :, 0].T.contiguous(), self.post1.bias,
                    self.post2.weight[:, :, 0].T.contiguous(), self.post2.bias)
        prev = torch.full((B,), self.start_symbol, dtype=torch.long, device=p.device)
        return WaveNetState(t=0, prev=prev, buffers=buffers, local=local, local_weight=local_weight,
                            bias=bias, taps=taps, res_w=res_w, res_b=res_b, skip_w=skip_w, skip_b=skip_b,
                            post=post, gated=p.new_empty(B, n * (G // 2)), core=self._core)

    def step(self, state: "WaveNetState") -> torch.Tensor:
        """Logits (B, num_classes) for position state.t, given the inputs fed so far.
        Call `state.feed(x_t)` with the chosen classes before the next step."""
        if torch.is_grad_enabled():  # (a no_grad decorator would cost time on every step)
            with torch.no_grad():
                return self._step(state)
        return self._step(state)

    def _step(self, state: "WaveNetState") -> torch.Tensor:
        t, k = state.t, self.kernel_size
        cond = state.conditioning(t // self.upsample)  # (layers, B, G)
        h = F.embedding(state.prev, self.embed.weight)  # (B, R)
        # older taps of every layer, read from the circular buffers: x[t - (k-1-j) d] for j < k-1
        olds = [[buf[(t + j * d) % buf.shape[0]] for j in range(k - 1)]
                for buf, d in zip(state.buffers, self.dilations)]
        logits, inputs = state.core(h, olds, cond, state.taps, state.res_w, state.res_b, state.skip_w,
                                    state.skip_b, state.post, state.gated)
        for buf, x in zip(state.buffers, inputs):
            buf[t % buf.shape[0]] = x  # x[t] replaces x[t - L], which no later step needs
        return logits

    @staticmethod
    def _core(h, olds, cond, taps, res_w, res_b, skip_w, skip_b, post, gated_all):
        """One step of every layer and the output head, on tensors only (no Python ints that
        change from step to step, so it can be compiled). Returns (logits, each layer's input)."""
        R, H = h.shape[1], gated_all.shape[1] // len(taps)
        inputs = []
        for i, W in enumerate(taps):
            inputs.append(h)
            z = cond[i]
            for j, old in enumerate(olds[i]):
                z = torch.addmm(z, old, W[j * R:(j + 1) * R])
            z = torch.addmm(z, h, W[len(olds[i]) * R:])
            gated = torch.mul(torch.tanh(z[:, :H]), torch.sigmoid(z[:, H:]), out=gated_all[:, i * H:(i + 1) * H])
            if i < len(res_w):
                h = torch.addmm(h, gated, res_w[i]).add_(res_b[i])
        w1, b1, w2, b2 = post
        skip = torch.addmm(skip_b, gated_all, skip_w).relu_()
        return torch.addmm(b2, torch.addmm(b1, skip, w1).relu_(), w2), inputs


@dataclass
class WaveNetState:
    """Per-stream incremental state and the weights rearranged for `WaveNet.step`.
    buffers[i][t % L] (B, R) holds layer i's input at time t - L (L = (k-1) * dilation) until
    step t overwrites it."""
    t: int
    prev: torch.Tensor
    buffers: list[torch.Tensor]
    local: torch.Tensor | None          # (B, C, frames) raw local conditioning
    local_weight: torch.Tensor | None   # (C, layers * G) all layers' local projections
    bias: torch.Tensor                  # (layers, B, G) conv bias + global bias
    taps: list[torch.Tensor]            # per layer (k * R, G)
    res_w: list[torch.Tensor]           # per layer (G/2, R)
    res_b: list[torch.Tensor]
    skip_w: torch.Tensor                # (layers * G/2, S)
    skip_b: torch.Tensor                # (S,) the layers' skip biases summed
    post: tuple
    gated: torch.Tensor                 # (B, layers * G/2) scratch: every layer's gated output
    core: object                        # WaveNet._core (or a compiled version of it)
    _frame: int = -1
    _cond: torch.Tensor | None = None

    def conditioning(self, frame: int) -> torch.Tensor:
        """(layers, B, G): bias + global + local projections for one conditioning frame, cached
        while t stays in it."""
        if frame != self._frame:
            if self.local is None:
                self._cond = self.bias
            else:
                n, B, G = self.bias.shape
                proj = (self.local[:, :, frame] @ self.local_weight).view(B, n, G).transpose(0, 1)
                self._cond = (self.bias + proj).contiguous()
            self._frame = frame
        return self._cond

    def feed(self, x: torch.Tensor) -> None:
        """Advance one step with the classes x (B,) chosen for position t."""
        self.prev = x
        self.t += 1
