"""Autoregressive generation with the WaveNet's cached incremental path.

* `sample_stream` — plain cached sampling of a batch of independent streams (used by the prior and
  by batch-1 decoding).
* `decode_segments` — chunk-parallel decoding: a token sequence is cut into segments that are
  generated side by side as one batch. Each segment starts `warmup` tokens early (its output there
  is discarded: the WaveNet settles on the local conditioning) and runs `crossfade` tokens past
  its end, where it is cross-faded with the next segment's start. Segments of several files share
  one batch. Each segment's conditioning is computed from its tokens plus the conditioning net's
  context on each side, so a segment sees the conditioning a whole-file decode would (up to float
  rounding) while memory stays bounded by one round of segments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .audio import mulaw_decode


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc malloc_trim; a no-op elsewhere). Without it,
    repeated large, differently sized tensor allocations (encoder chunks, decoding rounds)
    fragment glibc's heap: encoding a 1 h file grew to 2.3 GB of RSS, with it it stays ~0.4 GB."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sample classes (B,) from logits (B, C); temperature 0 means argmax.

    Inverse-CDF sampling with one uniform per row: torch.multinomial costs ~15 ms per step for
    128 rows x 256 classes on 2 CPU cores (it dominated chunk-parallel decoding), this ~0.5 ms."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    cdf = torch.softmax(logits, dim=-1).cumsum_(-1)
    u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=logits.shape[1] - 1).squeeze(-1)


def sample_stream(net, steps: int, local=None, global_ids=None, batch_size: int = 1,
                  temperature: float = 1.0, seed: int = 0, prompt: torch.Tensor | None = None,
                  bar: tqdm | None = None, threads: int | None = 1) -> torch.Tensor:
    """Generate `steps` classes for `batch_size` streams with the cached incremental path.
    prompt (B, P): classes forced for the first P positions (teacher-forced continuation).
    Returns (B, steps) including the prompt. `bar`: a tqdm advanced by the number of steps.
    threads: torch intra-op threads while generating (None: leave as set). One thread is the
    default because the per-step matrices are small: on 2 cores shared with another busy process
    two threads were 5-18x slower (docs/benchmarks.md). torch.set_num_threads is process-wide;
    the previous value is restored afterwards."""
    return _generate(net, steps, local, global_ids, batch_size, temperature, seed, prompt, bar,
                     threads).T.long()


def _generate(net, steps, local, global_ids, batch_size, temperature, seed, prompt, bar,
              threads: int | None = 1) -> torch.Tensor:
    """sample_stream's loop; returns (steps, B) in the smallest integer type that holds the
    classes (int16 for mu-law and codebooks), so an hour of chunk-parallel decoding stays small."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _loop(net, steps, local, global_ids, batch_size, temperature, seed, prompt, bar)
    finally:
        torch.set_num_threads(before)


def _loop(net, steps, local, global_ids, batch_size, temperature, seed, prompt, bar) -> torch.Tensor:
    device = net.embed.weight.device
    with torch.inference_mode():
        generator = torch.Generator(device=device).manual_seed(seed)
        state = net.init_state(batch_size, local, global_ids)
        dtype = torch.int16 if net.num_classes <= 2 ** 15 else torch.long
        out = torch.empty(steps, batch_size, dtype=dtype, device=device)
        forced = 0 if prompt is None else min(prompt.shape[1], steps)
        tick = 0
        for t in range(steps):
            logits = net.step(state)
            x = prompt[:, t] if t < forced else draw(logits, temperature, generator)
            out[t] = x
            state.feed(x)
            if bar is not None and t - tick >= 1023:  # tqdm.update per sample costs real time
                bar.update(t + 1 - tick)
                tick = t + 1
        if bar is not None:
            bar.update(steps - tick)
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
                    min_chunk: int = 32, max_chunk: int = 2500, warmup: int = 16, crossfade: int = 4,
                    progress: bool = False, threads: int | None = 1) -> list[np.ndarray]:
    """Decode token sequences (each (N,)) to float waveforms, segments side by side.

    Segments are `chunk` tokens long (chosen so all fit in one batch of `max_batch` streams, within
    [min_chunk, max_chunk]); more segments than `max_batch` are decoded in successive rounds, so
    memory stays bounded for hour-long files. max_batch=1 decodes each file as one stream.
    threads: see `sample_stream`. Deterministic for a seed and the same list of sequences (the
    segmenting depends on all the lengths decoded together)."""
    hop = model.hop
    device = model.quantizer.codebook.device
    lengths = [int(t.numel()) for t in token_seqs]
    if max_batch <= 1:
        chunk, warmup, crossfade = max(lengths), 0, 0
    else:
        chunk = min(choose_chunk(lengths, max_batch, min_chunk), max_chunk)
    plans = plan_segments(lengths, chunk, warmup, crossfade)
    outputs = [np.zeros(n * hop, dtype=np.float32) for n in lengths]
    fade_len = crossfade * hop
    fade_in = np.linspace(0.0, 1.0, fade_len + 2, dtype=np.float32)[1:-1]
    step = max(1, max_batch)
    rounds = range(0, len(plans), step)
    bar = tqdm(total=sum(max(p.end - p.start for p in plans[r:r + step]) * hop for r in rounds),
               disable=not progress, desc="decoding", unit="sample", unit_scale=True, leave=False)
    ctx = model.conditioning.context
    for round_index, first in enumerate(rounds):
        group = plans[first:first + step]
        span = max(p.end - p.start for p in group)
        local = None
        for i, p in enumerate(group):  # conditioning of this round's segments only: bounded memory
            tokens = token_seqs[p.file]
            lo, hi = max(0, p.start - ctx), min(len(tokens), p.end + ctx)
            c = model.local_conditioning(tokens[lo:hi].to(device).view(1, -1))[0]
            if local is None:
                local = torch.zeros(len(group), c.shape[0], span, device=device)
            local[i, :, :p.end - p.start] = c[:, p.start - lo:p.end - lo]
        speakers = torch.tensor([speaker_ids[p.file] for p in group], device=device)
        classes = _generate(model.decoder, span * hop, local, speakers, len(group), temperature,
                            seed + round_index, None, bar, threads)  # (steps, B)
        audio = mulaw_decode(classes, model.cfg.mulaw_channels).cpu().numpy().T
        del classes, local
        release_memory()
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
