"""The Python API: a trained codec loaded from a checkpoint, with encode / decode / convert.

    codec = load_model("default")                   # or a path to a checkpoint
    tokens = codec.encode(wav, sample_rate)         # np.int64, one token per hop (4 ms)
    wav16k = codec.decode(tokens, speaker="us1")    # float32 at codec.sample_rate, a named voice
    tf = codec.encode_utterance(wav, sample_rate)   # every token stream: a .vqc's content
    wav16k = codec.decode_file(tf)                  # in the speaker's own voice, at the input level
    wav16k = codec.decode_file("talk.vqc")          # a .vqc file read from disk

`Codec` is a facade: it loads a checkpoint and wires the model's TOKENIZER (tokenizer.py: audio ->
token streams) to its DECODERS (decoders.py: token streams -> audio, fast and WaveNet).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from . import checkpoint, codes
from .codes import bits_per_token
from .config import Config
from .decoders import Decoder, NamedVoices, decoders_of
from .errors import VqcodecError
from .models.vqvae import VQVAE
from .pretrained import SHIPPED_PRIORS
from .tokenizer import Tokenizer


class Codec:
    """A trained tokenizer and its decoders. v2 models: level normalisation, a voice vector per
    file, a fast deterministic decoder (default) and the WaveNet; v1 models: the WaveNet with a
    speaker table. `tokenizer` and `decoder(name)` are the two roles; the methods here wire them."""

    def __init__(self, model: VQVAE, config: Config, speakers: list[str], source: str = "",
                 voices: dict[str, list[int]] | None = None, f0_medians: dict[str, float] | None = None):
        self.model = model.eval()
        self.config = config
        self.source = source
        self.tokenizer = Tokenizer(self.model, config)
        self.model_id = self.tokenizer.model_id
        self.named_voices = NamedVoices(self.model, config, speakers, voices, f0_medians)
        self.voices = self.named_voices.vectors  # {name: uint8 voice vector} (v2)
        self.speakers = self.named_voices.speakers  # named voices: the v2 table, or the v1 speaker table
        self.f0_medians = self.named_voices.f0_medians  # {name: median F0 in Hz} (models with a pitch stream)
        self._decoders = decoders_of(self.model, config, self.named_voices)

    # ------------------------------------------------------------------ facts
    @property
    def sample_rate(self) -> int:
        return self.tokenizer.sample_rate

    @property
    def hop(self) -> int:
        """Audio samples per token."""
        return self.tokenizer.hop

    @property
    def codebook_size(self) -> int:
        return self.config.model.quantizer.codebook_size

    @property
    def bits_per_token(self) -> int:
        return bits_per_token(self.codebook_size)

    @property
    def bitrate(self) -> float:
        """Nominal content rate (bits per token x codebooks x tokens per second); what a file stores:
        codes.describe."""
        return self.bits_per_token * self.codebooks * self.sample_rate / self.hop

    @property
    def codebooks(self) -> int:
        """Residual codebooks per frame (1 for every shipped model): a file may keep the first k."""
        return self.tokenizer.codebooks

    @property
    def ladder(self) -> list[float]:
        """Nominal bit/s of each bitrate-ladder step, k = 1..codebooks (content, plus the pitch stream)."""
        return self.tokenizer.ladder()

    def codebooks_for_kbps(self, kbps: float) -> int:
        """The largest k whose ladder step is at most `kbps` (`Tokenizer.codebooks_for_kbps`): pass it
        as encode_utterance(..., codebooks=k). VqcodecError without a ladder or below its lowest step."""
        return self.tokenizer.codebooks_for_kbps(kbps)

    @property
    def device(self) -> torch.device:
        return self.tokenizer.device

    @property
    def has_voice(self) -> bool:
        """True for v2 models: the voice travels in the file as a vector."""
        return self.tokenizer.has_voice

    @property
    def has_pitch(self) -> bool:
        """True for models with a pitch stream (`model.pitch`): files carry a coarse F0 contour and
        the median F0; conversion keeps the contour and takes the target voice's median."""
        return self.tokenizer.has_pitch

    @property
    def decoders(self) -> list[str]:
        """The decoders this model has, default first ("fast", "wavenet")."""
        return list(self._decoders)

    def decoder(self, name: str | None = None) -> Decoder:
        """The decoder called `name` (default: the model's first)."""
        name = name or self.decoders[0]
        if name not in self._decoders:
            raise VqcodecError(f"this model has no {name!r} decoder (it has: {', '.join(self.decoders)})")
        return self._decoders[name]

    def speaker_index(self, speaker: str | None) -> int:
        return self.named_voices.index(speaker)

    # ------------------------------------------------------------------ encode (the tokenizer)
    def prepare(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 at the model's rate (`Tokenizer.prepare`)."""
        return self.tokenizer.prepare(wav, sample_rate)

    def gain_of(self, wav: np.ndarray) -> float:
        """The level-normalisation factor of a waveform at the model's rate (1.0 for v1 models)."""
        return self.tokenizer.gain_of(wav)

    def encode(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0,
               codebooks: int | None = None) -> np.ndarray:
        """Tokens (ceil(samples / hop),) for a mono waveform ((.., k) for k > 1 residual codebooks).
        Long inputs are encoded in chunks of `chunk_seconds` with enough context on each side that
        the tokens equal a whole-file encode while memory stays bounded. v2 models scale the input
        to a fixed level first, so the tokens do not depend on the input gain."""
        return self.encode_utterance(wav, sample_rate, chunk_seconds, codebooks=codebooks).tokens

    def encode_utterance(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0,
                         speaker: str = "", codebooks: int | None = None) -> codes.TokenFile:
        """Everything a .vqc file holds for a waveform: tokens, gain, voice vector (v2), pitch stream.
        codebooks: a model with a bitrate ladder keeps the first k of its codebooks (default: all;
        `codebooks_for_kbps`); the tokens are then (frames, k)."""
        return self.tokenizer.encode_utterance(wav, sample_rate, chunk_seconds, speaker, codebooks)

    def encode_file(self, path: str | os.PathLike, chunk_seconds: float = 5.0) -> np.ndarray:
        """Tokens of an audio file, read from disk one chunk at a time when it is already at the
        model's sample rate (memory stays bounded however long the file; tokens equal `encode`
        of the whole waveform). Other rates are loaded whole and resampled first.
        Raises AudioError for a missing, unreadable, empty or non-finite file."""
        return self.encode_file_utterance(path, chunk_seconds).tokens

    def encode_file_utterance(self, path, chunk_seconds: float = 5.0, speaker: str = "",
                              codebooks: int | None = None) -> codes.TokenFile:
        """Like encode_utterance, for an audio file (see encode_file)."""
        return self.tokenizer.encode_file_utterance(path, chunk_seconds, speaker, codebooks)

    def voice_of(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """The 8-bit voice vector (uint8, V bytes) of a recording: what `convert --like` uses."""
        return self.tokenizer.voice_of(wav, sample_rate)

    def median_f0_of(self, wav: np.ndarray, sample_rate: int) -> float:
        """The median F0 in Hz of a recording's voiced frames (0.0 if none): with the voice vector, what
        `convert --like` takes from the reference on models with a pitch stream."""
        return self.tokenizer.median_f0_of(wav, sample_rate)

    # ------------------------------------------------------------------ decode (a decoder)
    def decode(self, tokens: np.ndarray, speaker: str | None = None, temperature: float = 1.0,
               seed: int = 0, num_samples: int | None = None, progress: bool = False,
               max_batch: int = 128, voice: np.ndarray | None = None, gain: float = 1.0,
               decoder: str | None = None, pitch: np.ndarray | None = None,
               f0_median: float | None = None) -> np.ndarray:
        """Waveform at self.sample_rate for tokens ((frames,), or (frames, k): the first k codebooks of
        a ladder model), in the voice of `speaker` (a named voice, see
        `speakers`) or of `voice` (a v2 voice vector, e.g. a file's `tf.voice` or `voice_of(ref)`):
        one of them is required (`decode_file` decodes a .vqc in its own voice).
        The output is multiplied by `gain` (default 1: the model's normalised level; a file's gain
        restores the input's level). decoder: "fast" (v2 default, deterministic) or "wavenet"
        (sampled: temperature, seed). num_samples trims to the original length.
        Models with a pitch stream also need `pitch` (the file's levels) and a median F0: `speaker`'s
        (a named voice), else `f0_median` (the file's, or a reference's from `median_f0_of`)."""
        return self.decode_many([tokens], [speaker], temperature, seed, [num_samples], progress,
                                max_batch, voices=[voice], gains=[gain], decoder=decoder,
                                pitches=[pitch], f0_medians=[f0_median])[0]

    def decode_file(self, tf: codes.TokenFile | str | os.PathLike, speaker: str | None = None,
                    voice: np.ndarray | None = None, f0_median: float | None = None,
                    priors=SHIPPED_PRIORS, **kw) -> np.ndarray:
        """Decode a .vqc file (a path) or a TokenFile (`codes.read`, `encode_utterance`) in its own
        voice (or `speaker`'s / `voice`'s and `f0_median`'s) at its original level. The file must
        come from this model's tokenizer. An entropy-coded file is read with whichever of `priors`
        (shipped names or checkpoint paths) coded it. kw: as `decode` (decoder, temperature, ...)."""
        if isinstance(tf, (str, os.PathLike)):
            tf = codes.read(tf, expect_model_id=self.model_id, coder_for=coder_for_priors(*priors))
        elif not isinstance(tf, codes.TokenFile):
            raise VqcodecError(f"decode_file takes a .vqc path or a codes.TokenFile, got {type(tf).__name__}; "
                               "for an array of tokens use decode(tokens, speaker=... or voice=...)")
        elif tf.model_id.lower() != self.model_id:
            raise VqcodecError(f"these tokens were made by model {tf.model_id}, but this model is {self.model_id} "
                               "(decode with the model that encoded them)")
        pitch = dict(pitch=tf.pitch, f0_median=tf.f0_median if f0_median is None else f0_median) \
            if tf.pitch_levels else {}
        return self.decode(tf.tokens, speaker, voice=voice if voice is not None else tf.voice, gain=tf.gain,
                           num_samples=tf.num_samples, **pitch, **kw)

    def decode_many(self, token_seqs, speakers, temperature: float = 1.0, seed: int = 0,
                    num_samples=None, progress: bool = False, max_batch: int = 128,
                    voices=None, gains=None, decoder: str | None = None, pitches=None,
                    f0_medians=None) -> list[np.ndarray]:
        """Several files decoded together (the WaveNet decodes their segments side by side); each
        list holds one entry per file, as the arguments of `decode`.
        progress: True for a bar of its own, or a bar to advance by seconds of audio (e.g. one
        over a whole batch of files, `progress.bar_for`)."""
        return self.decoder(decoder).decode_many(token_seqs, speakers, voices, pitches, f0_medians, gains,
                                                 num_samples, progress, temperature=temperature, seed=seed,
                                                 max_batch=max_batch)

    # ------------------------------------------------------------------ convert (both)
    def convert(self, wav: np.ndarray, sample_rate: int, speaker: str | None = None,
                like: np.ndarray | None = None, like_rate: int | None = None, **kw) -> np.ndarray:
        """Voice conversion: encode, then decode in `speaker`'s voice (a named voice) or in the
        voice of the recording `like` (v2 models) at sample rate `like_rate` (required with `like`:
        a reference's rate is its own, not the source's)."""
        if (speaker is None) == (like is None):
            raise VqcodecError("give exactly one target voice: a speaker name or a reference recording")
        voice = median = None
        if like is not None:
            if like_rate is None:
                raise VqcodecError("convert(..., like=ref) needs like_rate=, the reference's sample rate")
            # fail on the reference before the encode
            voice = self.voice_of(like, like_rate)
            median = self.median_f0_of(like, like_rate) if self.has_pitch else None
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


class ModelsById:
    """model id -> the Codec of whichever of the named models (shipped names or checkpoint paths)
    has that id: how a .vqc file, which names the tokenizer that made it, finds its model (as an
    entropy-coded stream finds its prior: `coder_for_priors`). Models are loaded in order, on first
    need, once each; a shipped model missing from this install is passed over (and named in the
    error of a file no model matches)."""

    def __init__(self, *names: str | os.PathLike, device: str | torch.device = "cpu"):
        self.names = names
        self.device = device
        self.codecs: dict[str, Codec] = {}   # model id -> codec, in loading order
        self.name_of: dict[str, str] = {}    # model id -> the name it was loaded by
        self.tried: list[str] = []           # "name = id", or why a name was passed over

    def first(self) -> Codec:
        """The first named model (loaded now if not yet; its errors are raised)."""
        if not self.tried:
            self._load(self.names[0])
        return next(iter(self.codecs.values()))

    def find(self, model_id: str) -> Codec | None:
        """The model with this id, loading the names not tried yet until one has it; else None."""
        model_id = model_id.lower()
        while model_id not in self.codecs and len(self.tried) < len(self.names):
            try:
                self._load(self.names[len(self.tried)])
            except VqcodecError as e:
                self.tried.append(f"{self.names[len(self.tried)]} (not loaded: {e})")
        return self.codecs.get(model_id)

    def __call__(self, model_id: str) -> Codec:
        codec = self.find(model_id)
        if codec is None:
            raise VqcodecError(f"made by model {model_id.lower()}, which is none of the models tried "
                               f"({', '.join(self.tried)}): decode it with the model that encoded it")
        return codec

    def _load(self, name) -> None:
        codec = load_model(name, self.device)
        self.codecs.setdefault(codec.model_id, codec)
        self.name_of.setdefault(codec.model_id, str(name))
        self.tried.append(f"{name} = {codec.model_id}")


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
