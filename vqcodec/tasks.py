"""What each model brings to the one training loop (train.py): model, batches, loss, metadata.

Batches are a pure function of (seed, step, rank): resuming at step s draws exactly the batches an
uninterrupted run would have drawn, with no data-loader state to save.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import Config
from .models.prior import Prior
from .models.vqvae import VQVAE

VALID_STEP = 10 ** 9  # RNG stream reserved for the fixed validation batches


def random_crops(items: Sequence[tuple[np.ndarray, int]], rng: np.random.Generator, batch_size: int,
                 window: int) -> tuple[np.ndarray, np.ndarray]:
    """`batch_size` crops of `window` steps (audio samples or tokens), sequences drawn in proportion
    to their length; shorter ones are zero-padded at the end. items: (array, label) pairs; the
    crops keep the arrays' dtype."""
    lengths = np.array([len(a) for a, _ in items], dtype=np.float64)
    picks = rng.choice(len(items), size=batch_size, p=lengths / lengths.sum())
    out = np.zeros((batch_size, window), dtype=np.asarray(items[0][0][:1]).dtype)
    labels = np.zeros(batch_size, dtype=np.int64)
    for b, i in enumerate(picks):
        seq, labels[b] = items[i]
        start = int(rng.integers(0, max(1, len(seq) - window + 1)))
        crop = np.asarray(seq[start:start + window])
        out[b, :len(crop)] = crop
    return out, labels


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
    """Audio crops (int16 or float arrays at the model rate) -> VQ-VAE."""
    kind = "vqvae"

    def __init__(self, cfg: Config, train_items, valid_items, speakers: list[str]):
        super().__init__(cfg, train_items, valid_items, speakers)
        hop = cfg.model.hop
        self.window = max(hop, int(cfg.data.window_seconds * cfg.model.sample_rate) // hop * hop)

    @staticmethod
    def _to_tensor(crops: np.ndarray) -> torch.Tensor:
        if crops.dtype == np.int16:
            return torch.from_numpy(crops.astype(np.float32) / 32767.0)  # as the cache wrote it
        return torch.from_numpy(crops.astype(np.float32, copy=False))

    def build_model(self) -> VQVAE:
        return VQVAE(self.cfg.model, len(self.speakers))

    def compute(self, model, batch, device):
        wav, spk = batch
        out = model(wav.to(device, non_blocking=True), spk.to(device, non_blocking=True))
        out.pop("codes")
        return out

    def metadata(self) -> dict:
        return {"speakers": list(self.speakers)}

    def on_valid(self, model) -> dict:
        usage = model.quantizer.reset_usage()
        return {"codes_used": int((usage > 0).sum())}


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

    def on_valid(self, model) -> dict:
        return {"valid_unigram_bits": self.unigram_bits}


def unigram_entropy(seqs, codebook_size: int) -> float:
    """Entropy in bits of the token distribution: what a prior that learned no structure scores."""
    counts = np.zeros(codebook_size)
    for s in seqs:
        counts += np.bincount(np.asarray(s, dtype=np.int64), minlength=codebook_size)[:codebook_size]
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())
