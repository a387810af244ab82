"""What each model brings to the one training loop (train.py): model, batches, loss, metadata.

Batches are a pure function of (seed, step, rank): resuming at step s draws exactly the batches an
uninterrupted run would have drawn, with no data-loader state to save.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import Config
from .models.vqvae import VQVAE

VALID_STEP = 10 ** 9  # RNG stream reserved for the fixed validation batches


def random_crops(items: Sequence[tuple[np.ndarray, int]], rng: np.random.Generator, batch_size: int,
                 window: int) -> tuple[np.ndarray, np.ndarray]:
    """`batch_size` crops of `window` samples, utterances drawn in proportion to their length;
    shorter utterances are zero-padded at the end. items: (array, label) with int16 or float audio."""
    lengths = np.array([len(a) for a, _ in items], dtype=np.float64)
    picks = rng.choice(len(items), size=batch_size, p=lengths / lengths.sum())
    out = np.zeros((batch_size, window), dtype=np.float32)
    labels = np.zeros(batch_size, dtype=np.int64)
    for b, i in enumerate(picks):
        audio, labels[b] = items[i]
        start = int(rng.integers(0, max(1, len(audio) - window + 1)))
        crop = np.asarray(audio[start:start + window])
        out[b, :len(crop)] = crop / 32768.0 if crop.dtype == np.int16 else crop
    return out, labels


class VQVAETask:
    kind = "vqvae"

    def __init__(self, cfg: Config, train_items, valid_items, speakers: list[str]):
        """train_items / valid_items: sequences of (audio array at the model rate, speaker index)."""
        self.cfg = cfg
        self.train_items = train_items
        self.valid_items = valid_items or train_items
        self.speakers = speakers
        hop = cfg.model.hop
        self.window = max(hop, int(cfg.data.window_seconds * cfg.model.sample_rate) // hop * hop)
        self._valid = None

    def build_model(self) -> VQVAE:
        return VQVAE(self.cfg.model, len(self.speakers))

    def _batch(self, step: int, rank: int, items) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.train.seed, step, rank])
        wav, spk = random_crops(items, rng, self.cfg.train.batch_size, self.window)
        return torch.from_numpy(wav), torch.from_numpy(spk)

    def train_batch(self, step: int, rank: int, world_size: int):
        return self._batch(step, rank, self.train_items)

    def valid_batches(self):
        if self._valid is None:
            self._valid = [self._batch(VALID_STEP + i, 0, self.valid_items)
                           for i in range(self.cfg.train.valid_batches)]
        return self._valid

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
