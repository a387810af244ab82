"""The TOKENIZER role: audio -> token streams (a `codes.TokenFile`, what a .vqc holds).

    wav (any rate, mono or (samples, channels)) --prepare--> float32 at the model's rate
      --level: x level_gain (the gain is kept: the file stores 1 / it)--> level-normalised wav
      --encoder + codebook(s), float32, fixed blocks--> content codes (ceil(samples / hop),), or
                                                 (ceil(samples / hop), k): the first k of N residual codebooks
      --YIN F0, quantized around the median--> pitch stream (models with `[model.pitch]`)
      --voice encoder, first VOICE_MAX_SECONDS--> voice vector, uint8 (V,)   (v2 models)

The tokenizer has its own id (`model_id`, the hash of what defines these streams): a .vqc file
names it, and any decoder trained on this tokenizer decodes the file (decoders.py).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import checkpoint, codes
from .audio import VOICE_MAX_SECONDS, as_mono_float, check_reference, resample
from .config import Config
from .errors import AudioError, VqcodecError
from .generate import release_memory
from .models.vqvae import VQVAE
from .nn import voice as voice_codec
from .nn.pitch import PitchQuantizer, yin_frame_length

# Tokens are computed on a fixed grid of blocks of this much audio (whole tokens), each from its own
# samples plus the encoder's context: chunked encoding is exact in float32 (Tokenizer._encode_chunks)
BLOCK_SECONDS = 4.0
# the codebook search re-ranks this many nearest codes in float64 (VectorQuantizer.nearest)
NEAREST_CANDIDATES = 8
TRIM_BLOCKS = 15  # _encode_chunks gives freed heap back to the OS every this many blocks (1 min)
KBPS_SLACK = 0.025  # codebooks_for_kbps: a step this fraction above the rate asked for still fits
Reader = Callable[[int, int], np.ndarray]  # read(lo, hi) -> float32 samples lo..hi (fewer at the end)


def level_gain(wav: np.ndarray, target_rms: float) -> float:
    """The factor that brings `wav` (float, or int16 read as /32767) to `target_rms`: what the codec
    applies before encoding and stores (inverted) in the file, and what training scales each
    utterance by. Near-silent input is scaled at most 1000x."""
    x = np.asarray(wav)
    scale = 1.0 / 32767.0 if x.dtype == np.int16 else 1.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) * scale if x.size else 0.0
    return float(target_rms / max(rms, target_rms / 1000.0))


class Tokenizer:
    """A VQ-VAE's tokenizer parts (encoder, codebook, voice encoder, pitch tracker) with the level
    normalisation around them. Tokens are encoded on a fixed grid of blocks (`_encode_chunks`), so
    a long input read in chunks gives tokens bit-identical to a whole-file encode and memory stays
    bounded however long the audio."""

    def __init__(self, model: VQVAE, config: Config):
        self.model = model
        self.config = config
        self.model_id = checkpoint.model_id(model.state_dict(), config.to_dict()["model"])

    @property
    def sample_rate(self) -> int:
        return self.config.model.sample_rate

    @property
    def hop(self) -> int:
        return self.model.hop

    @property
    def device(self) -> torch.device:
        return self.model.quantizer.codebook.device

    @property
    def has_voice(self) -> bool:
        return self.model.voice_encoder is not None

    @property
    def has_pitch(self) -> bool:
        return self.model.has_pitch

    @property
    def codebooks(self) -> int:
        """Residual codebooks per frame (N); a file may hold the first k of them (a bitrate ladder)."""
        return self.config.model.quantizer.codebooks

    def ladder(self) -> list[float]:
        """Nominal rate in bit/s of each ladder step, k = 1..N codebooks: k x bits x frames/s, plus the
        pitch stream's bits x values/s when the model has one (no voice vector, gain or header)."""
        m = self.config.model
        frames = self.sample_rate / self.hop
        pitch = codes.bits_per_token(m.pitch.levels) * frames / m.pitch.every if self.has_pitch else 0.0
        bits = codes.bits_per_token(m.quantizer.codebook_size)
        return [k * bits * frames + pitch for k in range(1, self.codebooks + 1)]

    def codebooks_for_kbps(self, kbps: float) -> int:
        """The largest k whose ladder step (`ladder`) is at most `kbps` (a step up to KBPS_SLACK above
        counts, so the rounded names 0.56 / 1.1 / 1.7 select 0.5625 / 1.125 / 1.6875 kbps); a
        VqcodecError for a model without a ladder or a rate below its lowest step."""
        steps = self.ladder()
        shown = ", ".join(f"{bps / 1000:g}" for bps in steps)
        if len(steps) < 2:
            raise VqcodecError(f"this model has one codebook: no bitrate ladder to choose a step from "
                               f"(its rate is {shown} kbps)")
        fits = [k for k, bps in enumerate(steps, 1) if bps <= kbps * 1000 * (1 + KBPS_SLACK)]
        if not fits:
            raise VqcodecError(f"{kbps:g} kbps is below this model's lowest step; its steps are {shown} kbps")
        return fits[-1]

    # ------------------------------------------------------------------ level
    def prepare(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 at the model's rate; the input rules are `audio.as_mono_float`'s (int16 /
        int32 scaled, (samples, channels) mixed down, channels-first and ambiguous shapes refused)."""
        return resample(as_mono_float(wav, sample_rate), int(sample_rate), self.sample_rate)

    def gain_of(self, wav: np.ndarray) -> float:
        """The level-normalisation factor of a waveform at the model's rate (1.0 for v1 models)."""
        rms = self.config.model.level_rms
        return level_gain(wav, rms) if rms > 0 else 1.0

    # ------------------------------------------------------------------ wav -> token streams
    def encode_utterance(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0,
                         speaker: str = "", codebooks: int | None = None) -> codes.TokenFile:
        """The token streams of a waveform (tokens, gain, voice vector, pitch stream). codebooks: keep
        the first k of the model's N residual codebooks (default all; `codebooks_for_kbps`)."""
        codebooks = self._checked_codebooks(codebooks)
        wav = self.prepare(wav, sample_rate)
        gain = self.gain_of(wav)
        return self._streams(lambda lo, hi: wav[lo:hi], len(wav), gain, chunk_seconds, speaker, codebooks)

    def encode_file_utterance(self, path: str | os.PathLike, chunk_seconds: float = 5.0,
                              speaker: str = "", codebooks: int | None = None) -> codes.TokenFile:
        """Like encode_utterance, for an audio file: read from disk one chunk at a time when it is
        already at the model's rate (memory stays bounded; the streams equal encode_utterance of the
        whole waveform). Other rates are loaded whole and resampled first. Raises AudioError for a
        missing, unreadable, empty or non-finite file."""
        import soundfile as sf

        from . import audio

        codebooks = self._checked_codebooks(codebooks)
        path = Path(path)
        info = audio.info(path)
        if info.samplerate != self.sample_rate or info.frames <= 0:
            wav = audio.load(path, self.sample_rate)
            return self.encode_utterance(wav, self.sample_rate, chunk_seconds, speaker, codebooks)
        try:
            f = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioError(f"{path}: cannot decode audio ({e})") from None
        with f:
            def read(lo: int, hi: int) -> np.ndarray:
                lo, hi = min(lo, info.frames), min(hi, info.frames)
                try:
                    f.seek(lo)
                    block = f.read(hi - lo, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise AudioError(f"{path}: cannot decode audio ({e})") from None
                block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
                if not np.all(np.isfinite(block)):
                    raise AudioError(f"{path}: audio contains NaN or infinite samples")
                return block

            gain = 1.0
            if self.config.model.level_rms > 0:  # a first pass for the file's level
                block_len = 60 * self.sample_rate
                sq = sum(float(np.sum(np.square(read(a, a + block_len), dtype=np.float64)))
                         for a in range(0, info.frames, block_len))
                rms = np.sqrt(sq / info.frames)
                gain = level_gain(np.array([rms], dtype=np.float64), self.config.model.level_rms)
            return self._streams(read, info.frames, gain, chunk_seconds, speaker, codebooks)

    def _checked_codebooks(self, codebooks: int | None) -> int:
        """How many codebooks a file keeps: `codebooks`, checked against the model's N (None: N)."""
        if codebooks is None:
            return self.codebooks
        if isinstance(codebooks, bool) or not isinstance(codebooks, (int, np.integer)) \
                or not 1 <= codebooks <= self.codebooks:
            raise VqcodecError(f"codebooks must be an integer in [1, {self.codebooks}] (this model's residual "
                               f"codebooks), got {codebooks!r}")
        return int(codebooks)

    def _streams(self, read: Reader, num_samples: int, gain: float, chunk_seconds: float,
                 speaker: str, codebooks: int) -> codes.TokenFile:
        """The TokenFile of samples [0, num_samples) given by `read`, scaled by `gain` first, with the
        first `codebooks` codebooks of each frame."""
        scaled = lambda lo, hi: read(lo, hi) * np.float32(gain)  # noqa: E731
        tokens = self._encode_chunks(scaled, num_samples, chunk_seconds)
        tokens = tokens[:, :codebooks] if tokens.ndim == 2 else tokens
        voice = self._voice_bytes(scaled(0, VOICE_MAX_SECONDS * self.sample_rate))
        extra = {}
        if self.has_pitch:
            levels, median = self.model.pitch_of_f0(self._f0(scaled, num_samples))
            p = self.config.model.pitch
            extra = dict(pitch=levels[0].numpy().astype(np.int64), pitch_levels=p.levels, pitch_every=p.every,
                         f0_median=float(np.float32(median[0])))
        # gain in the file: what the decoder multiplies its audio by (1 / the normalisation)
        return codes.TokenFile(tokens=tokens, sample_rate=self.sample_rate, num_samples=num_samples,
                               hop=self.hop, codebook_size=self.config.model.quantizer.codebook_size,
                               model_id=self.model_id, speaker=speaker, gain=float(np.float32(1.0 / gain)),
                               voice=voice, **extra)

    # ------------------------------------------------------------------ a reference's voice
    def voice_of(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """The 8-bit voice vector (uint8, V bytes) of a recording: what `convert --like` uses."""
        if not self.has_voice:
            raise VqcodecError("this model has no voice encoder (a v1 model): use a named speaker")
        wav = self.prepare(wav, sample_rate)
        check_reference(len(wav), self.sample_rate)
        if float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < 1e-4:
            raise AudioError("reference voice is silent")
        return self._voice_bytes(wav[:VOICE_MAX_SECONDS * self.sample_rate] * np.float32(self.gain_of(wav)))

    def median_f0_of(self, wav: np.ndarray, sample_rate: int) -> float:
        """The median F0 in Hz of a recording's voiced frames (0.0 if none): with the voice vector,
        what `convert --like` takes from the reference on models with a pitch stream."""
        if not self.has_pitch:
            raise VqcodecError("this model has no pitch stream")
        wav = self.prepare(wav, sample_rate)
        x = wav * np.float32(self.gain_of(wav))
        return float(np.float32(PitchQuantizer.median(self._f0(lambda lo, hi: x[lo:hi], len(x)))[0]))

    # ------------------------------------------------------------------ the parts
    @torch.inference_mode()
    def _voice_bytes(self, wav: np.ndarray) -> np.ndarray:
        """uint8 (V,) of level-normalised audio; (0,) for v1 models."""
        if not self.has_voice:
            return np.zeros(0, dtype=np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device).view(1, -1)
        return voice_codec.to_bytes(self.model.voice(x)[0])

    @torch.inference_mode()
    def _f0(self, read: Reader, num_samples: int, block_seconds: float = 60.0) -> torch.Tensor:
        """F0 (1, pitch frames) in Hz (0 unvoiced) of samples [0, num_samples), read block by block
        with a margin of real audio each side (zeros past the ends): equal to a whole-file pass,
        since each frame depends on its own samples only."""
        ph = self.model.pitch_hop
        frames = -(-num_samples // ph)
        block = max(1, int(block_seconds * self.sample_rate) // ph) * ph
        p = self.config.model.pitch
        margin = -(-yin_frame_length(self.sample_rate, p.f0_min) // ph) * ph  # > a YIN frame's half length
        out = []
        for a in range(0, frames * ph, block):
            b = min(a + block, frames * ph)
            lo, hi = a - margin, b + margin
            x = np.zeros(hi - lo, dtype=np.float32)
            got = read(max(lo, 0), min(hi, num_samples))
            x[max(lo, 0) - lo:max(lo, 0) - lo + len(got)] = got
            f0 = self.model.f0(torch.from_numpy(x).to(self.device).view(1, -1))[0]
            out.append(f0[margin // ph:margin // ph + (b - a) // ph].cpu())
            del x, f0
            release_memory()  # as in _encode_chunks: keeps glibc's heap from growing block by block
        return torch.cat(out)[None]

    @property
    def block_tokens(self) -> int:
        """Tokens per block of the fixed grid `_encode_chunks` encodes on (BLOCK_SECONDS of audio)."""
        return max(1, int(BLOCK_SECONDS * self.sample_rate) // self.hop)

    @torch.inference_mode()
    def _encode_chunks(self, read: Reader, num_samples: int, chunk_seconds: float) -> np.ndarray:
        """Tokens (ceil(num_samples / hop),), or (.., N) with N codebooks, of samples [0, num_samples),
        on a fixed grid of blocks of S = `block_tokens` tokens (BLOCK_SECONDS of audio).

        Block k's tokens are computed from the samples [k S hop - ctx, (k + 1) S hop + ctx) alone,
        clipped to [0, T) (T: num_samples padded with zeros to whole hops; ctx: `encoder.context`,
        which bounds the receptive field, in whole hops); the encoder runs on exactly that slice and
        the codebook search on exactly its S (fewer in the last block) middle frames, one block at a
        time. Clipped at the file's ends, a block sees the ends as a whole-file encode does (the
        convs' own zero padding), so the tokens are those of a whole-file encode, within float32
        rounding. The point is the float32 rounding itself: a conv's float32 result at a position
        depends (at the 1e-7 level) on the shape of the input it runs over, so a near tie between
        two codes could fall either way if chunks of different lengths were encoded. Here each
        block's input has a shape and content that depend only on the file and k, never on how
        the file is read, so chunked tokens are bit-identical to whole-file tokens in float32. The
        codebook search re-ranks the NEAREST_CANDIDATES nearest codes by their float64 distance
        (its float32 shortcut's rounding would otherwise decide near ties: on a tiny test model,
        16-bit PCM input and its float original gave 86-97% equal tokens, against 100% in float64).
        (Until issue 22 the encoder ran in float64 on chunks of `chunk_seconds` instead, which only
        made such ties rarer, at 3x the cost.)

        chunk_seconds only sets how much audio is read at a time (rounded to whole blocks, at least
        one): the tokens do not depend on it. They do depend, at near ties, on the CPU's kernels and
        on torch's thread count (float32 convs with 1 and 2 threads differ at the 1e-5 level), like
        any float encode; within one process they are fixed. Blocks are not batched: a batched
        log-mel front end is not bit-identical to one block alone (measured), and batch 1 is as fast.
        An encoder with `normalize` (off in the shipped models) removes band means per block."""
        if num_samples <= 0:
            raise AudioError("audio is empty (0 samples)")
        if not chunk_seconds > 0:
            raise VqcodecError(f"chunk length must be positive, got {chunk_seconds}")
        hop, S = self.hop, self.block_tokens
        ctx = -(-self.model.encoder.context // hop) * hop
        frames = -(-num_samples // hop)
        total, span = frames * hop, S * hop
        blocks = -(-frames // S)
        per_read = max(1, round(chunk_seconds * self.sample_rate / span))
        out = []
        for k0 in range(0, blocks, per_read):
            k1 = min(k0 + per_read, blocks)
            lo, hi = max(0, k0 * span - ctx), min(total, k1 * span + ctx)
            x = np.zeros(hi - lo, dtype=np.float32)
            got = read(lo, min(hi, num_samples))
            x[:len(got)] = got
            for k in range(k0, k1):
                a, b = max(0, k * span - ctx), min(total, (k + 1) * span + ctx)
                out.append(self._encode_block(x[a - lo:b - lo], (k * span - a) // hop, min(S, frames - k * S)))
            del x
            if k1 == blocks or k1 // TRIM_BLOCKS > k0 // TRIM_BLOCKS:
                release_memory()  # blocks of a fixed shape hardly fragment the heap: a trim now and then
        return np.concatenate(out).astype(np.int64)

    def _encode_block(self, x: np.ndarray, first: int, count: int) -> np.ndarray:
        """Codes of frames [first, first + count) of one block's samples `x` (float32, whole hops):
        the encoder over all of x, the codebook search over those frames only (a fixed shape)."""
        encoder = self.model.encoder
        dtype = next(encoder.parameters()).dtype  # float32; a float64 model (tests) runs in float64
        w = torch.from_numpy(x).to(self.device, dtype).view(1, -1)
        z = encoder(w)[0, :, first:first + count].T.contiguous()  # (count, D)
        return self.model.quantizer.nearest(z, NEAREST_CANDIDATES).cpu().numpy()
