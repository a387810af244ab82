"""Issue 11 item 4: in-memory audio given to the API is checked by one function,
`audio.as_mono_float`, which `Codec.prepare` (and so encode / convert) uses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny import tiny_config, tone
from vqcodec.api import Codec
from vqcodec.audio import as_mono_float
from vqcodec.errors import AudioError
from vqcodec.models.vqvae import VQVAE


@pytest.fixture(scope="module")
def codec():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, 2).eval()
    wav = tone(1.0, seed=1)
    with torch.no_grad():  # codebook from encoder outputs, so the tone uses many codes
        z = model.encoder(torch.from_numpy(wav[: len(wav) // 64 * 64]).view(1, -1))[0].T
        model.quantizer.codebook.data.copy_(z[torch.randperm(z.shape[0])[:16]])
    return Codec(model, cfg, ["a", "b"])


@pytest.fixture(scope="module")
def wav():
    return tone(1.0, seed=1)


def test_int_pcm_gives_the_same_tokens_as_float(codec, wav):
    ref = codec.encode(wav, 16000)
    assert len(set(ref.tolist())) > 3
    pcm16 = np.round(wav * 32767).astype(np.int16)
    pcm32 = pcm16.astype(np.int32) * 65536
    for pcm in (pcm16, pcm32):
        got = codec.encode(pcm, 16000)
        assert np.mean(got == ref) > 0.95  # before: int16 taken as floats of +-10000, 5.6% matched


def test_channels_last_is_mixed_down_and_channels_first_refused(codec, wav):
    stereo = np.stack([wav, wav], axis=1)  # (samples, 2)
    np.testing.assert_array_equal(codec.encode(stereo, 16000), codec.encode(wav, 16000))
    with pytest.raises(AudioError, match=r"channels-first.*\(samples, channels\).*wav\.T"):
        codec.encode(stereo.T, 16000)  # before: gave 1 token
    with pytest.raises(AudioError, match="channels-first"):
        codec.convert(stereo.T, 16000, "b")
    with pytest.raises(AudioError, match="cannot tell samples from channels"):
        codec.encode(np.zeros((40, 40), np.float32), 16000)
    with pytest.raises(AudioError, match="3-D"):
        codec.encode(np.zeros((2, 2, 100), np.float32), 16000)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.1, np.nan], np.float32), "NaN"),
    (np.arange(1000, dtype=np.int64), "dtype int64"),
    (np.zeros(100, bool), "dtype bool"),
    (np.full(100, 12000.0), r"peak is 12000.*32768"),
])
def test_refused_samples(bad, message):
    with pytest.raises(AudioError, match=message):
        as_mono_float(bad, 16000)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, "16000", True, None])
def test_refused_sample_rates(rate):
    with pytest.raises(AudioError, match="sample rate"):
        as_mono_float(np.zeros(10, np.float32), rate)


def test_accepted_forms():
    x = [0.0, 0.5, -0.5]
    np.testing.assert_array_equal(as_mono_float(x, 16000), np.array(x, np.float32))
    np.testing.assert_array_equal(as_mono_float(torch.tensor(x), 16000.0), np.array(x, np.float32))
    np.testing.assert_array_equal(as_mono_float(np.array(x)[:, None], 8000), np.array(x, np.float32))
    assert as_mono_float(np.array([16384, -32768], np.int16), 16000).tolist() == [0.5, -1.0]
    assert as_mono_float(np.float64([1.2, -1.0]), 16000).dtype == np.float32  # mild overshoot kept


def test_voice_entry_points_follow_the_same_rules():
    """voice_of and convert(like=...) (v2 models) take their reference through the same checks:
    int16 PCM gives the float reference's voice, (samples, channels) is mixed down, channels-first
    and bad sample rates are refused with the same messages."""
    from test_v2 import make_model, varied

    cfg, model = make_model()
    v2 = Codec(model, cfg, ["a", "b"])
    ref = varied(2.0, 4)
    voice = v2.voice_of(ref, 16000)
    pcm = np.round(ref * 32767).astype(np.int16)
    assert np.abs(v2.voice_of(pcm, 16000).astype(int) - voice.astype(int)).max() <= 1  # 8-bit grid
    np.testing.assert_array_equal(v2.voice_of(np.stack([ref, ref], axis=1), 16000), voice)
    stereo_first = np.stack([ref, ref])
    with pytest.raises(AudioError, match="channels-first"):
        v2.voice_of(stereo_first, 16000)
    with pytest.raises(AudioError, match="channels-first"):
        v2.convert(ref[:16000], 16000, like=stereo_first, like_rate=16000)
    with pytest.raises(AudioError, match="sample rate"):
        v2.convert(ref[:16000], 16000, like=ref, like_rate=0)
