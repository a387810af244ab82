"""Issue 14: the pitch stream (`[model.pitch]`, nn/pitch.py): the F0 tracker, the quantizer, the
fast decoder's pitch input, the .vqc pitch stream, the API (chunk-exact encoding, decoding, conversion to
a reference's median F0), training with it and the CLI."""
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from test_v2 import SPEAKERS, make_model, tiny_v2_config, varied
from vqcodec import checkpoint, codes
from vqcodec.api import from_checkpoint
from vqcodec.cli import cli
from vqcodec.errors import FormatError, VqcodecError
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.pitch import NUM_FEATURES, PitchQuantizer, pitch_features, yin_f0
from vqcodec.tasks import VQVAETask

SR = 16000


def harmonic(f0, seconds: float = 1.0, amp: float = 0.1) -> np.ndarray:
    """A harmonic tone at f0 (a number, or one value per sample: a glide)."""
    n = int(seconds * SR)
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SR
    return (amp * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


def speechlike(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """Voiced stretches (a gliding harmonic tone) alternating with noise and silence."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    glide = f0 * 2 ** (0.25 * np.sin(2 * np.pi * 1.5 * np.arange(n) / SR))
    wav = harmonic(glide, seconds)
    gate = np.repeat(rng.random(n // 1600 + 1) < 0.7, 1600)[:n]
    return np.where(gate, wav, 0.02 * rng.standard_normal(n)).astype(np.float32)


# --------------------------------------------------------------------------- the tracker
@pytest.mark.parametrize("f0", [60.0, 110.0, 220.0, 420.0])
def test_yin_finds_the_f0_of_harmonic_tones(f0):
    est = yin_f0(torch.from_numpy(harmonic(f0))[None], SR, 256)[0]
    assert est.shape == (-(-SR // 256),)
    inner = est[4:-4]
    assert bool((inner > 0).all())
    assert float((inner / f0 - 1).abs().max()) < 0.005


def test_yin_calls_noise_and_silence_unvoiced():
    rng = np.random.default_rng(0)
    noise = torch.from_numpy((0.1 * rng.standard_normal(SR)).astype(np.float32))[None]
    assert float((yin_f0(noise, SR, 256) > 0).float().mean()) < 0.05
    assert bool((yin_f0(torch.zeros(1, SR), SR, 256) == 0).all())
    quiet = torch.from_numpy(harmonic(150.0, amp=1e-4))[None]       # -60 dB: below the silence gate
    assert bool((yin_f0(quiet, SR, 256) == 0).all())


def test_yin_agrees_with_librosa_on_a_glide():
    librosa = pytest.importorskip("librosa")
    wav = harmonic(120 * 2 ** (np.arange(SR) / SR), 1.0)                 # one octave up in a second
    ours = yin_f0(torch.from_numpy(wav)[None], SR, 256)[0].numpy()
    theirs = librosa.yin(np.pad(wav, (128, 0)), fmin=50, fmax=500, sr=SR, frame_length=1024, hop_length=256)
    n = min(len(ours), len(theirs)) - 3
    semis = np.abs(12 * np.log2(ours[2:n] / theirs[2:n]))
    assert np.median(semis) < 0.2 and semis.max() < 1.0


def test_yin_frames_depend_on_their_own_samples_only():
    """Blocks of frames, batch rows and any cut of the signal with enough margin give the same values."""
    x = torch.from_numpy(np.stack([speechlike(2.0, 130, 1), speechlike(2.0, 210, 2)]))
    whole = yin_f0(x, SR, 256)
    assert torch.equal(whole, yin_f0(x, SR, 256, max_frames=37))
    assert torch.equal(whole[1:], yin_f0(x[1:], SR, 256))
    lo, hi, margin = 20 * 256, 90 * 256, 4 * 256
    part = yin_f0(x[:, lo - margin:hi + margin], SR, 256)[:, 4:4 + 70]
    assert torch.equal(part, whole[:, 20:90])


def test_yin_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="batch, samples"):
        yin_f0(torch.zeros(SR), SR, 256)


# --------------------------------------------------------------------------- quantizer and features
def test_quantizer_round_trip_within_half_a_step():
    q = PitchQuantizer(32, 12.0)
    f0 = torch.tensor([[0.0, 100.0, 141.0, 200.0, 283.0, 400.0, 1000.0, 20.0]])
    median = PitchQuantizer.median(f0)
    assert abs(float(median[0]) - 200.0) < 1.0                     # median of the voiced values only
    levels = q.quantize(f0, median)
    assert int(levels[0, 0]) == 0 and bool((levels[0, 1:] > 0).all())
    assert int(levels.max()) <= 31 and int(levels[0, 6]) == 31 and int(levels[0, 7]) == 1   # clipped
    back = q.dequantize(levels, median)
    semis = 12 * torch.log2(back[0, 1:6] / f0[0, 1:6])
    assert float(semis.abs().max()) <= q.step / 2 + 1e-4
    assert float(back[0, 0]) == 0.0
    # the contour is relative: another median moves every voiced value by the same ratio
    torch.testing.assert_close(q.dequantize(levels, median * 1.5)[0, 1:], back[0, 1:] * 1.5)
    assert bool((PitchQuantizer.median(torch.zeros(2, 5)) == 0).all())
    assert bool((q.quantize(torch.zeros(1, 3), torch.zeros(1)) == 0).all())
    with pytest.raises(ValueError):
        PitchQuantizer(2, 12.0)


def test_features_hold_each_value_for_its_tokens():
    f0 = torch.tensor([[0.0, 100.0, 200.0]])
    feats = pitch_features(f0, every=4, num_tokens=10)
    assert feats.shape == (1, NUM_FEATURES, 10)
    assert bool((feats[0, :, :4] == 0).all())                      # unvoiced: all zero
    assert torch.equal(feats[0, :, 4], feats[0, :, 7]) and not torch.equal(feats[0, :, 4], feats[0, :, 8])
    assert float(feats[0, 0, 5]) == 1.0 and abs(float(feats[0, 1, 9]) - 1.0) < 1e-6   # log2(200 / 100)
    with pytest.raises(ValueError, match="too short"):
        pitch_features(f0, every=4, num_tokens=13)


# --------------------------------------------------------------------------- model and API
def pitch_config(out_dir: str = "", **train):
    cfg = tiny_v2_config(out_dir, **train)
    cfg.model.pitch.levels = 16
    return cfg


def make_pitch_model(seed: int = 0):
    return make_model(seed, pitch_config())


@pytest.fixture(scope="module")
def pitch_path(tmp_path_factory):
    cfg, model = make_pitch_model()
    path = tmp_path_factory.mktemp("pitch") / "pitch.pt"
    meta = {"speakers": SPEAKERS, "voices": {"us1": [10, 200, 30, 128], "us2": [250, 5, 128, 60]},
            "f0_medians": {"us1": 110.0, "us2": 240.0}}
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": meta, "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def codec(pitch_path):
    return from_checkpoint(checkpoint.load(pitch_path))


def test_the_pitch_stream_enters_the_model_id_only_when_on():
    cfg, model = make_pitch_model()
    on = checkpoint.model_id(model.state_dict(), cfg.to_dict()["model"])
    d = cfg.to_dict()["model"]
    d["pitch"]["levels"] = 32
    assert checkpoint.model_id(model.state_dict(), d) != on
    off = tiny_v2_config().to_dict()["model"]
    without = dict(off)
    del without["pitch"]                                   # a config written before the pitch stream existed
    state = VQVAE(tiny_v2_config().model, 2).state_dict()
    assert checkpoint.model_id(state, off) == checkpoint.model_id(state, without)


def test_encode_utterance_carries_the_pitch_stream(codec):
    wav = speechlike(1.3, 150)
    tf = codec.encode_utterance(wav, SR)
    assert codec.has_pitch and tf.pitch_levels == 16 and tf.pitch_every == 4
    assert tf.pitch.shape == (-(-tf.num_tokens // 4),)
    assert 130 < tf.f0_median < 175
    assert 0.3 < float((tf.pitch > 0).mean()) < 0.95
    # level-invariant, like the tokens
    tf2 = codec.encode_utterance(wav * 0.3, SR)
    assert np.array_equal(tf2.pitch, tf.pitch) and abs(tf2.f0_median - tf.f0_median) < 1e-3
    assert abs(codec.median_f0_of(speechlike(2.0, 230, 5), SR) - 230) < 25


def test_chunked_and_file_encoding_give_the_same_pitch_stream(codec, tmp_path):
    wav = speechlike(3.1, 140, 3)
    whole = codec.encode_utterance(wav, SR, chunk_seconds=10)
    path = tmp_path / "a.wav"
    sf.write(path, wav, SR, subtype="FLOAT")
    assert codec.encode_file_utterance(path, chunk_seconds=0.5) == whole
    f0_blocks = codec.tokenizer._f0(lambda lo, hi: wav[lo:hi] * np.float32(codec.gain_of(wav)), len(wav), block_seconds=0.3)
    f0_whole = codec.tokenizer._f0(lambda lo, hi: wav[lo:hi] * np.float32(codec.gain_of(wav)), len(wav))
    assert np.array_equal(f0_blocks, f0_whole)


def test_decode_needs_and_uses_the_pitch_stream(codec):
    tf = codec.encode_utterance(speechlike(1.0, 150), SR)
    a = codec.decode_file(tf)
    assert a.shape == (tf.num_samples,) and np.isfinite(a).all()
    assert np.array_equal(a, codec.decode_file(tf))                      # deterministic
    b = codec.decode_file(tf, f0_median=2 * tf.f0_median)
    assert not np.allclose(a, b)                                         # the median F0 matters
    c = codec.decode(tf.tokens, voice=tf.voice, gain=tf.gain, num_samples=tf.num_samples, pitch=tf.pitch,
                     f0_median=tf.f0_median)
    assert np.array_equal(a, c)
    with pytest.raises(VqcodecError, match="pitch stream"):
        codec.decode(tf.tokens, voice=tf.voice)
    with pytest.raises(VqcodecError, match="pitch stream has shape"):
        codec.decode(tf.tokens, voice=tf.voice, pitch=tf.pitch[:-1], f0_median=100.0)
    with pytest.raises(VqcodecError, match="pitch values"):
        codec.decode(tf.tokens, voice=tf.voice, pitch=tf.pitch + 16, f0_median=100.0)
    with pytest.raises(VqcodecError, match="median F0"):
        codec.decode(tf.tokens, voice=tf.voice, pitch=tf.pitch)
    # a named voice brings its own median F0
    named = codec.decode(tf.tokens, speaker="us2", pitch=tf.pitch)
    same = codec.decode(tf.tokens, voice=codec.voices["us2"], pitch=tf.pitch, f0_median=240.0)
    assert np.array_equal(named, same)


def test_chunked_fast_decode_with_pitch_matches_whole(codec):
    tf = codec.encode_utterance(speechlike(2.0, 170, 4), SR)
    feats = codec.decoder("fast").pitch_input(torch.as_tensor(tf.tokens), tf.pitch, None, tf.f0_median)
    from vqcodec.nn import voice as voice_codec
    v = voice_codec.from_bytes(tf.voice)
    whole = codec.decoder("fast").decode_chunks(torch.as_tensor(tf.tokens), v, pitch_features=feats, chunk_tokens=10 ** 6)
    chunked = codec.decoder("fast").decode_chunks(torch.as_tensor(tf.tokens), v, pitch_features=feats, chunk_tokens=97)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_convert_like_takes_the_references_median_f0(codec):
    src, ref = speechlike(1.0, 120, 6), speechlike(2.0, 260, 7)
    out = codec.convert(src, SR, like=ref, like_rate=SR)
    tf = codec.encode_utterance(src, SR)
    expected = codec.decode(tf.tokens, voice=codec.voice_of(ref, SR), gain=tf.gain, num_samples=tf.num_samples,
                            pitch=tf.pitch, f0_median=codec.median_f0_of(ref, SR))
    assert np.array_equal(out, expected)
    assert not np.allclose(out, codec.decode_file(tf, voice=codec.voice_of(ref, SR)))


def test_vqc_pitch_stream_round_trip_and_checks(codec, tmp_path):
    tf = codec.encode_utterance(speechlike(0.9, 150), SR)
    data = codes.to_bytes(tf)
    assert data[4] == codes.VERSION
    back = codes.from_bytes(data)
    assert back == tf and back.version == 4 and np.array_equal(back.pitch, tf.pitch)
    info = codes.describe(back)
    assert info["pitch_bps"] > 0 and info["file_bytes"] == len(data)
    assert info["file_bps"] > info["streams_bps"] > info["tokens_bps"] + info["pitch_bps"]
    from vqc_files import v2_bytes
    legacy = v2_bytes(tf)  # the same streams as a version-3 file
    assert legacy[4] == codes.PITCH_VERSION and codes.from_bytes(legacy) == tf
    for cut in (len(data) - 1, 80, 71):
        with pytest.raises(FormatError):
            codes.from_bytes(data[:cut])
    bad = bytearray(data)
    bad[69] = 2                                                    # pitch levels < 3
    with pytest.raises(FormatError):
        codes.from_bytes(bytes(bad))
    with pytest.raises(FormatError, match="pitch stream has"):
        codes.TokenFile(tokens=tf.tokens, sample_rate=SR, num_samples=tf.num_samples, hop=64, codebook_size=16,
                        model_id=tf.model_id, pitch=tf.pitch[:-1], pitch_levels=16, pitch_every=4, f0_median=100.0)
    with pytest.raises(FormatError, match="without pitch_levels"):
        codes.TokenFile(tokens=tf.tokens, sample_rate=SR, num_samples=tf.num_samples, hop=64, codebook_size=16,
                        model_id=tf.model_id, pitch=tf.pitch)
    plain = codes.TokenFile(tokens=tf.tokens, sample_rate=SR, num_samples=tf.num_samples, hop=64,
                            codebook_size=16, model_id=tf.model_id)
    assert codes.describe(plain)["pitch_bps"] == 0                 # files without pitch have no pitch stream
    assert len(codes.to_bytes(plain)) < len(data)


def test_training_with_the_pitch_stream_stores_named_medians(tmp_path):
    from vqcodec.train import train

    cfg = pitch_config(str(tmp_path / "run"))
    cfg.train.steps = cfg.train.checkpoint_every = cfg.train.valid_every = 3
    cfg.train.quality_every, cfg.train.quality_clips = 3, 1
    cfg.data.voice_seconds = 0.3
    items = [(speechlike(1.0, 110 + 100 * (s % 2), s), s % 2) for s in range(6)]
    state = checkpoint.load(train(cfg, VQVAETask(cfg, items[:4], items[4:], SPEAKERS), progress=False))
    medians = state["meta"]["f0_medians"]
    assert set(medians) == set(SPEAKERS) and abs(medians["us1"] - 110) < 15 and abs(medians["us2"] - 210) < 25
    assert "q_stoi" in state["history"][-1]
    assert any(k.startswith("fast_decoder.pitch_inp") for k in state["model"])
    codec = from_checkpoint(state)
    assert codec.f0_medians == medians


def test_cli_encode_info_decode_convert_with_the_pitch_stream(pitch_path, tmp_path):
    src, ref = tmp_path / "talk.wav", tmp_path / "ref.wav"
    sf.write(src, speechlike(1.2, 130, 8), SR)
    sf.write(ref, speechlike(2.5, 250, 9), SR)
    run = CliRunner()
    r = run.invoke(cli, ["encode", str(src), "-m", pitch_path, "-o", str(tmp_path / "talk.vqc")])
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["info", str(tmp_path / "talk.vqc")])
    assert r.exit_code == 0, r.output
    info = {k.strip(): v for k, _, v in (line.partition(": ") for line in r.output.splitlines()[1:])}
    assert info["format_version"] == "4" and float(info["pitch_bps"]) > 0 and float(info["f0_median_hz"]) > 0
    r = run.invoke(cli, ["decode", str(tmp_path / "talk.vqc"), "-m", pitch_path, "-o", str(tmp_path / "back.wav")])
    assert r.exit_code == 0, r.output
    assert sf.info(tmp_path / "back.wav").frames == sf.info(src).frames
    r = run.invoke(cli, ["convert", str(src), "--like", str(ref), "-m", pitch_path, "-o", str(tmp_path / "conv.wav")])
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["convert", str(src), "--speaker", "us2", "-m", pitch_path, "-o", str(tmp_path / "c2.wav")])
    assert r.exit_code == 0, r.output


def test_cli_sample_refuses_a_pitch_model_before_sampling(pitch_path, tmp_path):
    r = CliRunner().invoke(cli, ["sample", "-o", str(tmp_path / "s.wav"), "--seconds", "0.5", "-m", pitch_path])
    assert r.exit_code != 0 and "pitch stream" in r.output and not (tmp_path / "s.wav").exists()
