"""The shipped model in pretrained/ loads safely and round-trips the shipped example."""

import numpy as np
import pytest
import torch

import vqcodec
from vqcodec import checkpoint
from vqcodec.audio import load
from vqcodec.pretrained import NAMES, PRETRAINED_DIR

EXAMPLE = PRETRAINED_DIR / "examples" / "example.wav"


def test_shipped_checkpoints_hold_no_optimizer_and_load_with_weights_only():
    for name in ("default", "default-prior", "vqcodec-real-v2", "vqcodec-real-v2-prior", "vqcodec-synth-v1",
                 "vqcodec-synth-v1-prior", "vqcodec-real-lowrate", "vqcodec-real-lowrate-prior", "vqcodec-real-convert"):
        path = PRETRAINED_DIR / NAMES[name]
        assert path.exists(), f"{path} is missing"
        assert path.stat().st_size < 20 * 2 ** 20
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert "optimizer" not in state and "rng" not in state
        assert checkpoint.load(path)["meta"]["speakers"]


def test_default_model_is_the_ladder_and_every_step_decodes_the_shipped_example():
    """The default (issue 22): 62.5 frames/s x 4 residual codebooks; each ladder step decodes the
    example back to its spectral envelope, and more codebooks come closer."""
    from vqcodec.evaluation.metrics import mel_distance

    codec = vqcodec.load_model("default")
    assert codec.model_id == vqcodec.load_model("vqcodec-real-ladder").model_id == "eb378e155cd4d097"
    assert codec.hop == 256 and codec.codebook_size == 512 and codec.codebooks == 4
    assert codec.ladder == [562.5, 1125.0, 1687.5, 2250.0] and codec.codebooks_for_kbps(1.1) == 2
    assert codec.has_voice and codec.decoders == ["fast"] and not codec.has_pitch
    assert "us3" not in codec.speakers and "ast_en" not in codec.speakers  # evaluation voices
    wav = load(EXAMPLE)
    tf = codec.encode_utterance(wav, 16000)
    assert tf.tokens.shape == (-(-len(wav) // 256), 4)
    assert len(np.unique(tf.tokens[:, 0])) > 20  # speech uses many codes
    distances = []
    for k in (1, 2, 3, 4):
        step = codec.encode_utterance(wav, 16000, codebooks=k)
        assert step.codebooks == k and np.array_equal(step.tokens.reshape(len(tf.tokens), k), tf.tokens[:, :k])
        out = codec.decode_file(step)
        assert out.shape == wav.shape and np.isfinite(out).all()
        distances.append(mel_distance(wav, out))
    assert max(distances) < 0.5 * mel_distance(wav, np.roll(wav, len(wav) // 2))
    assert distances[3] < distances[0]


def test_v2_still_loads_by_name_with_both_decoders():
    """The previous default: its .vqc files (id 09fbd5516c092206) still decode, by name or by id."""
    codec = vqcodec.load_model("vqcodec-real-v2")
    assert codec.hop == 64 and codec.codebook_size == 512 and codec.bitrate == 2250
    assert codec.model_id == "09fbd5516c092206"  # what its .vqc files name: unchanged by later config keys
    assert codec.codebooks == 1 and codec.ladder == [2250.0]
    assert codec.has_voice and codec.decoders == ["fast", "wavenet"]
    wav = load(EXAMPLE)
    tf = codec.encode_utterance(wav, 16000)
    assert len(tf.tokens) == -(-len(wav) // 64)
    out = codec.decode_file(tf)
    assert out.shape == wav.shape and np.isfinite(out).all()
    from vqcodec.evaluation.metrics import mel_distance

    assert mel_distance(wav, out) < 0.5 * mel_distance(wav, np.roll(wav, len(wav) // 2))
    wn = codec.decode(tf.tokens[:50], voice=tf.voice, decoder="wavenet", seed=0)
    assert wn.shape == (50 * 64,) and np.isfinite(wn).all() and wn.std() > 1e-3
    from vqcodec.api import ModelsById
    from vqcodec.pretrained import shipped_models

    assert shipped_models()[0] == "default" and "vqcodec-real-v2" in shipped_models()
    assert ModelsById(*shipped_models()).find("09fbd5516c092206").model_id == codec.model_id


def test_lowrate_model_round_trips_the_example_through_a_vqc_file(tmp_path):
    """The 62.5 tokens/s model: log-mel encoder, pitch stream, fast decoder only."""
    from vqcodec import codes
    from vqcodec.evaluation.metrics import mel_distance

    codec = vqcodec.load_model("vqcodec-real-lowrate")
    assert codec.hop == 256 and codec.has_pitch and codec.decoders == ["fast"]
    assert codec.model_id == "8db1a626900988fb" and codec.codebooks == 1
    assert "us3" not in codec.speakers and "ast_en" not in codec.speakers
    wav = load(EXAMPLE)
    tf = codec.encode_utterance(wav, 16000)
    assert len(tf.tokens) == -(-len(wav) // 256) and tf.pitch.shape == tf.tokens.shape
    assert 60 < tf.f0_median < 250                       # us3 is a low male voice
    assert codec.encode_utterance(wav, 16000, chunk_seconds=0.5) == tf   # chunked == whole, pitch too
    back = codes.read(codes.write(tmp_path / "x.vqc", tf))
    assert back == tf and back.version == 4 and back.pitch_levels == 32
    out = codec.decode_file(back)
    assert out.shape == wav.shape and np.isfinite(out).all()
    assert mel_distance(wav, out) < 0.5 * mel_distance(wav, np.roll(wav, len(wav) // 2))
    # the voice vectors of the named voices differ (the v2 recipe's saturated, this one's do not)
    voices = np.array(list(codec.voices.values()), dtype=float)
    assert voices.std(0).mean() > 20


def test_v1_still_loads_by_name():
    codec = vqcodec.load_model("vqcodec-synth-v1")
    assert not codec.has_voice and codec.decoders == ["wavenet"]
    assert codec.model_id == "0facbb2f4238a1ae"  # what v1 .vqc files name: they still decode
    out = codec.decode(codec.encode(load(EXAMPLE)[:3200], 16000), "us1", seed=0)
    assert out.shape == (3200,) and np.isfinite(out).all()


def test_default_prior_pairs_with_the_default_model():
    codec = vqcodec.load_model("default")
    from vqcodec.api import load_prior

    prior = load_prior("default-prior")
    prior.check_compatible(codec)
    tokens = prior.sample(20, None, seed=0)
    assert tokens.shape == (20,) and tokens.max() < 512


def test_default_prior_entropy_codes_every_ladder_step_exactly():
    """Codebook 1 coded with the default prior, the others packed: lossless, and smaller than
    packing all of them."""
    from vqcodec import codes
    from vqcodec.api import load_prior
    from vqcodec.entropy import EntropyCoder

    codec = vqcodec.load_model("default")
    coder = EntropyCoder.from_prior(load_prior("default-prior"))
    wav = load(EXAMPLE)
    for k in (1, 4):
        tf = codec.encode_utterance(wav, 16000, codebooks=k)
        data = codes.to_bytes(tf, coder=coder)
        assert codes.from_bytes(data, coder_for=coder) == tf
        assert len(data) < len(codes.to_bytes(tf))


def test_lowrate_prior_entropy_codes_a_lowrate_file_exactly():
    from vqcodec import codes
    from vqcodec.api import load_prior
    from vqcodec.entropy import EntropyCoder

    codec = vqcodec.load_model("vqcodec-real-lowrate")
    prior = load_prior("vqcodec-real-lowrate-prior")
    prior.check_compatible(codec)
    tf = codec.encode_utterance(load(EXAMPLE), 16000)
    coder = EntropyCoder.from_prior(prior)
    data = codes.to_bytes(tf, coder=coder)
    back = codes.from_bytes(data, coder_for=coder)
    assert back == tf and back.version == 4 and np.array_equal(back.pitch, tf.pitch)
    assert len(data) < len(codes.to_bytes(tf))


def test_shipped_names_resolve_from_an_installed_copy_and_fail_clearly(tmp_path, monkeypatch):
    from vqcodec import pretrained
    from vqcodec.errors import VqcodecError

    monkeypatch.delenv("VQCODEC_PRETRAINED", raising=False)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "no_clone")
    monkeypatch.setattr(pretrained, "INSTALLED_DIR", tmp_path / "share")
    with pytest.raises(VqcodecError, match=r"missing[\s\S]*--model PATH"):
        pretrained.resolve("default")
    (tmp_path / "share").mkdir()
    (tmp_path / "share" / NAMES["default"]).write_bytes((PRETRAINED_DIR / NAMES["default"]).read_bytes())
    assert pretrained.resolve("default") == tmp_path / "share" / NAMES["default"]
    monkeypatch.setenv("VQCODEC_PRETRAINED", str(tmp_path / "elsewhere"))
    assert pretrained.resolve("default") == tmp_path / "share" / NAMES["default"]  # env dir lacks it: next


def test_cli_entropy_coding_picks_the_lowrate_models_own_prior(tmp_path):
    """`encode --entropy -m vqcodec-real-lowrate` uses vqcodec-real-lowrate-prior without being told,
    and decode / info find it among the shipped priors."""
    from click.testing import CliRunner

    from vqcodec import codes
    from vqcodec.cli import cli

    out = tmp_path / "x.vqc"
    r = CliRunner().invoke(cli, ["encode", str(EXAMPLE), "-m", "vqcodec-real-lowrate", "--entropy", "-o", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert r.exit_code == 0 and "entropy (prior" in r.output, r.output
    r = CliRunner().invoke(cli, ["decode", str(out), "-m", "vqcodec-real-lowrate", "-o", str(tmp_path / "x.wav")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x.wav").exists()
    from vqcodec.errors import FormatError

    with pytest.raises(FormatError, match="entropy-coded with prior"):
        codes.read(out)  # entropy-coded: reading needs the prior


def test_convert_uses_the_conversion_model_and_it_moves_towards_the_reference(tmp_path):
    """`convert` defaults to vqcodec-real-convert (issue 20); --like and --speaker work with it; its
    voice path reads a d-vector, so two references give two different outputs of the same tokens."""
    from click.testing import CliRunner

    from vqcodec.cli import cli
    from vqcodec.evaluation.metrics import log_mel

    codec = vqcodec.load_model("convert")
    assert codec.has_pitch and codec.config.model.voice.input == "dvector" and codec.hop == 256
    assert not any("@" in s for s in codec.named_voices.speakers)  # pseudo-speakers have no named voice
    wav = load(EXAMPLE)
    ref = load(PRETRAINED_DIR / "examples" / "reference_espeak_f4.wav")
    same = codec.decode_file(codec.encode_utterance(wav, 16000))
    conv = codec.convert(wav, 16000, like=ref, like_rate=16000)
    assert conv.shape == wav.shape and np.isfinite(conv).all()
    # another voice changes the output by more than a tenth of its own reconstruction error
    change = np.abs(log_mel(conv) - log_mel(same)).mean()
    assert change > 0.1 * np.abs(log_mel(same) - log_mel(wav)).mean()
    out = tmp_path / "as_ref.wav"
    r = CliRunner().invoke(cli, ["convert", str(EXAMPLE), "--like",
                                 str(PRETRAINED_DIR / "examples" / "reference_espeak_f4.wav"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    got = load(out)
    np.testing.assert_allclose(got, conv, atol=2e-4)  # the CLI's default model is the conversion model
    r = CliRunner().invoke(cli, ["convert", str(EXAMPLE), "--speaker", "us2", "-o", str(tmp_path / "us2.wav")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["speakers", "-m", "convert", "--names"])
    assert r.exit_code == 0 and "us2" in r.output.split() and "@" not in r.output
