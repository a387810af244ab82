"""Autoregressive generation with the WaveNet's cached incremental path.

* `sample_stream` — plain cached sampling of a batch of independent streams (used by the prior and
  by batch-1 decoding).
* `decode_segments` — chunk-parallel decoding: a token sequence is cut into segments that are
  generated side by side as one batch. Each segment starts `warmup` tokens early (its output there
  is discarded: the WaveNet settles on the local conditioning) and runs `crossfade` tokens past
  its end, where it is cross-faded with the next segment's start. Segments of several files share
  one batch. The decoder's conditioning is computed once over each whole file, so a segment sees
  exactly the conditioning a whole-file decode would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .audio import mulaw_decode


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sample classes (B,) from logits (B, C); temperature 0 means argmax."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_stream(net, steps: int, local=None, global_ids=None, batch_size: int = 1,
                  temperature: float = 1.0, seed: int = 0, prompt: torch.Tensor | None = None,
                  bar: tqdm | None = None) -> torch.Tensor:
    """Generate `steps` classes for `batch_size` streams with the cached incremental path.
    prompt (B, P): classes forced for the first P positions (teacher-forced continuation).
    Returns (B, steps) including the prompt. `bar`: a tqdm to advance once per step."""
    generator = torch.Generator(device=net.embed.weight.device).manual_seed(seed)
    state = net.init_state(batch_size, local, global_ids)
    out = torch.empty(batch_size, steps, dtype=torch.long, device=net.embed.weight.device)
    for t in range(steps):
        logits = net.step(state)
        if prompt is not None and t < prompt.shape[1]:
            x = prompt[:, t]
        else:
            x = draw(logits, temperature, generator)
        out[:, t] = x
        state.feed(x)
        if bar is not None:
            bar.update(1)
    return out


@dataclass
class SegmentPlan:
    """Where each generated segment lies, in tokens, within its file."""
    file: int
    start: int      # first token generated (includes warm-up)
    keep_from: int  # first token whose audio is kept
    end: int        # token after the last one generated (includes the cross-fade tail)


def plan_segments(lengths: list[int], chunk: int, warmup: int, crossfade: int) -> list[SegmentPlan]:
    plans = []
    for f, n in enumerate(lengths):
        for keep_from in range(0, n, chunk):
            plans.append(SegmentPlan(f, max(0, keep_from - warmup), keep_from,
                                     min(n, keep_from + chunk + crossfade)))
    return plans


def choose_chunk(lengths: list[int], max_batch: int, min_chunk: int) -> int:
    """Smallest chunk that fits all segments of all files into one batch of `max_batch` streams
    (never below `min_chunk` tokens, so warm-up stays a modest overhead)."""
    total = sum(lengths)
    chunk = max(min_chunk, math.ceil(total / max_batch))
    while sum(math.ceil(n / chunk) for n in lengths) > max_batch:
        chunk += 1
    return chunk


@torch.no_grad()
def decode_segments(model, token_seqs: list[torch.Tensor], speaker_ids: list[int],
                    temperature: float = 1.0, seed: int = 0, max_batch: int = 128,
                    min_chunk: int = 50, max_chunk: int = 2500, warmup: int = 16, crossfade: int = 4,
                    progress: bool = False) -> list[np.ndarray]:
    """Decode token sequences (each (N,)) to float waveforms, segments side by side.

    Segments are `chunk` tokens long (chosen so all fit in one batch of `max_batch` streams, within
    [min_chunk, max_chunk]); more segments than `max_batch` are decoded in successive rounds, so
    memory stays bounded for hour-long files. max_batch=1 decodes each file as one stream.
    Deterministic for a seed."""
    hop = model.hop
    device = model.quantizer.codebook.device
    lengths = [int(t.numel()) for t in token_seqs]
    if max_batch <= 1:
        chunk, warmup, crossfade = max(lengths), 0, 0
    else:
        chunk = min(choose_chunk(lengths, max_batch, min_chunk), max_chunk)
    plans = plan_segments(lengths, chunk, warmup, crossfade)
    locals_ = [model.local_conditioning(t.to(device).view(1, -1))[0] for t in token_seqs]  # (C, N)
    outputs = [np.zeros(n * hop, dtype=np.float32) for n in lengths]
    fade_len = crossfade * hop
    fade_in = np.linspace(0.0, 1.0, fade_len + 2, dtype=np.float32)[1:-1]
    rounds = range(0, len(plans), max(1, max_batch))
    bar = tqdm(total=sum(max(p.end - p.start for p in plans[r:r + max(1, max_batch)]) * hop for r in rounds),
               disable=not progress, desc="decoding", unit="sample", unit_scale=True, leave=False)
    for round_index, first in enumerate(rounds):
        group = plans[first:first + max(1, max_batch)]
        span = max(p.end - p.start for p in group)
        local = torch.zeros(len(group), locals_[0].shape[0], span, device=device)
        for i, p in enumerate(group):
            local[i, :, :p.end - p.start] = locals_[p.file][:, p.start:p.end]
        speakers = torch.tensor([speaker_ids[p.file] for p in group], device=device)
        classes = sample_stream(model.decoder, span * hop, local, speakers, batch_size=len(group),
                                temperature=temperature, seed=seed + round_index, bar=bar)
        audio = mulaw_decode(classes, model.cfg.mulaw_channels).cpu().numpy()
        for i, p in enumerate(group):
            seg = audio[i, (p.keep_from - p.start) * hop:(p.end - p.start) * hop]
            out = outputs[p.file]
            a = p.keep_from * hop
            if p.keep_from > 0 and fade_len:  # cross-fade with the previous segment's tail
                n = min(fade_len, len(seg))
                out[a:a + n] = out[a:a + n] * (1 - fade_in[:n]) + seg[:n] * fade_in[:n]
                out[a + n:a + len(seg)] = seg[n:]
            else:
                out[a:a + len(seg)] = seg
    bar.close()
    return outputs
