"""vqcodec.audio: loading any format to 16 kHz mono float32, mu-law, and clear AudioErrors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from vqcodec import audio
from vqcodec.errors import AudioError, VqcodecError


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "a.ogg"])
def test_load_formats(make_wav, name):
    path = make_wav(name, seconds=0.3, sr=16000)
    wav = audio.load(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 4800) <= 16
    assert 0.3 < np.abs(wav).max() <= 0.6


def test_wav_round_trip_exactish(make_wav):
    path = make_wav("x.wav", kind="noise")
    ref, _ = sf.read(str(path), dtype="float32")
    assert np.array_equal(audio.load(path), ref)


def test_stereo_mixdown(make_wav):
    path = make_wav("s.wav", channels=2, seconds=0.1)
    raw, _ = sf.read(str(path), dtype="float32")
    wav = audio.load(path)
    assert wav.shape == (raw.shape[0],)
    np.testing.assert_allclose(wav, raw.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resample_to_16k(make_wav, sr):
    path = make_wav(f"r{sr}.wav", seconds=0.5, sr=sr, freq=440)
    wav = audio.load(path)
    assert abs(len(wav) - 8000) <= 2
    spec = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    peak_hz = np.argmax(spec) * 16000 / len(wav)
    assert abs(peak_hz - 440) < 5


def test_save_load(tmp_path):
    x = np.sin(np.linspace(0, 100, 1600)).astype(np.float32) * 0.5
    p = audio.save(tmp_path / "o.wav", x)
    y = audio.load(p)
    assert np.abs(x - y).max() < 1e-4
    assert sf.info(str(p)).subtype == "PCM_16"


def test_mulaw_round_trip_and_range():
    x = torch.linspace(-1, 1, 20001)
    q = audio.mulaw_encode(x)
    assert q.dtype == torch.long and int(q.min()) == 0 and int(q.max()) == 255
    y = audio.mulaw_decode(q)
    # 8-bit mu-law: error relative to amplitude is small, tiny near zero
    assert float((y - x).abs().max()) < 0.035
    small = x.abs() < 0.01
    assert float((y - x)[small].abs().max()) < 5e-4
    # out of range input is clamped, not wrapped
    assert audio.mulaw_encode(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]
    # every class decodes into [-1, 1] and re-encodes to itself
    k = torch.arange(256)
    assert torch.equal(audio.mulaw_encode(audio.mulaw_decode(k)), k)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.load(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioError):
        audio.load(tmp_path)


def test_text_named_wav(tmp_path):
    p = tmp_path / "fake.wav"
    p.write_text("this is not audio\n" * 10)
    with pytest.raises(AudioError, match="not a readable audio file"):
        audio.load(p)


def test_empty_wav(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(str(p), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty"):
        audio.load(p)


def test_nan_samples(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.zeros(100, dtype=np.float32)
    x[10] = np.nan
    sf.write(str(p), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        audio.load(p)


def test_audio_error_is_vqcodec_error():
    assert issubclass(AudioError, VqcodecError)


def test_resample_is_librosas_soxr_hq():
    """audio.resample calls soxr directly; it must equal librosa.resample(res_type="soxr_hq")."""
    import librosa

    from vqcodec.audio import resample

    x = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    for sr_in, sr_out in ((44100, 16000), (8000, 16000), (22050, 16000)):
        ours = resample(x, sr_in, sr_out)
        theirs = librosa.resample(x, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq")
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_mel_filterbank_equals_librosas():
    import librosa

    from vqcodec.nn.spectral import mel_filterbank

    for sr, n_fft, n_mels in ((16000, 1024, 80), (16000, 256, 40), (22050, 2048, 128), (16000, 400, 20)):
        ours = mel_filterbank(sr, n_fft, n_mels)
        theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)
