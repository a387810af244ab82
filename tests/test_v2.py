"""v2 models: level normalisation, the voice vector in the file, the fast decoder next to the
WaveNet on one tokenizer, conversion to the voice of a reference recording, two-stage training."""
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny import tiny_config, tone
from vqcodec import checkpoint, codes
from vqcodec.api import from_checkpoint, load_model
from vqcodec.cli import cli
from vqcodec.config import FastDecoderConfig, VoiceConfig
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn import voice as voice_codec
from vqcodec.tasks import VQVAETask
from vqcodec.tokenizer import level_gain

SPEAKERS = ["us1", "us2"]


def tiny_v2_config(out_dir: str = "", **train):
    cfg = tiny_config(out_dir, **train)
    m = cfg.model
    m.level_rms = 0.1
    m.encoder.num_strided, m.encoder.stride, m.encoder.kernel_size = 3, 4, 8
    m.encoder.widths, m.encoder.activation = [8, 16, 16], "gelu"
    m.voice = VoiceConfig(dim=4, channels=8, n_mels=20)
    m.fast = FastDecoderConfig(blocks=1, channels=16, mlp_ratio=2, kernel_size=5, n_fft=128)
    m.loss.stft_resolutions = [[128, 32], [256, 64]]
    return cfg


def varied(seconds: float, seed: int, level: float = 1.0) -> np.ndarray:
    """Tone and coloured noise whose loudness changes every few ms: many codes on a tiny encoder."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    env = np.repeat(rng.uniform(0.02, 0.6, n // 32 + 1), 32)[:n]
    noise = np.convolve(rng.standard_normal(n), rng.standard_normal(8) / 4, mode="same")
    return (level * np.clip(env * (noise + tone(seconds, 170 + 50 * seed, seed=seed)[:n]), -1, 1)).astype(np.float32)


def make_model(seed: int = 0, cfg=None):
    """A tiny v2 model (of `cfg`, default tiny_v2_config()) whose voice (and pitch) inputs matter and
    whose codebook is spread over speech-like encoder outputs."""
    cfg = cfg or tiny_v2_config()
    torch.manual_seed(seed)
    model = VQVAE(cfg.model, len(SPEAKERS)).eval()
    with torch.no_grad():  # the voice's scale/shift start at identity: give them a random effect
        for name, p in model.fast_decoder.named_parameters():
            if name.endswith(("scale.weight", "shift.weight")) or name.startswith("pitch_inp"):
                p.normal_(0, 0.3)
    wav = varied(3.0, seed + 10)
    wav = wav * level_gain(wav, 0.1)
    with torch.no_grad():  # codebook from encoder outputs: speech-like input uses many codes
        z = model.encoder(torch.from_numpy(wav[: len(wav) // 64 * 64]).view(1, -1))[0].T
        idx = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:16]
        model.quantizer.codebook.data.copy_(z[idx])
    return cfg, model


def saved(path, cfg, model) -> str:
    """A checkpoint of a tiny model with two named voices, at `path`."""
    voices = {"us1": [10, 200, 30, 128], "us2": [250, 5, 128, 60]}
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(),
                           "meta": {"speakers": SPEAKERS, "voices": voices}, "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def v2_path(tmp_path_factory):
    return saved(tmp_path_factory.mktemp("v2") / "v2.pt", *make_model())


@pytest.fixture(scope="module")
def codec(v2_path):
    return load_model(v2_path)


def test_v2_facts(codec):
    assert codec.has_voice and codec.decoders == ["fast", "wavenet"]
    assert codec.speakers == ["us1", "us2"]


def test_fast_decoder_shapes_and_determinism(codec):
    tokens = codec.encode(varied(0.5, 1), 16000)
    assert tokens.shape == (125,)
    a = codec.decode(tokens, speaker="us1")
    b = codec.decode(tokens, speaker="us1")
    assert a.shape == (125 * 64,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # no sampling
    c = codec.decode(tokens, speaker="us2")
    assert np.abs(a - c).max() > 1e-4  # the voice changes the output


def test_gain_invariant_tokens(codec):
    wav = varied(2.0, 2)
    ref = codec.encode_utterance(wav, 16000)
    for g in (0.5, 0.7, 1.4, 2.0):
        tf = codec.encode_utterance(wav * np.float32(g), 16000)
        assert np.mean(tf.tokens == ref.tokens) >= 0.95
        assert tf.gain == pytest.approx(ref.gain * g, rel=1e-5)
        np.testing.assert_array_equal(tf.voice, ref.voice)


def test_gain_restored_on_decode(codec):
    wav = varied(1.0, 3)
    loud, quiet = codec.encode_utterance(wav, 16000), codec.encode_utterance(wav * np.float32(0.25), 16000)
    a, b = codec.decode_file(loud), codec.decode_file(quiet)
    np.testing.assert_allclose(b, a * 0.25, rtol=1e-4, atol=1e-6)


def test_level_gain_rules():
    x = np.full(100, 0.2, dtype=np.float32)
    assert level_gain(x, 0.1) == pytest.approx(0.5)
    assert level_gain((x * 32767).astype(np.int16), 0.1) == pytest.approx(0.5, rel=1e-4)
    assert level_gain(np.zeros(100, np.float32), 0.1) == pytest.approx(1000.0)  # silence: capped


def test_voice_round_trip_through_the_file(codec, tmp_path):
    tf = codec.encode_utterance(varied(1.0, 4), 16000)
    assert tf.voice.dtype == np.uint8 and tf.voice.shape == (4,)
    path = codes.write(tmp_path / "a.vqc", tf)
    back = codes.read(path, expect_model_id=codec.model_id)
    np.testing.assert_array_equal(back.voice, tf.voice)
    assert back.gain == tf.gain
    np.testing.assert_array_equal(codec.decode_file(back), codec.decode_file(tf))


def test_voice_quantization_grid():
    v = torch.tensor([-1.0, -0.3333, 0.0, 0.77, 1.0])
    q = voice_codec.quantize(v)
    b = voice_codec.to_bytes(q)
    torch.testing.assert_close(voice_codec.from_bytes(b), q, rtol=0, atol=1e-6)
    assert b[0] == 0 and b[-1] == 255


def test_chunked_encode_equals_whole(codec):
    wav = varied(3.0, 5)
    whole = codec.encode(wav, 16000, chunk_seconds=100)
    np.testing.assert_array_equal(codec.encode(wav, 16000, chunk_seconds=0.3), whole)


def test_chunked_fast_decode_matches_whole(codec):
    tokens = torch.as_tensor(codec.encode(varied(4.0, 6), 16000))
    voice = voice_codec.from_bytes(np.array([1, 2, 3, 4], np.uint8))
    whole = codec.decoder("fast").decode_chunks(tokens, voice, chunk_tokens=10 ** 6)
    chunked = codec.decoder("fast").decode_chunks(tokens, voice, chunk_tokens=97)
    np.testing.assert_allclose(chunked, whole, atol=1e-5 * max(1.0, float(np.abs(whole).max())))


def test_wavenet_decoder_on_the_same_tokens(codec):
    tf = codec.encode_utterance(varied(0.3, 7), 16000)
    a = codec.decode_file(tf, decoder="wavenet", seed=1)
    b = codec.decode_file(tf, decoder="wavenet", seed=1)
    assert a.shape == (tf.num_samples,)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(Exception, match="no 'nope' decoder|nope"):
        codec.decode_file(tf, decoder="nope")


def test_convert_like_reference(codec):
    src, ref = varied(1.0, 8), varied(3.0, 9)
    out = codec.convert(src, 16000, like=ref, like_rate=16000)
    assert out.shape == (16000,)
    np.testing.assert_array_equal(out, codec.convert(src, 16000, like=ref, like_rate=16000))
    own = codec.decode_file(codec.encode_utterance(src, 16000))
    assert np.abs(out - own).max() > 1e-5  # another voice
    with pytest.raises(Exception, match="too short"):
        codec.convert(src, 16000, like=ref[:4000], like_rate=16000)
    with pytest.raises(Exception, match="silent"):
        codec.convert(src, 16000, like=np.zeros(32000, np.float32), like_rate=16000)
    with pytest.raises(Exception, match="exactly one"):
        codec.convert(src, 16000)


def test_cli_encode_decode_convert_like(v2_path, tmp_path):
    src, ref = tmp_path / "talk.wav", tmp_path / "alice.wav"
    sf.write(src, varied(1.0, 10, level=0.3), 16000)
    sf.write(ref, varied(3.0, 11), 16000)
    run = CliRunner().invoke
    r = run(cli, ["encode", str(src), "-m", v2_path])
    assert r.exit_code == 0, r.output
    tf = codes.read(tmp_path / "talk.vqc")
    assert tf.voice.size == 4 and tf.gain != 1.0
    r = run(cli, ["decode", str(tmp_path / "talk.vqc"), "-m", v2_path])
    assert r.exit_code == 0, r.output
    # stderr is not a terminal here: plain progress lines in seconds of audio, no tqdm redraws
    assert "\r" not in r.stderr and "decoding: 100% (1/1 s audio" in r.stderr, r.stderr
    fast, _ = sf.read(tmp_path / "talk.decoded.wav")
    r = run(cli, ["decode", str(tmp_path / "talk.vqc"), "-m", v2_path, "--decoder", "wavenet",
                  "--suffix", ".wn.wav"])
    assert r.exit_code == 0, r.output
    wn, _ = sf.read(tmp_path / "talk.wn.wav")
    assert fast.shape == wn.shape == (16000,)
    r = run(cli, ["convert", str(src), "--like", str(ref), "-o", str(tmp_path / "conv.wav"), "-m", v2_path])
    assert r.exit_code == 0, r.output
    assert sf.read(tmp_path / "conv.wav")[0].shape == (16000,)


def test_cli_convert_bad_reference(v2_path, tmp_path):
    src = tmp_path / "talk.wav"
    sf.write(src, varied(1.0, 12), 16000)
    short, text = tmp_path / "short.wav", tmp_path / "notaudio.wav"
    sf.write(short, varied(0.2, 13), 16000)
    text.write_text("hello")
    for ref, words in ((short, "too short"), (text, "")):
        out = tmp_path / f"out_{ref.stem}.wav"
        r = CliRunner().invoke(cli, ["convert", str(src), "--like", str(ref), "-o", str(out), "-m", v2_path])
        assert r.exit_code != 0
        assert words in r.output
        assert not out.exists()
    r = CliRunner().invoke(cli, ["convert", str(src), "-o", str(tmp_path / "x.wav"), "-m", v2_path])
    assert r.exit_code != 0 and "exactly one" in r.output


def test_v1_model_and_files_still_work(tmp_path):
    """A v1 model (no voice, no fast decoder) still encodes and decodes, its id is computed as
    v1 did (so v1 files still match), and its files carry no voice."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, 2)
    path = tmp_path / "v1.pt"
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": SPEAKERS},
                           "model": model.state_dict()})
    c = load_model(path)
    assert not c.has_voice and c.decoders == ["wavenet"]
    tf = c.encode_utterance(varied(0.3, 1), 16000)
    assert tf.voice.size == 0 and tf.gain == 1.0
    assert c.decode_file(tf, speaker="us2").shape == (tf.num_samples,)
    with pytest.raises(Exception, match="no 'fast' decoder"):
        c.decode_file(tf, decoder="fast")


def test_two_stage_training_keeps_the_tokenizer(tmp_path):
    """Stage 1 trains tokenizer + voice + fast decoder; stage 2 trains only the WaveNet: the
    tokenizer id (what .vqc files name) does not change, and the named voices are stored."""
    from vqcodec.train import train

    cfg = tiny_v2_config(str(tmp_path / "s1"))
    cfg.train.steps = 4
    cfg.train.checkpoint_every = cfg.train.valid_every = 4
    cfg.train.quality_every, cfg.train.quality_clips = 4, 1
    cfg.data.voice_seconds = 0.3
    items = [(varied(1.0, s), s % 2) for s in range(6)]
    ckpt = train(cfg, VQVAETask(cfg, items[:4], items[4:], SPEAKERS), progress=False)
    state = checkpoint.load(ckpt)
    assert set(state["meta"]["voices"]) == set(SPEAKERS)
    assert "q_stoi" in state["history"][-1] and "q_pesq_wb" in state["history"][-1]
    id1 = from_checkpoint(state).model_id
    cfg2 = tiny_v2_config(str(tmp_path / "s2"), stage="wavenet", init=str(ckpt))
    cfg2.train.steps = 3
    cfg2.train.checkpoint_every = cfg2.train.valid_every = 3
    cfg2.data.voice_seconds = 0.3
    ckpt2 = train(cfg2, VQVAETask(cfg2, items[:4], items[4:], SPEAKERS), progress=False)
    state2 = checkpoint.load(ckpt2)
    assert from_checkpoint(state2).model_id == id1
    for key, value in state["model"].items():
        if key.startswith(("encoder.", "quantizer.", "voice_encoder.", "fast_decoder.")):
            torch.testing.assert_close(state2["model"][key], value, rtol=0, atol=0)
    changed = [k for k in state["model"] if k.startswith("decoder.")
               and not torch.equal(state["model"][k], state2["model"][k])]
    assert changed  # the WaveNet did train


def test_stage_fast_trains_only_the_fast_decoder(tmp_path):
    """Stage 'fast' goes on training the fast decoder of a trained v2 model: the tokenizer (codebook
    included: no EMA updates), the voice encoder and the WaveNet stay bit-identical, the id too."""
    from vqcodec.train import train

    cfg = tiny_v2_config(str(tmp_path / "s1"))
    cfg.train.steps = cfg.train.checkpoint_every = cfg.train.valid_every = 2
    cfg.data.voice_seconds = 0.3
    items = [(varied(1.0, s), s % 2) for s in range(6)]
    state = checkpoint.load(train(cfg, VQVAETask(cfg, items[:4], items[4:], SPEAKERS), progress=False))
    cfg2 = tiny_v2_config(str(tmp_path / "fast"), stage="fast", init=str(tmp_path / "s1" / "checkpoint.pt"))
    cfg2.train.steps = cfg2.train.checkpoint_every = cfg2.train.valid_every = 3
    cfg2.train.quality_every, cfg2.train.quality_clips = 3, 1
    cfg2.data.voice_seconds = 0.3
    state2 = checkpoint.load(train(cfg2, VQVAETask(cfg2, items[:4], items[4:], SPEAKERS), progress=False))
    assert from_checkpoint(state2).model_id == from_checkpoint(state).model_id
    for key, value in state["model"].items():
        if not key.startswith("fast_decoder."):
            torch.testing.assert_close(state2["model"][key], value, rtol=0, atol=0, msg=key)
    assert any(not torch.equal(state["model"][k], state2["model"][k]) for k in state["model"]
               if k.startswith("fast_decoder."))
    assert "q_stoi" in state2["history"][-1] and "codes_used" not in state2["history"][-1]


def test_cli_sample_with_a_v2_prior_in_a_reference_voice(v2_path, codec, tmp_path):
    """`vqcodec sample` on a v2 model: an unconditioned prior's tokens voiced like a reference."""
    from vqcodec.models.prior import Prior

    cfg = tiny_v2_config()
    cfg.prior.speaker_conditioned = False
    cfg.prior.wavenet.global_dim = 0
    torch.manual_seed(0)
    prior = Prior(cfg.prior, 16, 0)
    ppath = tmp_path / "prior.pt"
    checkpoint.save(ppath, {"kind": "prior", "config": cfg.to_dict(), "model": prior.state_dict(),
                            "meta": {"speakers": [], "vqvae_model_id": codec.model_id, "codebook_size": 16}})
    ref = tmp_path / "ref.wav"
    sf.write(ref, varied(2.0, 14), 16000)
    out, toks = tmp_path / "babble.wav", tmp_path / "babble.vqc"
    r = CliRunner().invoke(cli, ["sample", "-o", str(out), "--seconds", "0.5", "--prior", str(ppath), "-m", v2_path,
                                 "--like", str(ref), "--tokens-out", str(toks)])
    assert r.exit_code == 0, r.output
    wav, sr = sf.read(out)
    assert sr == 16000 and wav.shape == (8000,)
    tf = codes.read(toks)
    np.testing.assert_array_equal(tf.voice, codec.voice_of(varied(2.0, 14), 16000))
