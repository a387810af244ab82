"""The Python API: a trained codec loaded from a checkpoint, with encode / decode / convert.

    codec = load_model("default")                   # or a path to a checkpoint
    tokens = codec.encode(wav, sample_rate)         # np.int64, one token per hop (4 ms)
    wav16k = codec.decode(tokens, speaker="us1")    # float32 at codec.sample_rate
    tf = codec.encode_utterance(wav, sample_rate)   # tokens + gain + voice vector: a .vqc's content
    wav16k = codec.decode_file(tf)                  # in the speaker's own voice, at the input level
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, codes
from .audio import VOICE_MAX_SECONDS, check_reference, resample
from .codes import bits_per_token
from .config import Config
from .errors import AudioError, VqcodecError
from .generate import decode_segments, release_memory
from .models.vqvae import VQVAE
from .nn import voice as voice_codec
from .nn.pitch import yin_frame_length
from .tasks import level_gain

FAST_CHUNK_TOKENS = 2500     # fast decoding works on 10 s chunks (plus context): bounded memory


class Codec:
    """A trained tokenizer and its decoders. v2 models: level normalisation, a voice vector per
    file, a fast deterministic decoder (default) and the WaveNet; v1 models: the WaveNet with a
    speaker table."""

    def __init__(self, model: VQVAE, config: Config, speakers: list[str], source: str = "",
                 voices: dict[str, list[int]] | None = None, f0_medians: dict[str, float] | None = None):
        self.model = model.eval()
        self.config = config
        self.source = source
        self.model_id = checkpoint.model_id(model.state_dict(), config.to_dict()["model"])
        self.voices = {name: np.asarray(v, dtype=np.uint8) for name, v in (voices or {}).items()}
        # named voices: the v2 table of voice vectors, or the v1 speaker table
        self.speakers = list(self.voices) if self.has_voice else list(speakers)
        # models with a pitch stream: the median F0 (Hz) of each named voice
        self.f0_medians = {name: float(v) for name, v in (f0_medians or {}).items()}

    # ------------------------------------------------------------------ facts
    @property
    def sample_rate(self) -> int:
        return self.config.model.sample_rate

    @property
    def hop(self) -> int:
        return self.model.hop

    @property
    def codebook_size(self) -> int:
        return self.config.model.quantizer.codebook_size

    @property
    def bits_per_token(self) -> int:
        return bits_per_token(self.codebook_size)

    @property
    def bitrate(self) -> float:
        return self.bits_per_token * self.sample_rate / self.hop

    @property
    def device(self) -> torch.device:
        return self.model.quantizer.codebook.device

    @property
    def has_voice(self) -> bool:
        """True for v2 models: the voice travels in the file as a vector."""
        return self.model.voice_encoder is not None

    @property
    def has_pitch(self) -> bool:
        """True for models with a pitch stream (`model.pitch`): files carry a coarse F0 contour and
        the median F0; conversion keeps the contour and takes the target voice's median."""
        return self.model.has_pitch

    @property
    def decoders(self) -> list[str]:
        """The decoders this model has, default first ("fast", "wavenet")."""
        return self.model.decoders

    def speaker_index(self, speaker: str | None) -> int:
        if speaker is None:
            return 0
        if speaker not in self.speakers:
            shown = ", ".join(self.speakers[:20]) + (" ..." if len(self.speakers) > 20 else "")
            raise VqcodecError(f"unknown speaker {speaker!r}; this model knows: {shown or '(no named voices)'}")
        return self.speakers.index(speaker)

    def _decoder_name(self, decoder: str | None) -> str:
        name = decoder or self.decoders[0]
        if name not in self.decoders:
            raise VqcodecError(f"this model has no {name!r} decoder (it has: {', '.join(self.decoders)})")
        return name

    # ------------------------------------------------------------------ encode
    def prepare(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 at the model's rate; the input rules are `audio.as_mono_float`'s (int16 /
        int32 scaled, (samples, channels) mixed down, channels-first and ambiguous shapes refused)."""
        from .audio import as_mono_float

        wav = as_mono_float(wav, sample_rate)
        return resample(wav, int(sample_rate), self.sample_rate)

    def gain_of(self, wav: np.ndarray) -> float:
        """The level-normalisation factor of a waveform at the model's rate (1.0 for v1 models)."""
        rms = self.config.model.level_rms
        return level_gain(wav, rms) if rms > 0 else 1.0

    def encode(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0) -> np.ndarray:
        """Tokens (ceil(samples / hop),) for a mono waveform. Long inputs are encoded in chunks of
        `chunk_seconds` with enough context on each side that the tokens equal a whole-file encode
        while memory stays bounded. v2 models scale the input to a fixed level first, so the
        tokens do not depend on the input gain."""
        return self.encode_utterance(wav, sample_rate, chunk_seconds).tokens

    def encode_utterance(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0,
                         speaker: str = "") -> codes.TokenFile:
        """Everything a .vqc file holds for a waveform: tokens, gain and voice vector (v2)."""
        wav = self.prepare(wav, sample_rate)
        gain = self.gain_of(wav)
        read = lambda lo, hi: wav[lo:hi] * np.float32(gain)  # noqa: E731
        tokens = self._encode_chunks(read, len(wav), chunk_seconds)
        voice = self._voice_bytes(wav[:VOICE_MAX_SECONDS * self.sample_rate] * np.float32(gain))
        return self._token_file(tokens, len(wav), 1.0 / gain, voice, speaker, self._pitch_stream(read, len(wav)))

    def voice_of(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """The 8-bit voice vector (uint8, V bytes) of a recording: what `convert --like` uses."""
        if not self.has_voice:
            raise VqcodecError("this model has no voice encoder (a v1 model): use a named speaker")
        wav = self.prepare(wav, sample_rate)
        check_reference(len(wav), self.sample_rate)
        if float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < 1e-4:
            raise AudioError("reference voice is silent")
        return self._voice_bytes(wav[:VOICE_MAX_SECONDS * self.sample_rate] * np.float32(self.gain_of(wav)))

    @torch.inference_mode()
    def _voice_bytes(self, wav: np.ndarray) -> np.ndarray:
        if not self.has_voice:
            return np.zeros(0, dtype=np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device).view(1, -1)
        return voice_codec.to_bytes(self.model.voice(x)[0])

    def _token_file(self, tokens, num_samples, gain, voice, speaker="", pitch=None) -> codes.TokenFile:
        """gain: what the decoder multiplies its audio by (1 / the encoder's normalisation);
        pitch: (levels, median F0) for models with a pitch stream."""
        extra = {}
        if pitch is not None:
            p = self.config.model.pitch
            extra = dict(pitch=pitch[0], pitch_levels=p.levels, pitch_every=p.every, f0_median=pitch[1])
        return codes.TokenFile(tokens=tokens, sample_rate=self.sample_rate, num_samples=num_samples,
                               hop=self.hop, codebook_size=self.codebook_size, model_id=self.model_id,
                               speaker=speaker, gain=float(np.float32(gain)), voice=voice, **extra)

    @torch.inference_mode()
    def _f0(self, read, num_samples: int, block_seconds: float = 60.0) -> torch.Tensor:
        """F0 (Hz, 0 unvoiced) of every pitch frame of samples [0, num_samples), read block by block
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

    def _pitch_stream(self, read, num_samples: int) -> tuple[np.ndarray, float] | None:
        """(levels, median F0) of level-normalised audio for models with a pitch stream, else None."""
        if not self.has_pitch:
            return None
        levels, median = self.model.pitch_of_f0(self._f0(read, num_samples))
        return levels[0].numpy().astype(np.int64), float(np.float32(median[0]))

    def median_f0_of(self, wav: np.ndarray, sample_rate: int) -> float:
        """The median F0 in Hz of a recording's voiced frames (0.0 if none): with the voice vector, what
        `convert --like` takes from the reference on models with a pitch stream."""
        if not self.has_pitch:
            raise VqcodecError("this model has no pitch stream")
        from .nn.pitch import PitchQuantizer

        wav = self.prepare(wav, sample_rate)
        x = wav * np.float32(self.gain_of(wav))
        return float(np.float32(PitchQuantizer.median(self._f0(lambda lo, hi: x[lo:hi], len(x)))[0]))

    def encode_file(self, path: str | os.PathLike, chunk_seconds: float = 5.0) -> np.ndarray:
        """Tokens of an audio file, read from disk one chunk at a time when it is already at the
        model's sample rate (memory stays bounded however long the file; tokens equal `encode`
        of the whole waveform). Other rates are loaded whole and resampled first.
        Raises AudioError for a missing, unreadable, empty or non-finite file."""
        return self.encode_file_utterance(path, chunk_seconds).tokens

    def encode_file_utterance(self, path, chunk_seconds: float = 5.0, speaker: str = "") -> codes.TokenFile:
        """Like encode_utterance, for an audio file (see encode_file)."""
        import soundfile as sf

        from . import audio

        path = Path(path)
        info = audio.info(path)
        if info.samplerate != self.sample_rate or info.frames <= 0:
            wav = audio.load(path, self.sample_rate)
            return self.encode_utterance(wav, self.sample_rate, chunk_seconds, speaker)
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
            scaled = lambda lo, hi: read(lo, hi) * np.float32(gain)  # noqa: E731
            tokens = self._encode_chunks(scaled, info.frames, chunk_seconds)
            voice = self._voice_bytes(read(0, VOICE_MAX_SECONDS * self.sample_rate) * np.float32(gain))
            pitch = self._pitch_stream(scaled, info.frames)
        return self._token_file(tokens, info.frames, 1.0 / gain, voice, speaker, pitch)

    def _encode_file(self, path, chunk_seconds: float = 5.0) -> tuple[np.ndarray, int]:
        tf = self.encode_file_utterance(path, chunk_seconds)
        return tf.tokens, tf.num_samples

    @torch.inference_mode()
    def _encode_chunks(self, read, num_samples: int, chunk_seconds: float) -> np.ndarray:
        """Encode samples [0, num_samples) given read(lo, hi) -> float32 samples lo..hi (fewer at
        the end of the audio): each chunk with `encoder.context` samples each side (zeros past the
        end, as a whole-file encode pads), so the tokens equal a whole-file encode."""
        if num_samples <= 0:
            raise AudioError("audio is empty (0 samples)")
        if not chunk_seconds > 0:
            raise VqcodecError(f"chunk length must be positive, got {chunk_seconds}")
        hop = self.hop
        encoder, codebook = self._encoder64()
        total = -(-num_samples // hop) * hop  # padded to whole tokens
        chunk = max(1, int(chunk_seconds * self.sample_rate) // hop) * hop
        ctx = self.model.encoder.context
        out = []
        for a in range(0, total, chunk):
            b = min(a + chunk, total)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            x = np.zeros(hi - lo, dtype=np.float32)
            got = read(lo, min(hi, num_samples))
            x[:len(got)] = got
            z = encoder(torch.from_numpy(x).to(self.device, torch.float64).view(1, -1))[0].T  # (frames, D)
            dist2 = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)[None, :]
            c = dist2.argmin(1).cpu().numpy()
            out.append(c[(a - lo) // hop:(b - lo) // hop])
            del x, z, dist2
            release_memory()
        return np.concatenate(out).astype(np.int64)

    def _encoder64(self):
        """The encoder and codebook in float64, made once. A conv's float32 result at a position
        depends (at the 1e-8 level) on the length of the input it runs over, so a chunk and the
        whole file can land on different sides of a near tie between two codes; in float64 such
        ties are ~1e-9 times rarer, which is what makes chunked tokens equal whole-file tokens.
        (Cost, bench/codec_speed.py: encoding ~2x slower, still far faster than real time.)
        Made from the weights at first use: a Codec is for inference."""
        if getattr(self, "_enc64", None) is None:
            import copy

            self._enc64 = (copy.deepcopy(self.model.encoder).double().eval(),
                           self.model.quantizer.codebook.detach().double())
        return self._enc64

    # ------------------------------------------------------------------ decode
    def _global(self, speaker: str | None, voice) -> object:
        """What the decoder is conditioned on: a voice vector (v2) or a speaker id (v1)."""
        if not self.has_voice:
            if voice is not None and len(voice):
                raise VqcodecError("this model (v1) has no voice vectors: use a named speaker")
            return self.speaker_index(speaker)
        if speaker is not None:
            self.speaker_index(speaker)
            voice = self.voices[speaker]
        if voice is None or not len(voice):
            if not self.speakers:
                raise VqcodecError("no voice given and the model has no named voices")
            voice = self.voices[self.speakers[0]]
        voice = np.asarray(voice, dtype=np.uint8)
        if voice.shape != (self.config.model.voice.dim,):
            raise VqcodecError(f"voice vector has {voice.size} values; this model uses {self.config.model.voice.dim}")
        return voice_codec.from_bytes(voice)

    def decode(self, tokens: np.ndarray, speaker: str | None = None, temperature: float = 1.0,
               seed: int = 0, num_samples: int | None = None, progress: bool = False,
               max_batch: int = 128, voice: np.ndarray | None = None, gain: float = 1.0,
               decoder: str | None = None, pitch: np.ndarray | None = None,
               f0_median: float | None = None) -> np.ndarray:
        """Waveform at self.sample_rate for tokens. The voice: `speaker` (a named voice), else
        `voice` (a v2 voice vector, e.g. from a file or `voice_of`), else the first named voice.
        The output is multiplied by `gain` (a file's gain undoes the encoder's level normalisation).
        decoder: "fast" (v2 default, deterministic) or "wavenet" (sampled: temperature, seed).
        num_samples trims to the original length.
        Models with a pitch stream also need `pitch` (the file's levels) and a median F0: `speaker`'s
        (a named voice), else `f0_median` (the file's, or a reference's from `median_f0_of`)."""
        return self.decode_many([tokens], [speaker], temperature, seed, [num_samples], progress,
                                max_batch, voices=[voice], gains=[gain], decoder=decoder,
                                pitches=[pitch], f0_medians=[f0_median])[0]

    def decode_file(self, tf: codes.TokenFile, speaker: str | None = None, voice: np.ndarray | None = None,
                    f0_median: float | None = None, **kw) -> np.ndarray:
        """Decode a TokenFile in its own voice (or `speaker`'s / `voice`'s and `f0_median`'s) at its
        original level."""
        pitch = dict(pitch=tf.pitch, f0_median=tf.f0_median if f0_median is None else f0_median) \
            if tf.pitch_levels else {}
        return self.decode(tf.tokens, speaker, voice=voice if voice is not None else tf.voice, gain=tf.gain,
                           num_samples=tf.num_samples, **pitch, **kw)

    def decode_many(self, token_seqs, speakers, temperature: float = 1.0, seed: int = 0,
                    num_samples=None, progress: bool = False, max_batch: int = 128,
                    voices=None, gains=None, decoder: str | None = None, pitches=None,
                    f0_medians=None) -> list[np.ndarray]:
        """Several files decoded together (the WaveNet decodes their segments side by side).
        progress: True for a bar of its own, or a bar to advance by seconds of audio (e.g. one
        over a whole batch of files, `progress.bar_for`)."""
        name = self._decoder_name(decoder)
        voices = voices or [None] * len(token_seqs)
        conds = [self._global(s, v) for s, v in zip(speakers, voices)]
        pitches = pitches or [None] * len(token_seqs)
        f0_medians = f0_medians or [None] * len(token_seqs)
        seqs = []
        for t in token_seqs:
            t = torch.as_tensor(np.asarray(t, dtype=np.int64))
            if t.ndim != 1:
                raise VqcodecError(f"tokens must be a 1-D sequence, got shape {tuple(t.shape)}")
            if t.numel() == 0:
                raise VqcodecError("no tokens to decode")
            if int(t.min()) < 0 or int(t.max()) >= self.codebook_size:
                raise VqcodecError(f"token values must lie in [0, {self.codebook_size})")
            seqs.append(t)
        if name == "fast":
            feats = [self._pitch_features(t, p, s, m) for t, p, s, m in zip(seqs, pitches, speakers, f0_medians)]
            wavs = [self._decode_fast(t, c, progress, pitch_features=f) for t, c, f in zip(seqs, conds, feats)]
        else:
            wavs = decode_segments(self.model, seqs, conds, temperature=temperature, seed=seed,
                                   max_batch=max_batch, progress=progress)
        num_samples = num_samples or [None] * len(wavs)
        gains = gains or [1.0] * len(wavs)
        out = []
        for w, n, g in zip(wavs, num_samples, gains):
            w = w[:n] if n else w
            out.append((w * np.float32(g)).astype(np.float32) if g != 1.0 else w)
        return out

    def _pitch_features(self, tokens: torch.Tensor, pitch, speaker: str | None, f0_median: float | None):
        """The fast decoder's pitch input (1, F, num_tokens) for a model with a pitch stream, else None."""
        if not self.has_pitch:
            if pitch is not None and len(pitch):
                raise VqcodecError("this model has no pitch stream, but a pitch stream was given")
            return None
        if pitch is None:
            raise VqcodecError("this model decodes tokens with their pitch stream (a .vqc file of this model "
                               "holds it); none was given")
        levels, n = np.asarray(pitch), len(tokens)
        problem = codes.pitch_stream_problem(levels, n, self.config.model.pitch.every, self.config.model.pitch.levels)
        if problem:
            raise VqcodecError(problem)
        if speaker is not None:
            f0_median = self.f0_medians.get(speaker)
        if f0_median is None or not np.isfinite(f0_median) or f0_median < 0:
            raise VqcodecError(f"a median F0 in Hz is needed to decode the pitch stream, got {f0_median!r}")
        with torch.inference_mode():
            lv = torch.as_tensor(levels.astype(np.int64)).view(1, -1).to(self.device)
            return self.model.pitch_input((lv, torch.tensor([float(f0_median)], device=self.device)), n)

    @torch.inference_mode()
    def _decode_fast(self, tokens: torch.Tensor, voice: torch.Tensor, progress: bool = False,
                     chunk_tokens: int = FAST_CHUNK_TOKENS, pitch_features: torch.Tensor | None = None) -> np.ndarray:
        """The fast decoder over a long sequence in chunks with `context` tokens of overlap each
        side: each chunk's kept part is what a whole-file pass computes (to float rounding), so
        memory stays bounded with no audible seams."""
        from .progress import bar_for

        n, hop = len(tokens), self.hop
        ctx = self.model.fast_decoder.context
        out = np.zeros(n * hop, dtype=np.float32)
        v = voice.to(self.device).view(1, -1)
        with bar_for(progress, total=n * hop / self.sample_rate, desc="decoding", unit="s audio", leave=False,
                     bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]") as bar:
            for a in range(0, n, chunk_tokens):
                b = min(n, a + chunk_tokens)
                lo, hi = max(0, a - ctx), min(n, b + ctx)
                feats = None if pitch_features is None else pitch_features[..., lo:hi]
                wav = self.model.decode_fast(tokens[lo:hi].to(self.device).view(1, -1), v, feats)[0]
                out[a * hop:b * hop] = wav[(a - lo) * hop:(b - lo) * hop].cpu().numpy()
                bar.update((b - a) * hop / self.sample_rate)
        return out

    def convert(self, wav: np.ndarray, sample_rate: int, speaker: str | None = None,
                like: np.ndarray | None = None, like_rate: int | None = None, **kw) -> np.ndarray:
        """Voice conversion: encode, then decode in `speaker`'s voice (a named voice) or in the
        voice of the recording `like` (v2 models; at `like_rate`, default `sample_rate`)."""
        if (speaker is None) == (like is None):
            raise VqcodecError("give exactly one target voice: a speaker name or a reference recording")
        voice = median = None
        if like is not None:
            # like_rate=0 is refused by the input check, not taken for "not given"; fail before the encode
            rate = sample_rate if like_rate is None else like_rate
            voice = self.voice_of(like, rate)
            median = self.median_f0_of(like, rate) if self.has_pitch else None
        else:
            self.speaker_index(speaker)
        return self.decode_file(self.encode_utterance(wav, sample_rate), speaker, voice=voice, f0_median=median, **kw)


def from_checkpoint(state: dict, source: str = "", device: str | torch.device = "cpu") -> Codec:
    if state.get("kind") != "vqvae":
        raise VqcodecError(f"{source or 'checkpoint'}: holds a {state.get('kind')!r} model, not a VQ-VAE")
    cfg = checkpoint.config_of(state)
    speakers = state["meta"]["speakers"]
    model = VQVAE(cfg.model, len(speakers))
    model.load_state_dict(state["model"])
    return Codec(model.to(device), cfg, speakers, source, voices=state["meta"].get("voices"),
                 f0_medians=state["meta"].get("f0_medians"))


def load_model(name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> Codec:
    from .pretrained import resolve

    path = resolve(name_or_path)
    return from_checkpoint(checkpoint.load(path, map_location=device), str(path), device)


class TokenPrior:
    """A trained prior over one VQ-VAE's tokens: samples new token streams."""

    def __init__(self, model, config: Config, meta: dict, source: str = ""):
        self.model = model.eval()
        self.config = config
        self.speakers = list(meta["speakers"])
        self.vqvae_model_id = meta["vqvae_model_id"]
        self.unigram_bits = meta.get("unigram_bits")
        self.source = source

    def check_compatible(self, codec: Codec) -> None:
        if self.vqvae_model_id != codec.model_id:
            raise VqcodecError(f"prior {self.source or ''} was trained on tokens of model {self.vqvae_model_id}, "
                               f"but the VQ-VAE {codec.source or ''} is {codec.model_id}: their codebooks differ")

    @torch.no_grad()
    def sample(self, num_tokens: int, speaker: str | None = None, temperature: float = 1.0, seed: int = 0,
               prompt: np.ndarray | None = None, progress: bool = False) -> np.ndarray:
        """num_tokens tokens (including the prompt, whose tokens are kept as given)."""
        from .generate import sample_stream
        from .progress import bar as progress_bar

        if not temperature >= 0:  # NaN too
            raise VqcodecError(f"temperature must be >= 0 (0 = argmax), got {temperature!r}")
        if self.model.cfg.speaker_conditioned:
            if speaker is not None and speaker not in self.speakers:
                raise VqcodecError(f"unknown speaker {speaker!r} for this prior; it knows: {', '.join(self.speakers)}")
            ids = torch.tensor([self.speakers.index(speaker) if speaker else 0])
        else:
            ids = None
        device = self.model.net.embed.weight.device
        prompt_t = None
        if prompt is not None and len(prompt):
            prompt_t = torch.as_tensor(np.asarray(prompt[:num_tokens], dtype=np.int64), device=device).view(1, -1)
        with progress_bar(total=num_tokens, disable=not progress, desc="sampling tokens", unit="token",
                          leave=False) as bar:
            out = sample_stream(self.model.net, num_tokens, None, ids if ids is None else ids.to(device),
                                temperature=temperature, seed=seed, prompt=prompt_t, bar=bar)
        return out[0].cpu().numpy()


def load_prior(name_or_path: str | os.PathLike = "default-prior", device: str | torch.device = "cpu") -> TokenPrior:
    from .models.prior import Prior
    from .pretrained import resolve

    path = resolve(name_or_path)
    state = checkpoint.load(path, map_location=device)
    if state.get("kind") != "prior":
        raise VqcodecError(f"{path}: holds a {state.get('kind')!r} model, not a prior")
    cfg = checkpoint.config_of(state)
    meta = state["meta"]
    model = Prior(cfg.prior, meta["codebook_size"], len(meta["speakers"]))
    model.load_state_dict(state["model"])
    return TokenPrior(model.to(device), cfg, meta, str(path))


def coder_for_priors(*names):
    """For `codes.read(..., coder_for=...)`: prior id -> the `entropy.EntropyCoder` of whichever of
    the named priors (shipped names like "default-prior" or checkpoint paths) has that id. Priors
    are loaded on first use, once; a file whose prior is not among them gets a FormatError naming
    what was tried. (Here, not in entropy.py: the coder and the file format never load models.)"""
    from .entropy import EntropyCoder
    from .errors import FormatError

    coders: dict[str, EntropyCoder] = {}
    loaded: list[str] = []

    def lookup(pid: str) -> EntropyCoder:
        if pid in coders:
            return coders[pid]
        for name in names[len(loaded):]:
            coder = EntropyCoder.from_prior(load_prior(name))
            coders[coder.prior_id] = coder
            loaded.append(f"{name} = {coder.prior_id}")
            if coder.prior_id == pid:
                return coder
        raise FormatError(f"entropy-coded with prior {pid}, which is not available (tried "
                          f"{', '.join(loaded) or 'no prior'}; give the prior it was written with)")
    return lookup
