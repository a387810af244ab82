"""What each model brings to the one training loop (train.py): model, batches, loss, metadata.

Batches are a pure function of (seed, step, rank): resuming at step s draws exactly the batches an
uninterrupted run would have drawn, with no data-loader state to save.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import Config
from .errors import VqcodecError
from .files import atomic_path
from .models.prior import Prior
from .models.vqvae import TRAINING_ONLY, VQVAE
from .tokenizer import level_gain  # the codec's level step, applied to training crops too

VALID_STEP = 10 ** 9  # RNG stream reserved for the fixed validation batches


def random_crops(items: Sequence[tuple[np.ndarray, int]], rng: np.random.Generator, batch_size: int,
                 window: int, return_picks: bool = False):
    """`batch_size` crops of `window` steps (audio samples or tokens), sequences drawn in proportion
    to their length; shorter ones are zero-padded at the end. items: (array, label) pairs; the
    crops keep the arrays' dtype. With return_picks, also the index of each crop's item."""
    lengths = np.array([len(a) for a, _ in items], dtype=np.float64)
    picks = rng.choice(len(items), size=batch_size, p=lengths / lengths.sum())
    out = np.zeros((batch_size, window), dtype=np.asarray(items[0][0][:1]).dtype)
    labels = np.zeros(batch_size, dtype=np.int64)
    for b, i in enumerate(picks):
        seq, labels[b] = items[i]
        start = int(rng.integers(0, max(1, len(seq) - window + 1)))
        crop = np.asarray(seq[start:start + window])
        out[b, :len(crop)] = crop
    return (out, labels, picks) if return_picks else (out, labels)


class _CropTask:
    """Shared batching for both tasks: train/valid items of (sequence, speaker index)."""
    window: int

    def __init__(self, cfg: Config, train_items, valid_items, speakers: list[str]):
        self.cfg = cfg
        self.train_items = train_items
        self.valid_items = valid_items or train_items
        self.speakers = speakers
        self._valid = None

    def _batch(self, step: int, rank: int, items):
        rng = np.random.default_rng([self.cfg.train.seed, step, rank])
        seqs, spk = random_crops(items, rng, self.cfg.train.batch_size, self.window)
        return self._to_tensor(seqs), torch.from_numpy(spk)

    def train_batch(self, step: int, rank: int, world_size: int):
        return self._batch(step, rank, self.train_items)

    def valid_batches(self):
        if self._valid is None:
            self._valid = [self._batch(VALID_STEP + i, 0, self.valid_items)
                           for i in range(self.cfg.train.valid_batches)]
        return self._valid


class VQVAETask(_CropTask):
    """Audio crops (int16 or float arrays at the model rate) -> VQ-VAE.

    With `model.level_rms` each crop is scaled by its utterance's gain (as the codec scales a whole
    file); with a voice encoder each batch also holds a reference crop per item, taken from
    another utterance of the same speaker where there is one."""
    kind = "vqvae"

    def __init__(self, cfg: Config, train_items, valid_items, speakers: list[str]):
        self.num_real_speakers = len(speakers)
        warps = np.ones(len(train_items))
        if cfg.data.pseudo_speakers:
            train_items, speakers, warps = add_pseudo_speakers(list(train_items), list(speakers),
                                                               cfg.data.pseudo_speakers, cfg.data.pseudo_utterances)
        super().__init__(cfg, train_items, valid_items, speakers)
        self._warps = {"train": warps, "valid": np.ones(len(self.valid_items))}
        hop = cfg.model.hop
        self.window = max(hop, int(cfg.data.window_seconds * cfg.model.sample_rate) // hop * hop)
        self.voice_window = int(cfg.data.voice_seconds * cfg.model.sample_rate)
        self._gains = {}
        self._by_speaker = {}
        for name, items in (("train", self.train_items), ("valid", self.valid_items)):
            rms = cfg.model.level_rms
            self._gains[name] = np.array([level_gain(a, rms) if rms > 0 else 1.0 for a, _ in items])
            by = {}
            for i, (_, label) in enumerate(items):
                by.setdefault(label, []).append(i)
            self._by_speaker[name] = by

    def _batch(self, step: int, rank: int, items):
        name = "train" if items is self.train_items else "valid"
        rng = np.random.default_rng([self.cfg.train.seed, step, rank])
        crops, spk, picks = random_crops(items, rng, self.cfg.train.batch_size, self.window, return_picks=True)
        gains = self._gains[name]
        wav = self._warped(self._to_tensor(crops) * torch.from_numpy(gains[picks]).float()[:, None],
                           self._warps[name][picks])
        if not self.cfg.model.voice.dim:
            return wav, torch.from_numpy(spk)
        takes_dvector = self.cfg.model.voice.input == "dvector"
        refs = np.zeros((len(picks), self.voice_window), dtype=np.float32)
        others_picked = []
        for b, i in enumerate(picks):
            same = self._by_speaker[name][spk[b]]
            others = [j for j in same if j != i] or same
            j = others[int(rng.integers(0, len(others)))]
            others_picked.append(j)
            if takes_dvector:
                continue
            seq = np.asarray(items[j][0])
            start = int(rng.integers(0, max(1, len(seq) - self.voice_window + 1)))
            crop = self._to_tensor(np.asarray(seq[start:start + self.voice_window])[None]).numpy()[0]
            refs[b] = np.resize(crop, self.voice_window) * gains[j]  # short clips repeat
        if takes_dvector:  # the other utterance's precomputed d-vector (nn/dvector.py)
            return wav, torch.from_numpy(spk), torch.from_numpy(self.dvectors(name)[others_picked])
        return wav, torch.from_numpy(spk), self._warped(torch.from_numpy(refs), self._warps[name][others_picked])

    @staticmethod
    def _warped(wav: torch.Tensor, factors: np.ndarray) -> torch.Tensor:
        """Rows of wav (B, T) of pseudo-speakers (factor != 1) frequency-warped by their factor."""
        sel = np.flatnonzero(factors != 1.0)
        if not len(sel):
            return wav
        from .nn.perturb import frequency_warp

        wav = wav.clone()
        wav[sel] = frequency_warp(wav[sel], torch.from_numpy(factors[sel]).float())
        return wav

    DVECTOR_SECONDS = 10.0

    def dvectors(self, name: str) -> np.ndarray:
        """(items, 256) d-vectors of the first 10 s of every train or valid utterance, computed once
        with resemblyzer's speaker encoder (a model with voice.input = "dvector" trains its voice
        path on them) and kept in the cache folder, keyed by the items' lengths."""
        if getattr(self, "_dvectors", None) is None:
            self._dvectors = {}
        if name not in self._dvectors:
            import hashlib
            from pathlib import Path

            from .nn.dvector import SpeakerEmbedder
            from .progress import bar

            items = self.train_items if name == "train" else self.valid_items
            n = int(self.DVECTOR_SECONDS * self.cfg.model.sample_rate)
            key = hashlib.sha256(np.array([min(len(a), n) for a, _ in items], dtype=np.int64).tobytes()
                                 + repr(sorted(self._by_speaker[name].items())).encode()
                                 + self._warps[name].tobytes()).hexdigest()[:16]
            cache = Path(self.cfg.data.cache_dir or Path(self.cfg.train.out_dir) / "cache") / f"dvectors-{key}.npy"
            if cache.is_file():
                self._dvectors[name] = np.load(cache)
            else:
                embedder = SpeakerEmbedder(self.cfg.model.sample_rate)
                embedder.load_pretrained()
                out = np.zeros((len(items), 256), dtype=np.float32)
                with torch.no_grad():
                    for i, (seq, _) in enumerate(bar(items, desc=f"d-vectors ({name})", unit="utt")):
                        wav = self._warped(self._to_tensor(np.asarray(seq[:n])[None]), self._warps[name][i:i + 1])
                        if wav.shape[1] < 400:
                            wav = torch.nn.functional.pad(wav, (0, 400 - wav.shape[1]))
                        out[i] = embedder(wav)[0].numpy()
                with atomic_path(cache) as tmp:  # a killed run leaves no half-written table
                    np.save(tmp, out)             # (tmp ends in .npy: np.save keeps the name)
                self._dvectors[name] = out
        return self._dvectors[name]

    @staticmethod
    def _to_tensor(crops: np.ndarray) -> torch.Tensor:
        if crops.dtype == np.int16:
            return torch.from_numpy(crops.astype(np.float32) / 32767.0)  # as the cache wrote it
        return torch.from_numpy(crops.astype(np.float32, copy=False))

    def build_model(self) -> VQVAE:
        model = VQVAE(self.cfg.model, len(self.speakers))
        if getattr(model.voice_encoder, "takes_dvector", False) and not self.cfg.train.init:
            model.voice_encoder.embedder.load_pretrained()  # resume / init: the checkpoint carries them
        if self.cfg.train.init:
            from . import checkpoint

            state = checkpoint.load(self.cfg.train.init)
            missing, unexpected = model.load_state_dict(state["model"], strict=False)
            unexpected = [k for k in unexpected if not k.startswith(TRAINING_ONLY)]  # e.g. stage 1's adversary
            if unexpected:
                raise VqcodecError(f"{self.cfg.train.init}: weights this model does not have: {unexpected[:5]}")
        model.set_stage(self.cfg.train.stage)
        return model

    def compute(self, model, batch, device):
        return model(*(t.to(device, non_blocking=True) for t in batch))

    def metadata(self) -> dict:
        return {"speakers": list(self.speakers)}

    @torch.no_grad()
    def model_metadata(self, model) -> dict:
        """v2: the named voices, {speaker: 8-bit voice vector}, each the quantized mean of the voice
        vectors of up to 3 of the speaker's training utterances (first 5 s of each)."""
        if getattr(model, "voice_encoder", None) is None:
            return {}
        from .nn.voice import to_bytes

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        n = 5 * self.cfg.model.sample_rate
        voices, medians = {}, {}
        for label, idx in sorted(self._by_speaker["train"].items()):
            if label >= self.num_real_speakers:  # a pseudo-speaker (data.pseudo_speakers): no named voice
                continue
            vecs, f0s = [], []
            for i in idx[:3]:
                wav = self._to_tensor(np.asarray(self.train_items[i][0][:n])[None]) * float(self._gains["train"][i])
                vecs.append(model.voice(wav.to(device))[0])
                if model.has_pitch:
                    f0s.append(model.f0(wav.to(device))[0])
            voices[self.speakers[label]] = to_bytes(torch.stack(vecs).mean(0)).tolist()
            if model.has_pitch:  # the median F0 of the same clips together (0.0 if none is voiced)
                from .nn.pitch import PitchQuantizer

                medians[self.speakers[label]] = float(PitchQuantizer.median(torch.cat(f0s)[None])[0])
        model.train(was_training)
        return {"voices": voices, **({"f0_medians": medians} if model.has_pitch else {})}

    def on_valid(self, model, step: int = 0) -> dict:
        usage = model.quantizer.reset_usage()  # (K,), or (N, K) with residual codebooks
        out = {"codes_used": int((usage > 0).sum())} if self.cfg.train.stage == "auto" else {}
        if out and usage.dim() == 2:  # a ladder: codes_used sums the codebooks; also the least-used one's
            out["codes_used_min"] = int((usage > 0).sum(1).min())
        q = self.cfg.train.quality_every
        if q and step % q == 0 and getattr(model, "fast_decoder", None) is not None:
            out.update(self.quality(model))
        return out

    def quality_clips(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fixed held-out clips (<= 4 s, level-normalised) with a reference of the same speaker."""
        if getattr(self, "_clips", None) is None:
            rng = np.random.default_rng([self.cfg.train.seed, VALID_STEP])
            order = rng.permutation(len(self.valid_items))[:self.cfg.train.quality_clips]
            hop, n = self.cfg.model.hop, 4 * self.cfg.model.sample_rate
            clips = []
            for i in order:
                seq, label = self.valid_items[i]
                wav = self._to_tensor(np.asarray(seq[:n])[None]).numpy()[0] * np.float32(self._gains["valid"][i])
                wav = wav[:len(wav) // hop * hop]
                if len(wav) >= hop * 16:
                    clips.append(wav)
            self._clips = clips
        return self._clips

    @torch.no_grad()
    def quality(self, model) -> dict:
        """PESQ-WB, STOI and mel distance of the fast decoder on held-out clips (eval's metrics),
        each clip's voice from the clip itself, as the codec does. A ladder model (N codebooks) is
        scored at its top step and again from its first codebook alone (keys ending in _k1)."""
        from .evaluation.metrics import mel_distance, pesq_wb, stoi

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        steps = {"": None, **({"_k1": 1} if self.cfg.model.quantizer.codebooks > 1 else {})}
        scores = {f"{name}{suffix}": [] for suffix in steps for name in ("pesq_wb", "stoi", "mel_distance")}
        for wav in self.quality_clips():
            x = torch.from_numpy(wav).to(device).view(1, -1)
            voice = model.voice(x) if model.voice_encoder is not None else None
            codes = model.encode(x)
            pitch = model.pitch_input(model.pitch(x), codes.shape[1]) if model.has_pitch else None
            for suffix, k in steps.items():
                out = model.decode_fast(codes if k is None else codes[..., :k], voice, pitch)[0].cpu().numpy()
                sr = self.cfg.model.sample_rate
                for name, fn in (("pesq_wb", pesq_wb), ("stoi", stoi), ("mel_distance", mel_distance)):
                    try:
                        scores[f"{name}{suffix}"].append(float(fn(wav, out, sr)))
                    except Exception:  # pesq refuses some inputs (no utterance detected)
                        pass
        model.train(was_training)
        return {f"q_{k}": float(np.mean(v)) for k, v in scores.items() if v}


def add_pseudo_speakers(items: list, speakers: list[str], factors, per_speaker: int):
    """Each speaker also as one new speaker per warp factor (named SPEAKER@FACTOR), made of its
    first `per_speaker` utterances frequency-warped by that factor (pitch and formants together, as a
    longer or shorter vocal tract and another pitch would): more voices for the voice path to learn
    the voice -> timbre mapping from. Returns (items, speakers, warps): the real items first, then
    the pseudo-speakers' (the same arrays), and each item's factor (1.0 for real ones)."""
    by: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(items):
        by.setdefault(label, []).append(i)
    warps = [1.0] * len(items)
    names = list(speakers)
    out = list(items)
    for factor in factors:
        factor = float(factor)
        if factor <= 0 or factor == 1.0:
            raise VqcodecError(f"data.pseudo_speakers: warp factors must be positive and not 1, not {factor}")
        for label in sorted(by):
            new = len(names)
            names.append(f"{speakers[label]}@{factor:g}")
            for i in by[label][:per_speaker]:
                out.append((items[i][0], new))
                warps.append(factor)
    return out, names, np.array(warps)


class PriorTask(_CropTask):
    """Token crops from a fixed VQ-VAE's .vqc files -> prior."""
    kind = "prior"

    def __init__(self, cfg: Config, train_items, valid_items, speakers: list[str], vqvae_id: str,
                 codebook_size: int, hop: int, sample_rate: int):
        super().__init__(cfg, train_items, valid_items, speakers)
        self.window = max(2, round(cfg.data.window_seconds * sample_rate / hop))
        self.vqvae_id = vqvae_id
        self.codebook_size = codebook_size
        self.unigram_bits = unigram_entropy([t for t, _ in self.valid_items], codebook_size)

    @staticmethod
    def _to_tensor(crops: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(crops.astype(np.int64, copy=False))

    def build_model(self) -> Prior:
        return Prior(self.cfg.prior, self.codebook_size, len(self.speakers))

    def compute(self, model, batch, device):
        tokens, spk = batch
        return model(tokens.to(device, non_blocking=True), spk.to(device, non_blocking=True))

    def metadata(self) -> dict:
        return {"speakers": list(self.speakers), "vqvae_model_id": self.vqvae_id,
                "codebook_size": self.codebook_size, "unigram_bits": self.unigram_bits}

    def on_valid(self, model, step: int = 0) -> dict:
        return {"valid_unigram_bits": self.unigram_bits}

    def model_metadata(self, model) -> dict:
        return {}


def unigram_entropy(seqs, codebook_size: int) -> float:
    """Entropy in bits of the token distribution: what a prior that learned no structure scores."""
    counts = np.zeros(codebook_size)
    for s in seqs:
        counts += np.bincount(np.asarray(s, dtype=np.int64), minlength=codebook_size)[:codebook_size]
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())
