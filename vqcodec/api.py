"""The Python API: a trained codec loaded from a checkpoint, with encode / decode / convert.

    codec = load_model("default")                   # or a path to a checkpoint
    tokens = codec.encode(wav, sample_rate)         # np.int64, one token per hop (4 ms)
    wav16k = codec.decode(tokens, speaker="us1")    # float32 at codec.sample_rate
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .audio import resample
from .codes import bits_per_token
from .config import Config
from .errors import AudioError, VqcodecError
from .generate import decode_segments, release_memory
from .models.vqvae import VQVAE


class Codec:
    def __init__(self, model: VQVAE, config: Config, speakers: list[str], source: str = ""):
        self.model = model.eval()
        self.config = config
        self.speakers = list(speakers)
        self.source = source
        self.model_id = checkpoint.model_id(model.state_dict(), config.to_dict()["model"])

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

    def speaker_index(self, speaker: str | None) -> int:
        if speaker is None:
            return 0
        if speaker not in self.speakers:
            shown = ", ".join(self.speakers[:20]) + (" ..." if len(self.speakers) > 20 else "")
            raise VqcodecError(f"unknown speaker {speaker!r}; this model knows: {shown}")
        return self.speakers.index(speaker)

    # ------------------------------------------------------------------ encode
    def prepare(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float32 at the model's rate; the input rules are `audio.as_mono_float`'s (int16 /
        int32 scaled, (samples, channels) mixed down, channels-first and ambiguous shapes refused)."""
        from .audio import as_mono_float

        wav = as_mono_float(wav, sample_rate)
        return resample(wav, int(sample_rate), self.sample_rate)

    def encode(self, wav: np.ndarray, sample_rate: int, chunk_seconds: float = 5.0) -> np.ndarray:
        """Tokens (ceil(samples / hop),) for a mono waveform. Long inputs are encoded in chunks of
        `chunk_seconds` with enough context on each side that the tokens equal a whole-file encode
        while memory stays bounded."""
        wav = self.prepare(wav, sample_rate)
        return self._encode_chunks(lambda lo, hi: wav[lo:hi], len(wav), chunk_seconds)

    def encode_file(self, path: str | os.PathLike, chunk_seconds: float = 5.0) -> np.ndarray:
        """Tokens of an audio file, read from disk one chunk at a time when it is already at the
        model's sample rate (memory stays bounded however long the file; tokens equal `encode`
        of the whole waveform). Other rates are loaded whole and resampled first.
        Raises AudioError for a missing, unreadable, empty or non-finite file."""
        return self._encode_file(path, chunk_seconds)[0]

    def _encode_file(self, path, chunk_seconds: float = 5.0) -> tuple[np.ndarray, int]:
        """(tokens, number of samples at the model's rate) of an audio file: see encode_file."""
        import soundfile as sf

        from . import audio

        path = Path(path)
        info = audio.info(path)
        if info.samplerate != self.sample_rate or info.frames <= 0:
            wav = audio.load(path, self.sample_rate)
            return self.encode(wav, self.sample_rate, chunk_seconds), len(wav)
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

            return self._encode_chunks(read, info.frames, chunk_seconds), info.frames

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
        codes = []
        for a in range(0, total, chunk):
            b = min(a + chunk, total)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            x = np.zeros(hi - lo, dtype=np.float32)
            got = read(lo, min(hi, num_samples))
            x[:len(got)] = got
            z = encoder(torch.from_numpy(x).to(self.device, torch.float64).view(1, -1))[0].T  # (frames, D)
            dist2 = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)[None, :]
            c = dist2.argmin(1).cpu().numpy()
            codes.append(c[(a - lo) // hop:(b - lo) // hop])
            del x, z, dist2
            release_memory()
        return np.concatenate(codes).astype(np.int64)

    def _encoder64(self):
        """The encoder and codebook in float64, made once. A conv's float32 result at a position
        depends (at the 1e-8 level) on the length of the input it runs over, so a chunk and the
        whole file can land on different sides of a near tie between two codes; in float64 such
        ties are ~1e-9 times rarer, which is what makes chunked tokens equal whole-file tokens.
        (Cost, bench/codec_speed.py: encoding ~2x slower, still far faster than real time; the
        float64 convs unfold their input, ~0.15 GB per 5 s chunk at the shipped size, hence the
        5 s default chunk.) Made from the weights at first use: a Codec is for inference."""
        if getattr(self, "_enc64", None) is None:
            import copy

            self._enc64 = (copy.deepcopy(self.model.encoder).double().eval(),
                           self.model.quantizer.codebook.detach().double())
        return self._enc64

    # ------------------------------------------------------------------ decode
    def decode(self, tokens: np.ndarray, speaker: str | None = None, temperature: float = 1.0,
               seed: int = 0, num_samples: int | None = None, progress: bool = False,
               max_batch: int = 128) -> np.ndarray:
        """Waveform at self.sample_rate for tokens, in the voice of `speaker` (default: the
        model's first speaker). num_samples trims to the original length."""
        return self.decode_many([tokens], [speaker], temperature, seed, [num_samples], progress,
                                max_batch)[0]

    def decode_many(self, token_seqs, speakers, temperature: float = 1.0, seed: int = 0,
                    num_samples=None, progress: bool = False, max_batch: int = 128) -> list[np.ndarray]:
        """Several files decoded side by side in one batch of segments."""
        ids = [self.speaker_index(s) for s in speakers]
        seqs = []
        for t in token_seqs:
            t = torch.as_tensor(np.asarray(t, dtype=np.int64))
            if t.numel() == 0:
                raise VqcodecError("no tokens to decode")
            if int(t.min()) < 0 or int(t.max()) >= self.codebook_size:
                raise VqcodecError(f"token values must lie in [0, {self.codebook_size})")
            seqs.append(t)
        wavs = decode_segments(self.model, seqs, ids, temperature=temperature, seed=seed,
                               max_batch=max_batch, progress=progress)
        num_samples = num_samples or [None] * len(wavs)
        return [w[:n] if n else w for w, n in zip(wavs, num_samples)]

    def convert(self, wav: np.ndarray, sample_rate: int, speaker: str, **kw) -> np.ndarray:
        """Voice conversion: encode, then decode in `speaker`'s voice."""
        self.speaker_index(speaker)  # fail before the (slow) encode
        tokens = self.encode(wav, sample_rate)
        n = round(len(wav) * self.sample_rate / sample_rate)
        return self.decode(tokens, speaker, num_samples=n, **kw)


def from_checkpoint(state: dict, source: str = "", device: str | torch.device = "cpu") -> Codec:
    if state.get("kind") != "vqvae":
        raise VqcodecError(f"{source or 'checkpoint'}: holds a {state.get('kind')!r} model, not a VQ-VAE")
    cfg = checkpoint.config_of(state)
    speakers = state["meta"]["speakers"]
    model = VQVAE(cfg.model, len(speakers))
    model.load_state_dict(state["model"])
    return Codec(model.to(device), cfg, speakers, source)


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
        from tqdm import tqdm

        from .generate import sample_stream

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
        with tqdm(total=num_tokens, disable=not progress, desc="sampling tokens", unit="token", leave=False) as bar:
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
