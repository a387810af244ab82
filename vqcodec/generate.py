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

Randomness is per segment, not per batch: each segment draws its uniforms from its own generator,
seeded from the decode seed and the segment's index within its file, and each file is segmented
from its own length only. So a file decodes to the same audio whether it is decoded alone or
among other files (`vqcodec decode a.vqc` and `vqcodec decode dir/` agree). The seed is not mixed
with the file's name or path on purpose: the same tokens, seed and voice give the same audio
however the file is reached (API, one file, a directory).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

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


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
         u: torch.Tensor | None = None) -> torch.Tensor:
    """Sample classes (B,) from logits (B, C); temperature 0 means argmax.

    Inverse-CDF sampling with one uniform per row (`u` (B,) if given, else drawn from
    `generator`): torch.multinomial costs ~15 ms per step for 128 rows x 256 classes on 2 CPU
    cores (it dominated chunk-parallel decoding), this ~0.5 ms."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    cdf = torch.softmax(logits, dim=-1).cumsum_(-1)
    if u is None:
        u = torch.rand(logits.shape[0], generator=generator, device=logits.device)
    u = u.view(-1, 1).to(cdf.dtype)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=logits.shape[1] - 1).squeeze(-1)


class Uniforms:
    """The uniforms for sampling, drawn in blocks of `BLOCK` steps: one generator for the whole
    batch (`seeds` an int) or one per stream (`seeds` a list), so a stream's draws can be made
    independent of which other streams share its batch."""

    BLOCK = 1024

    def __init__(self, seeds, batch_size: int, device=None):
        self.device = device
        self.batch_size = batch_size
        per_stream = isinstance(seeds, (list, tuple))
        self.generators = [torch.Generator(device=device).manual_seed(int(x))
                           for x in (seeds if per_stream else [seeds])]
        self.per_stream = per_stream
        self.block = None
        self.pos = self.BLOCK

    def next(self) -> torch.Tensor:
        """The uniforms (B,) for the next step."""
        if self.pos == self.BLOCK:
            if self.per_stream:
                self.block = torch.stack([torch.rand(self.BLOCK, generator=g, device=self.device)
                                          for g in self.generators], dim=1)
            else:
                self.block = torch.rand(self.BLOCK, self.batch_size, generator=self.generators[0],
                                        device=self.device)
            self.pos = 0
        self.pos += 1
        return self.block[self.pos - 1]


def segment_seed(seed: int, index: int) -> int:
    """The generator seed of segment `index` of a file decoded with `seed` (segment 0: `seed`
    itself, so one stream per file samples exactly as `sample_stream(seed=seed)`)."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def sample_stream(net, steps: int, local=None, global_ids=None, batch_size: int = 1,
                  temperature: float = 1.0, seed: int = 0, prompt: torch.Tensor | None = None,
                  bar=None, threads: int | None = 1) -> torch.Tensor:
    """Generate `steps` classes for `batch_size` streams with the cached incremental path.
    prompt (B, P): classes forced for the first P positions (teacher-forced continuation).
    Returns (B, steps) including the prompt. `bar`: anything with update(n), advanced by the number of steps.
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
    """seed: an int (one generator for the batch) or a list of one seed per stream."""
    device = net.embed.weight.device
    with torch.inference_mode():
        uniforms = Uniforms(seed, batch_size, device)
        state = net.init_state(batch_size, local, global_ids)
        dtype = torch.int16 if net.num_classes <= 2 ** 15 else torch.long
        out = torch.empty(steps, batch_size, dtype=dtype, device=device)
        forced = 0 if prompt is None else min(prompt.shape[1], steps)
        tick = 0
        for t in range(steps):
            logits = net.step(state)
            x = prompt[:, t] if t < forced else draw(logits, temperature, None, uniforms.next())
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


def plan_segments(lengths: list[int], chunk, warmup: int, crossfade: int) -> list[SegmentPlan]:
    """Segments of each file; `chunk` is one length for all files or a list, one per file."""
    chunks = chunk if isinstance(chunk, (list, tuple)) else [chunk] * len(lengths)
    plans = []
    for f, (n, chunk) in enumerate(zip(lengths, chunks)):
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
    """Decode token sequences (each (N,), or (N, k) of k residual codebooks) to float waveforms,
    segments side by side.

    Each file is cut into segments of `chunk` tokens, chosen from that file's length alone (so
    that its segments fit in one batch of `max_batch` streams, within [min_chunk, max_chunk]);
    segments of all files are decoded side by side, longest first, in rounds of at most
    `max_batch` streams, so memory stays bounded for hour-long files. max_batch=1 decodes each
    file as one stream. threads: see `sample_stream`. A file's audio depends only on its tokens,
    its voice, `seed`, `temperature` and `max_batch`, not on the other files decoded with it (see
    the module docstring). The progress bar counts seconds of audio made; `progress` may be a bar
    to advance instead of one of its own (`progress.bar_for`)."""
    hop = model.hop
    device = model.quantizer.codebook.device
    lengths = [len(t) for t in token_seqs]
    if max_batch <= 1:
        chunks, warmup, crossfade = list(lengths), 0, 0
    else:
        chunks = [min(choose_chunk([n], max_batch, min_chunk), max_chunk) for n in lengths]
    plans = plan_segments(lengths, chunks, warmup, crossfade)
    seeds, kept, index = {}, {}, {}
    for p in plans:  # in file order: the segment's index within its file gives its generator seed
        index[p.file] = index.get(p.file, -1) + 1
        seeds[id(p)] = segment_seed(seed, index[p.file])
        kept[id(p)] = min(p.keep_from + chunks[p.file], lengths[p.file]) - p.keep_from
    plans.sort(key=lambda p: -(p.end - p.start))  # similar lengths share a round: fewer idle steps
    outputs = [np.zeros(n * hop, dtype=np.float32) for n in lengths]
    fade_len = crossfade * hop
    fade_in = np.linspace(0.0, 1.0, fade_len + 2, dtype=np.float32)[1:-1]
    step = max(1, max_batch)
    rounds = range(0, len(plans), step)
    sr = model.cfg.sample_rate
    from .progress import bar_for

    bar = bar_for(progress, total=sum(lengths) * hop / sr, desc="decoding", unit="s audio", leave=False,
                  bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")
    done_s = 0.0
    ctx = model.conditioning.context
    for first in rounds:
        group = plans[first:first + step]
        span = max(p.end - p.start for p in group)
        local = None
        for i, p in enumerate(group):  # conditioning of this round's segments only: bounded memory
            tokens = token_seqs[p.file]
            lo, hi = max(0, p.start - ctx), min(len(tokens), p.end + ctx)
            c = model.local_conditioning(tokens[lo:hi].to(device)[None])[0]
            if local is None:
                local = torch.zeros(len(group), c.shape[0], span, device=device)
            local[i, :, :p.end - p.start] = c[:, p.start - lo:p.end - lo]
        conds = [speaker_ids[p.file] for p in group]  # speaker ids (v1) or voice vectors (v2)
        speakers = (torch.stack(conds).to(device) if torch.is_tensor(conds[0])
                    else torch.tensor(conds, device=device))
        round_s = sum(kept[id(p)] for p in group) * hop / sr
        classes = _generate(model.decoder, span * hop, local, speakers, len(group), temperature,
                            [seeds[id(p)] for p in group], None, _SecondsBar(bar, round_s / (span * hop)),
                            threads)  # (steps, B)
        done_s += round_s
        bar.update(done_s - bar.n)  # exact at each round's end
        audio = mulaw_decode(classes, model.cfg.mulaw_channels).cpu().numpy().T
        del classes, local
        release_memory()
        for i, p in enumerate(group):  # additive, so the order segments are decoded in is free
            seg = audio[i, (p.keep_from - p.start) * hop:(p.end - p.start) * hop].copy()
            if p.keep_from > 0 and fade_len:  # head: fades in over the previous segment's tail
                m = min(fade_len, len(seg))
                seg[:m] *= fade_in[:m]
            tail = len(seg) - kept[id(p)] * hop
            if tail > 0:  # tail past the next segment's start: fades out
                seg[-tail:] *= 1 - fade_in[:tail]
            a = p.keep_from * hop
            outputs[p.file][a:a + len(seg)] += seg
    bar.close()
    return outputs


class _SecondsBar:
    """Turns the generation loop's step counts into seconds of audio kept (warm-up, cross-fade
    tails and idle steps of shorter segments are not audio the user gets)."""

    def __init__(self, bar, seconds_per_step: float):
        self.bar = bar
        self.scale = seconds_per_step
        self.carry = 0.0

    def update(self, steps: int) -> None:
        self.carry += steps * self.scale
        if self.carry >= 0.1:
            self.bar.update(round(self.carry, 1))
            self.carry -= round(self.carry, 1)
