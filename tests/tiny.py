"""Tiny models and signals shared by the model, training and codec tests."""
from __future__ import annotations

import numpy as np

from vqcodec.config import Config, EncoderConfig, QuantizerConfig, TrainConfig, WaveNetConfig


def tiny_config(out_dir: str = "", **train) -> Config:
    cfg = Config()
    cfg.model.encoder = EncoderConfig(channels=16, dim=8, num_residual=1)
    cfg.model.quantizer = QuantizerConfig(codebook_size=16, dead_code_steps=20)
    cfg.model.decoder = WaveNetConfig(layers=4, dilation_cycle=4, residual_channels=8, gate_channels=16,
                                      skip_channels=16, global_dim=4)
    cfg.prior.wavenet = WaveNetConfig(layers=4, dilation_cycle=4, residual_channels=16, gate_channels=32,
                                      skip_channels=32, global_dim=4)
    cfg.data.window_seconds = 0.064
    cfg.train = TrainConfig(out_dir=out_dir, steps=60, batch_size=4, lr=3e-3, checkpoint_every=20,
                            valid_every=20, valid_batches=1, log_every=5, **train)
    return cfg


def tone(seconds: float = 0.5, freq: float = 220.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a slow amplitude wobble and a little noise: speech-like enough."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 4)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
