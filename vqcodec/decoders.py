"""The DECODER role: token streams -> audio. One interface (`Decoder`), two implementations on the
same tokenizer's codes:

    FastDecoder     frame-rate ConvNeXt + iSTFT head (nn/fast_decoder.py), deterministic   [v2, default]
    WaveNetDecoder  the paper's autoregressive WaveNet (nn/wavenet.py), mu-law, sampled,
                    chunk-parallel (generate.py)                                        [v1 and v2]

What both share lives in the base class: the token checks, the voice (a named voice, or a voice
vector from a file or a reference; v1 models: a speaker id), the pitch stream's checks, the gain
that undoes the tokenizer's level normalisation and the trim to the original length.
`NamedVoices` is the model's table of named voices, which both decoders condition on.
"""
from __future__ import annotations

import numpy as np
import torch

from . import codes
from .config import Config
from .errors import VqcodecError
from .generate import release_memory
from .models.vqvae import VQVAE
from .nn import voice as voice_codec

FAST_CHUNK_TOKENS = 2500     # fast decoding works on 10 s chunks (plus context): bounded memory


class NamedVoices:
    """The voices a model knows by name: for v2 models a voice vector (uint8, V) each and, on
    models with a pitch stream, a median F0 in Hz each; for v1 models the speaker table of the
    WaveNet (a name's index is its speaker id)."""

    def __init__(self, model: VQVAE, config: Config, speakers: list[str],
                 vectors: dict[str, list[int]] | None = None, f0_medians: dict[str, float] | None = None):
        self.has_voice = model.voice_encoder is not None
        self.dim = config.model.voice.dim
        self.vectors = {name: np.asarray(v, dtype=np.uint8) for name, v in (vectors or {}).items()}
        self.speakers = list(self.vectors) if self.has_voice else list(speakers)
        self.f0_medians = {name: float(v) for name, v in (f0_medians or {}).items()}

    def index(self, speaker: str | None) -> int:
        """The position of a named voice (0 for None), or a VqcodecError listing the names."""
        if speaker is None:
            return 0
        if speaker not in self.speakers:
            shown = ", ".join(self.speakers[:20]) + (" ..." if len(self.speakers) > 20 else "")
            raise VqcodecError(f"unknown speaker {speaker!r}; this model knows: {shown or '(no named voices)'}")
        return self.speakers.index(speaker)

    def conditioning(self, speaker: str | None, voice) -> torch.Tensor | int:
        """What a decoder is conditioned on: a voice vector (V,) in [-1, 1] (v2) or a speaker id
        (v1), from `speaker` (a name) or `voice` (v2: uint8 (V,), from a file or a reference).
        Neither given is refused: decoding in some default voice would hide a forgotten voice."""
        if not self.has_voice:
            if voice is not None and len(voice):
                raise VqcodecError("this model (v1) has no voice vectors: use a named speaker")
            if speaker is None:
                raise VqcodecError(f"no voice given: name one of this model's speakers ({self._some()})")
            return self.index(speaker)
        if speaker is not None:
            self.index(speaker)
            voice = self.vectors[speaker]
        if voice is None or not len(voice):
            raise VqcodecError("no voice given: pass speaker=NAME (a named voice: "
                               f"{self._some()}) or voice=VECTOR (a file's tf.voice, or voice_of(reference)); "
                               "decode_file decodes a .vqc file in its own voice")
        voice = np.asarray(voice, dtype=np.uint8)
        if voice.shape != (self.dim,):
            raise VqcodecError(f"voice vector has {voice.size} values; this model uses {self.dim}")
        return voice_codec.from_bytes(voice)

    def _some(self) -> str:
        return ", ".join(self.speakers[:5]) + (" ..." if len(self.speakers) > 5 else "") or "it has none"


class Decoder:
    """Token streams -> waveforms at the model's rate. `decode_many` is the interface (the checks
    and the handling shared by every decoder); an implementation gives `generate`."""

    name = ""
    uses_pitch = False  # True: the implementation takes the pitch stream's features

    def __init__(self, model: VQVAE, config: Config, voices: NamedVoices):
        self.model = model
        self.config = config
        self.voices = voices

    @property
    def device(self) -> torch.device:
        return self.model.quantizer.codebook.device

    def decode_many(self, token_seqs, speakers, voices=None, pitches=None, f0_medians=None, gains=None,
                    num_samples=None, progress=False, **options) -> list[np.ndarray]:
        """float32 waveforms, one per token sequence (num_tokens * hop samples, or num_samples).
        Per file: tokens (N,) in [0, K), or (N, k): the first k residual codebooks (decoded from the
        sum of their vectors); speaker (a name) or voice (uint8 (V,)); for a model with a
        pitch stream, its levels and median F0 (a named voice brings its own); gain (the output is
        multiplied by it; a file's gain restores its level); num_samples (trim). options: the
        implementation's (the WaveNet's temperature, seed, max_batch)."""
        n = len(token_seqs)
        voices, pitches = voices or [None] * n, pitches or [None] * n
        f0_medians, gains, num_samples = f0_medians or [None] * n, gains or [1.0] * n, num_samples or [None] * n
        conds = [self.voices.conditioning(s, v) for s, v in zip(speakers, voices)]
        seqs = [self._checked_tokens(t) for t in token_seqs]
        feats = ([self.pitch_input(t, p, s, m) for t, p, s, m in zip(seqs, pitches, speakers, f0_medians)]
                 if self.uses_pitch else [None] * n)
        out = []
        for w, k, g in zip(self.generate(seqs, conds, feats, progress, **options), num_samples, gains):
            w = np.asarray(w[:k] if k else w, dtype=np.float32)
            if g != 1.0:
                w *= np.float32(g)  # in place: the implementation's own array (230 MB for an hour)
            out.append(w)
        return out

    def generate(self, tokens: list[torch.Tensor], conds: list, pitch_features: list,
                 progress=False, **options) -> list[np.ndarray]:
        """tokens: (N,) int64 each; conds: a voice vector (V,) or speaker id each; pitch_features:
        (1, F, N) or None each -> float32 (N * hop,) each, at the model's level."""
        raise NotImplementedError

    def _checked_tokens(self, tokens) -> torch.Tensor:
        """(N,), or (N, k) for the first k of the model's residual codebooks (a ladder step)."""
        t = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        n = self.config.model.quantizer.codebooks
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim not in (1, 2) or (t.ndim == 2 and not 1 <= t.shape[1] <= n):
            raise VqcodecError(f"tokens must be a 1-D sequence or (frames, k) with k <= {n} (this model's "
                               f"codebooks), got shape {tuple(t.shape)}")
        if t.numel() == 0:
            raise VqcodecError("no tokens to decode")
        k = self.config.model.quantizer.codebook_size
        if int(t.min()) < 0 or int(t.max()) >= k:
            raise VqcodecError(f"token values must lie in [0, {k})")
        return t

    def pitch_input(self, tokens: torch.Tensor, pitch, speaker: str | None, f0_median: float | None):
        """The pitch features (1, F, N) of a model with a pitch stream, from the stream's levels and a
        median F0 (`speaker`'s, a named voice, else `f0_median`); None for a model without one."""
        if not self.model.has_pitch:
            if pitch is not None and len(pitch):
                raise VqcodecError("this model has no pitch stream, but a pitch stream was given")
            return None
        if pitch is None:
            raise VqcodecError("this model decodes tokens with their pitch stream (a .vqc file of this model "
                               "holds it); none was given")
        levels, n = np.asarray(pitch), len(tokens)
        p = self.config.model.pitch
        problem = codes.pitch_stream_problem(levels, n, p.every, p.levels)
        if problem:
            raise VqcodecError(problem)
        if speaker is not None:
            f0_median = self.voices.f0_medians.get(speaker)
        if f0_median is None or not np.isfinite(f0_median) or f0_median < 0:
            raise VqcodecError(f"a median F0 in Hz is needed to decode the pitch stream, got {f0_median!r}")
        with torch.inference_mode():
            lv = torch.as_tensor(levels.astype(np.int64)).view(1, -1).to(self.device)
            return self.model.pitch_input((lv, torch.tensor([float(f0_median)], device=self.device)), n)


class FastDecoder(Decoder):
    """The fast decoder (`model.fast_decoder`): codes (N,) + voice (V,) [+ pitch features (1, F, N)]
    -> wav (N * hop,), deterministic. Long inputs go in chunks of FAST_CHUNK_TOKENS with the
    network's `context` tokens of overlap each side."""

    name = "fast"
    uses_pitch = True

    def generate(self, tokens, conds, pitch_features, progress=False, **options):
        """options (the WaveNet's temperature, seed, max_batch) do not apply: no sampling here."""
        return [self.decode_chunks(t, c, progress, pitch_features=f) for t, c, f in zip(tokens, conds, pitch_features)]

    @torch.inference_mode()
    def decode_chunks(self, tokens: torch.Tensor, voice: torch.Tensor, progress=False,
                      chunk_tokens: int = FAST_CHUNK_TOKENS, pitch_features: torch.Tensor | None = None) -> np.ndarray:
        """One sequence in chunks: each chunk's kept part is what a whole-file pass computes (to
        float rounding), so memory stays bounded with no audible seams."""
        from .progress import bar_for

        hop, sr = self.model.hop, self.config.model.sample_rate
        n = len(tokens)
        ctx = self.model.fast_decoder.context
        out = np.zeros(n * hop, dtype=np.float32)
        v = voice.to(self.device).view(1, -1)
        fast = self.model.fast_decoder
        phase0 = fast.source_phase(pitch_features) if fast.uses_source else None  # the whole sequence's
        with bar_for(progress, total=n * hop / sr, desc="decoding", unit="s audio", leave=False,
                     bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]") as bar:
            for a in range(0, n, chunk_tokens):
                b = min(n, a + chunk_tokens)
                lo, hi = max(0, a - ctx), min(n, b + ctx)
                feats = None if pitch_features is None else pitch_features[..., lo:hi]
                wav = self.model.decode_fast(tokens[lo:hi].to(self.device)[None], v, feats,
                                             None if phase0 is None else phase0[..., lo:hi])[0]
                out[a * hop:b * hop] = wav[(a - lo) * hop:(b - lo) * hop].cpu().numpy()
                del wav
                if (a // chunk_tokens) % 16 == 15:
                    release_memory()  # as the tokenizer does: keeps glibc's heap from growing chunk by chunk
                bar.update((b - a) * hop / sr)
        return out


class WaveNetDecoder(Decoder):
    """The WaveNet decoder (`model.conditioning` + `model.decoder`): codes (N,) + voice (V,) or a
    speaker id -> wav (N * hop,), sampled sample by sample (mu-law), each file's segments side by
    side (generate.decode_segments). options: temperature (0 = argmax), seed, max_batch."""

    name = "wavenet"

    def generate(self, tokens, conds, pitch_features, progress=False, temperature: float = 1.0, seed: int = 0,
                 max_batch: int = 128):
        from .generate import decode_segments

        return decode_segments(self.model, tokens, conds, temperature=temperature, seed=seed,
                               max_batch=max_batch, progress=progress)


IMPLEMENTATIONS = {cls.name: cls for cls in (FastDecoder, WaveNetDecoder)}


def decoders_of(model: VQVAE, config: Config, voices: NamedVoices) -> dict[str, Decoder]:
    """The decoders a model has, by name, default first (`VQVAE.decoders`)."""
    return {name: IMPLEMENTATIONS[name](model, config, voices) for name in model.decoders}
