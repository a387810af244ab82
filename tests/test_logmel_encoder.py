"""Issue 14: the log-mel encoder input (`model.encoder.input = "logmel"`, optional per-utterance
band normalisation): shapes, the receptive-field bound chunked encoding relies on, validation."""
import numpy as np
import pytest
import torch

from test_v2 import varied
from tiny import tiny_config
from vqcodec.nn.encoder import Encoder


def logmel_encoder(normalize: bool = False) -> Encoder:
    cfg = tiny_config().model.encoder
    cfg.num_strided, cfg.stride, cfg.widths = 3, 4, [8, 16, 16]
    cfg.input, cfg.normalize = "logmel", normalize
    torch.manual_seed(0)
    return Encoder(cfg).double().eval()


def test_logmel_encoder_shapes():
    enc = logmel_encoder()
    x = torch.from_numpy(varied(0.5, 1)[: 64 * 120]).double()[None]
    z = enc(x)
    assert z.shape == (1, 8, 120) and torch.isfinite(z).all()
    with pytest.raises(ValueError, match="multiple of the hop"):
        enc(x[:, :-1])


def test_logmel_encoder_context_bounds_the_receptive_field():
    """A token never depends on samples farther than `context` away: cutting the input there
    (as chunked encoding does) changes nothing."""
    enc = logmel_encoder()
    x = torch.from_numpy(varied(2.0, 2)).double()[None]
    x = x[:, : x.shape[1] // 64 * 64]
    whole, ctx = enc(x), enc.context
    a, b = 100 * 64, 300 * 64
    part = enc(x[:, a - ctx:b + ctx])[..., ctx // 64: ctx // 64 + 200]
    torch.testing.assert_close(part, whole[..., 100:300], rtol=0, atol=1e-10)
    y = x.clone()
    y[:, : a - ctx] = 0
    y[:, b + ctx:] = 0
    torch.testing.assert_close(enc(y)[..., 100:300], whole[..., 100:300], rtol=0, atol=1e-10)


@torch.no_grad()
def test_normalised_logmel_ignores_a_fixed_spectral_tilt():
    """Band means removed per utterance: a fixed filter (a different microphone or vocal tract
    colouring) moves the log-mel by a constant per band and leaves the encoder input unchanged
    where the frames are away from the edges."""
    enc = logmel_encoder(normalize=True)
    x = varied(1.0, 3)
    tilted = np.convolve(x, [1.0, 0.6], mode="same").astype(np.float32)   # a gentle low-pass colouring
    zx = enc(torch.from_numpy(x[: len(x) // 64 * 64]).double()[None])
    zt = enc(torch.from_numpy(tilted[: len(x) // 64 * 64]).double()[None])
    plain = logmel_encoder(normalize=False)
    px = plain(torch.from_numpy(x[: len(x) // 64 * 64]).double()[None])
    pt = plain(torch.from_numpy(tilted[: len(x) // 64 * 64]).double()[None])
    assert float((zx - zt).abs().mean()) < 0.5 * float((px - pt).abs().mean())


def test_encoder_input_validation():
    cfg = tiny_config().model.encoder
    cfg.input = "spectrogram"
    with pytest.raises(ValueError, match="wave' or 'logmel"):
        Encoder(cfg)
    cfg.input, cfg.normalize = "wave", True
    with pytest.raises(ValueError, match="normalize needs"):
        Encoder(cfg)
