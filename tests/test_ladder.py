"""A bitrate ladder from one model (issue 22, item 2): residual codebooks trained with quantizer
dropout; a file keeps the first k codebooks (`encode --kbps`), any k decodes; one-codebook models,
their ids and their files are unchanged."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from test_v2 import SPEAKERS, make_model, saved, tiny_v2_config, v2_path, varied  # noqa: F401 (v2_path: a fixture)
from tiny import tiny_config
from vqcodec import checkpoint, codes
from vqcodec.api import load_model
from vqcodec.cli import cli
from vqcodec.config import QuantizerConfig
from vqcodec.errors import VqcodecError
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.quantizer import ResidualVectorQuantizer, VectorQuantizer, make_quantizer
from vqcodec.tasks import VQVAETask
from vqcodec.tokenizer import level_gain

N = 3


def ladder_config(out_dir: str = "", codebooks: int = N, dropout: float = 1.0, **train):
    cfg = tiny_v2_config(out_dir, **train)
    cfg.model.quantizer.codebooks = codebooks
    cfg.model.quantizer.dropout = dropout
    return cfg


def ladder_model(seed: int = 0):
    """A tiny v2 ladder model whose every codebook is spread over the residuals it quantizes (so each
    codebook of speech-like input uses many codes)."""
    cfg, model = make_model(seed, ladder_config())
    wav = varied(3.0, seed + 10)
    wav = wav * level_gain(wav, 0.1)
    with torch.no_grad():
        z = model.encoder(torch.from_numpy(wav[: len(wav) // 64 * 64]).view(1, -1))[0].T
        gen = torch.Generator().manual_seed(seed)
        for stage in model.quantizer.stages:
            stage.codebook.data.copy_(z[torch.randperm(z.shape[0], generator=gen)[:16]])
            z = z - stage.codebook[stage.nearest(z)]
    return cfg, model


@pytest.fixture(scope="module")
def ladder_path(tmp_path_factory):
    return saved(tmp_path_factory.mktemp("ladder") / "ladder.pt", *ladder_model())


@pytest.fixture(scope="module")
def codec(ladder_path):
    return load_model(ladder_path)


# --------------------------------------------------------------------------- the quantizer
def test_one_codebook_is_the_plain_quantizer_and_several_a_residual_chain():
    assert type(make_quantizer(QuantizerConfig(codebook_size=16), 8)) is VectorQuantizer
    rvq = make_quantizer(QuantizerConfig(codebook_size=16, codebooks=4), 8)
    assert isinstance(rvq, ResidualVectorQuantizer) and len(rvq.stages) == 4
    assert all(type(s) is VectorQuantizer for s in rvq.stages)  # one implementation, reused per stage
    for bad in (dict(codebooks=0), dict(codebooks=2, dropout=1.5), dict(codebooks=1, dropout=0.5)):
        with pytest.raises(ValueError, match="model.quantizer"):
            make_quantizer(QuantizerConfig(codebook_size=16, **bad), 8)


def test_residual_codebooks_trained_by_ema_approximate_better_with_every_codebook():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(QuantizerConfig(codebook_size=16, codebooks=4, dead_code_steps=5), 8).train()
    data = torch.randn(4, 8, 200)
    for _ in range(60):
        out = rvq(data)
    assert out.codes.shape == (4, 200, 4) and out.quantized.shape == data.shape
    rvq.eval()
    codes_ = rvq.nearest(data.transpose(1, 2).reshape(-1, 8)).reshape(4, 200, 4)
    assert torch.equal(codes_, rvq(data).codes)
    errors = [float((rvq.lookup(codes_[..., :k]) - data).pow(2).mean()) for k in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.6 * errors[0]
    # the forward output is the sum of the codebook vectors, with an identity gradient to the input
    x = data.clone().requires_grad_(True)
    out = rvq(x)
    torch.testing.assert_close(out.quantized, rvq.lookup(out.codes))
    out.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_quantizer_dropout_draws_k_in_range_from_the_torch_rng():
    rvq = ResidualVectorQuantizer(QuantizerConfig(codebook_size=16, codebooks=4, dropout=1.0), 8)
    torch.manual_seed(5)
    a = rvq.draw_keep(4000)
    torch.manual_seed(5)
    assert torch.equal(a, rvq.draw_keep(4000))  # follows the torch RNG: a resumed run draws the same
    assert int(a.min()) == 1 and int(a.max()) == 4
    counts = torch.bincount(a, minlength=5)[1:].float() / 4000
    assert (counts - 0.25).abs().max() < 0.04  # uniform in 1..N
    half = ResidualVectorQuantizer(QuantizerConfig(codebook_size=16, codebooks=4, dropout=0.5), 8).draw_keep(4000)
    assert 0.55 < float((half == 4).float().mean()) < 0.70  # 1/2 keep all + 1/2 x 1/4 drew 4


def test_dropout_leaves_dropped_codebooks_out_of_the_output_and_the_losses():
    torch.manual_seed(1)
    rvq = ResidualVectorQuantizer(QuantizerConfig(codebook_size=16, codebooks=3), 8).eval()
    z = torch.randn(3, 8, 20)
    keep = torch.tensor([1, 2, 3])
    out = rvq(z, keep)
    for b, k in enumerate(keep.tolist()):
        torch.testing.assert_close(out.quantized[b], rvq.lookup(out.codes[b:b + 1, :, :k])[0])
    # item 0 keeps one codebook: its commitment is to the first codebook's vector only
    only_first = rvq(z[:1], torch.tensor([1]))
    first = rvq.stages[0](z[:1])
    torch.testing.assert_close(only_first.commitment, first.commitment)


# --------------------------------------------------------------------------- the model id
def test_new_quantizer_keys_at_their_defaults_keep_old_ids_and_dropout_never_enters():
    cfg, model = make_model()
    state, conf = model.state_dict(), cfg.to_dict()["model"]
    old_conf = json.loads(json.dumps(conf))
    del old_conf["quantizer"]["codebooks"], old_conf["quantizer"]["dropout"]  # a checkpoint from before
    assert checkpoint.model_id(state, conf) == checkpoint.model_id(state, old_conf)
    cfg_l, ladder = ladder_model()
    lconf = cfg_l.to_dict()["model"]
    lid = checkpoint.model_id(ladder.state_dict(), lconf)
    assert checkpoint.model_id(ladder.state_dict(), {**lconf, "quantizer": {**lconf["quantizer"], "dropout": 0.0}}) == lid
    changed = {k: v.clone() for k, v in ladder.state_dict().items()}
    changed["quantizer.stages.2.codebook"][0, 0] += 1.0  # the last residual codebook is part of the tokenizer
    assert checkpoint.model_id(changed, lconf) != lid
    v1 = tiny_config()
    v1_state = VQVAE(v1.model, 2).state_dict()
    v1_old = json.loads(json.dumps(v1.to_dict()["model"]))
    del v1_old["quantizer"]["codebooks"], v1_old["quantizer"]["dropout"]
    assert checkpoint.model_id(v1_state, v1.to_dict()["model"]) == checkpoint.model_id(v1_state, v1_old)


# --------------------------------------------------------------------------- tokenizer and decoders
def test_shapes_determinism_and_first_k_of_n_equal_a_k_request(codec):
    wav = varied(1.0, 3)
    tf = codec.encode_utterance(wav, 16000)
    assert codec.codebooks == N and tf.codebooks == N and tf.tokens.shape == (250, N)
    assert tf.tokens.min() >= 0 and tf.tokens.max() < 16
    assert all(len(np.unique(tf.tokens[:, i])) > 4 for i in range(N))  # every codebook in use
    assert codec.encode_utterance(wav, 16000) == tf
    for k in range(1, N + 1):
        part = codec.encode_utterance(wav, 16000, codebooks=k)
        assert part.codebooks == k
        np.testing.assert_array_equal(part.tokens.reshape(250, k), tf.tokens[:, :k])
    assert codec.encode_utterance(wav, 16000, codebooks=1).tokens.shape == (250,)
    for bad in (0, N + 1, 1.5, True):
        with pytest.raises(VqcodecError, match=r"codebooks must be an integer in \[1, 3\]"):
            codec.encode_utterance(wav, 16000, codebooks=bad)


def test_chunked_encode_equals_whole_file_encode_with_n_codebooks(codec, tmp_path, monkeypatch):
    from vqcodec import tokenizer

    monkeypatch.setattr(tokenizer, "BLOCK_SECONDS", 0.1)  # 25-token blocks: the 2.3 s spans 23 (4 s default)
    wav = varied(2.3, 4)
    whole = codec.encode_utterance(wav, 16000, chunk_seconds=60)
    assert whole.tokens.shape[1] == N
    for chunk in (0.25, 0.7):
        assert codec.encode_utterance(wav, 16000, chunk_seconds=chunk) == whole
    path = tmp_path / "x.wav"
    sf.write(path, wav, 16000, subtype="FLOAT")
    assert codec.encode_file_utterance(path, chunk_seconds=0.3) == whole
    assert codec.encode_file_utterance(path, chunk_seconds=0.3, codebooks=2).tokens.shape == (len(whole.tokens), 2)


def test_every_ladder_step_round_trips_through_a_vqc_file_and_decodes(codec, tmp_path):
    wav = varied(1.0, 5)
    outs = []
    for k in range(1, N + 1):
        tf = codec.encode_utterance(wav, 16000, codebooks=k)
        back = codes.read(codes.write(tmp_path / f"k{k}.vqc", tf), expect_model_id=codec.model_id)
        assert back == tf and back.codebooks == k and codes.describe(back)["codebooks"] == k
        out = codec.decode_file(tmp_path / f"k{k}.vqc")
        assert out.shape == wav.shape and np.isfinite(out).all()
        np.testing.assert_array_equal(out, codec.decode_file(back))  # deterministic
        wn = codec.decode(back.tokens[:40], voice=back.voice, decoder="wavenet", seed=0)
        assert wn.shape == (40 * 64,) and np.isfinite(wn).all()
        outs.append(out)
    assert not np.allclose(outs[0], outs[-1])  # the codebooks a file keeps are what it decodes from
    with pytest.raises(VqcodecError, match=r"k <= 3"):
        codec.decode(np.zeros((10, N + 1), dtype=np.int64), voice=tf.voice)


def test_chunked_fast_decode_of_several_codebooks_matches_whole(codec):
    tf = codec.encode_utterance(varied(1.0, 6), 16000, codebooks=2)
    dec = codec.decoder("fast")
    voice = codec.named_voices.conditioning(None, tf.voice)
    t = torch.as_tensor(tf.tokens)
    whole = dec.decode_chunks(t, voice, chunk_tokens=10_000)
    np.testing.assert_allclose(dec.decode_chunks(t, voice, chunk_tokens=37), whole, atol=1e-5)


def test_ladder_and_kbps_choice(codec):
    assert codec.ladder == [1000.0, 2000.0, 3000.0]  # 4 bits x 250 frames/s per codebook
    assert codec.bitrate == 3000.0
    assert [codec.codebooks_for_kbps(x) for x in (1.0, 1.9, 1.99, 2.0, 2.9, 3.0, 50)] == [1, 1, 2, 2, 2, 3, 3]
    with pytest.raises(VqcodecError, match="below this model's lowest step; its steps are 1, 2, 3 kbps"):
        codec.codebooks_for_kbps(0.9)


def test_the_ladder_counts_the_pitch_stream():
    cfg = ladder_config()
    cfg.model.pitch.levels, cfg.model.pitch.every = 32, 2
    _, model = make_model(cfg=cfg)
    from vqcodec.tokenizer import Tokenizer

    tok = Tokenizer(model, cfg)
    assert tok.ladder() == [1000.0 + 625.0, 2625.0, 3625.0]  # + 5 bits x 125 values/s


def test_one_codebook_models_have_no_ladder():
    _, model = make_model()
    from vqcodec.api import Codec

    c = Codec(model, tiny_v2_config(), SPEAKERS, voices={"us1": [1, 2, 3, 4], "us2": [5, 6, 7, 8]})
    assert c.codebooks == 1 and c.ladder == [1000.0]
    with pytest.raises(VqcodecError, match="one codebook: no bitrate ladder"):
        c.codebooks_for_kbps(5)
    assert c.encode_utterance(varied(0.5, 1), 16000).tokens.ndim == 1


# --------------------------------------------------------------------------- the CLI
def test_cli_encode_kbps_info_decode(ladder_path, tmp_path):
    src = tmp_path / "talk.wav"
    sf.write(src, varied(1.0, 7, level=0.3), 16000)
    run = CliRunner().invoke
    for kbps, k in (("1", 1), ("2.9", 2), ("3", 3)):
        out = tmp_path / f"talk{k}.vqc"
        r = run(cli, ["encode", str(src), "-m", ladder_path, "--kbps", kbps, "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert f"x {k} of 3 codebooks" in r.output
        assert codes.read(out).codebooks == k
        r = run(cli, ["info", str(out)])
        assert r.exit_code == 0 and f"codebooks: {k}" in r.output
        r = run(cli, ["decode", str(out), "-m", ladder_path])
        assert r.exit_code == 0, r.output
        assert sf.read(tmp_path / f"talk{k}.decoded.wav")[0].shape == (16000,)
    r = run(cli, ["encode", str(src), "-m", ladder_path, "-o", str(tmp_path / "all.vqc")])
    assert r.exit_code == 0 and codes.read(tmp_path / "all.vqc").codebooks == 3


@pytest.mark.parametrize("args, message", [
    (["--kbps", "0.5"], "0.5 kbps is below this model's lowest step; its steps are 1, 2, 3 kbps"),
])
def test_cli_encode_refuses_bad_ladder_requests_with_one_line(ladder_path, tmp_path, args, message):
    src = tmp_path / "talk.wav"
    sf.write(src, varied(0.5, 8), 16000)
    r = CliRunner().invoke(cli, ["encode", str(src), "-m", ladder_path, "-o", str(tmp_path / "t.vqc"), *args])
    assert r.exit_code != 0
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "t.vqc").exists()


def test_cli_encode_kbps_on_a_model_without_ladder(v2_path, tmp_path):
    src = tmp_path / "talk.wav"
    sf.write(src, varied(0.5, 9), 16000)
    r = CliRunner().invoke(cli, ["encode", str(src), "-m", v2_path, "--kbps", "2", "-o", str(tmp_path / "t.vqc")])
    assert r.exit_code != 0 and "one codebook: no bitrate ladder" in r.output
    assert not (tmp_path / "t.vqc").exists()


def test_eval_ladder_reports_one_row_per_step(ladder_path, v2_path, tmp_path):
    data = tmp_path / "data" / "us1"
    data.mkdir(parents=True)
    sf.write(data / "a.wav", varied(1.0, 11), 16000)
    out = tmp_path / "report"
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "data"), "-m", ladder_path, "--ladder", "--baselines",
                                 "none", "--listen", "0", "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    systems = json.loads((out / "report.json").read_text())["systems"]
    assert len(systems) == N
    for k, (name, s) in enumerate(systems.items(), 1):
        assert f"{k} of 3 codebooks, {k} kbps" in name and s["num_files"] == 1
    rates = [s["mean"]["bitrate_bps"] for s in systems.values()]
    assert rates[1] - rates[0] == pytest.approx(1000, abs=20) and rates[2] - rates[1] == pytest.approx(1000, abs=20)
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "data"), "-m", v2_path, "--ladder", "--baselines",
                                 "none", "-q", "-o", str(tmp_path / "r2")])
    assert r.exit_code != 0 and "has one codebook, no bitrate ladder" in r.output


# --------------------------------------------------------------------------- training
def test_a_training_step_with_dropout_runs_and_resumes_exactly(tmp_path):
    from vqcodec.train import train

    items = [(varied(1.0, s), s % 2) for s in range(4)]

    def config(out):
        cfg = ladder_config(str(tmp_path / out), codebooks=3, dropout=1.0)
        cfg.train.steps = 4
        cfg.train.checkpoint_every = cfg.train.valid_every = 2
        cfg.train.quality_every, cfg.train.quality_clips = 4, 1
        cfg.data.voice_seconds = 0.3
        return cfg

    def run(cfg, **kw):
        losses = []
        train(cfg, VQVAETask(cfg, items, None, SPEAKERS), progress=False,
              on_step=lambda step, s: losses.append(s["loss"]), **kw)
        return losses

    full = run(config("full"))
    assert len(full) == 4 and np.isfinite(full).all()
    cfg = config("split")
    first = run(cfg, max_steps=2)
    rest = run(cfg, resume=True)
    assert first + rest == full
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["model"]
    b = checkpoint.load(tmp_path / "split" / "checkpoint.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert any(k.startswith("quantizer.stages.2.") for k in a)
    record = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["history"][-1]
    assert record["codes_used"] >= 3 * record["codes_used_min"] >= 3  # summed over 3 codebooks, and the least
    assert {"q_stoi", "q_stoi_k1", "q_mel_distance", "q_mel_distance_k1"} <= set(record)  # top step and k = 1


def test_dropout_draws_change_training_but_not_inference():
    cfg, model = ladder_model()
    wav = torch.from_numpy(np.stack([varied(0.256, s) for s in range(4)]))
    ref = torch.from_numpy(np.stack([varied(0.3, s + 5) for s in range(4)]))
    model.train()
    torch.manual_seed(0)
    out = model(wav, torch.zeros(4, dtype=torch.long), ref)
    assert torch.isfinite(out["loss"]) and out["codes"].shape == (4, 64, N)
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    model.eval()
    with torch.no_grad():
        a = model(wav, torch.zeros(4, dtype=torch.long), ref)["loss"]
        torch.manual_seed(123)
        b = model(wav, torch.zeros(4, dtype=torch.long), ref)["loss"]
    assert float(a) == float(b)  # no draw at evaluation: every codebook


def test_the_ladder_recipe_builds_a_four_step_ladder_of_2_25_kbps():
    from pathlib import Path

    from vqcodec.config import load_config
    from vqcodec.tokenizer import Tokenizer

    path = Path(__file__).parent.parent / "recipes" / "real" / "ladder.toml"
    cfg = load_config(path)
    assert "vqcodec-real-ladder" in path.read_text().splitlines()[0]  # the recipe of the shipped default
    assert cfg.model.quantizer.codebooks == 4 and cfg.model.quantizer.dropout > 0
    model = VQVAE(cfg.model, 2).eval()
    assert Tokenizer(model, cfg).ladder() == [562.5, 1125.0, 1687.5, 2250.0]
    from vqcodec import checkpoint
    from vqcodec.pretrained import resolve

    shipped = checkpoint.load(resolve("vqcodec-real-ladder"))["config"]["model"]
    assert shipped == cfg.to_dict()["model"]  # the shipped model was trained from this recipe


def test_the_prior_learns_the_first_codebook_of_a_ladder_corpus(codec, tmp_path):
    from vqcodec.data.tokens import load_token_corpus

    tf = codec.encode_utterance(varied(0.5, 2), 16000, codebooks=2)
    codes.write(tmp_path / "us1" / "a.vqc", tf)
    (_, _, tokens), = load_token_corpus(tmp_path, codec.model_id)
    np.testing.assert_array_equal(tokens, tf.tokens[:, 0])


def test_cli_entropy_codes_every_ladder_step_losslessly(ladder_path, codec, tmp_path):
    """--entropy on a ladder model: codebook 1 coded with the prior, the rest packed; decode gives
    the plain file's audio, info counts every codebook."""
    from test_entropy import save_prior, tiny_prior

    from vqcodec.api import coder_for_priors

    prior = save_prior(tmp_path / "prior.pt", tiny_prior(k=codec.codebook_size), codec.model_id, SPEAKERS)
    src = tmp_path / "talk.wav"
    sf.write(src, varied(1.0, 9), 16000)
    run = CliRunner().invoke
    for kbps in ("1", "2", "3"):
        plain, coded = tmp_path / f"p{kbps}.vqc", tmp_path / f"e{kbps}.vqc"
        assert run(cli, ["encode", str(src), "-m", ladder_path, "--kbps", kbps, "-o", str(plain)]).exit_code == 0
        r = run(cli, ["encode", str(src), "-m", ladder_path, "--kbps", kbps, "--entropy", "--prior", str(prior),
                      "-o", str(coded)])
        assert r.exit_code == 0, r.output
        back = codes.read(coded, coder_for=coder_for_priors(str(prior)))
        assert back == codes.read(plain) and back.codebooks == int(kbps)
        info = run(cli, ["info", str(coded), "--prior", str(prior)]).output
        assert f"codebooks: {kbps}" in info and "entropy (prior" in info
        r = run(cli, ["decode", str(coded), "-m", ladder_path, "--prior", str(prior), "-o", str(tmp_path / "e.wav"), "-f"])
        assert r.exit_code == 0, r.output
        r = run(cli, ["decode", str(plain), "-m", ladder_path, "-o", str(tmp_path / "p.wav"), "-f"])
        np.testing.assert_array_equal(sf.read(tmp_path / "e.wav")[0], sf.read(tmp_path / "p.wav")[0])


@pytest.mark.parametrize("stage", ["fast", "wavenet"])
def test_later_stages_train_their_decoder_on_drawn_ladder_steps(stage):
    """A decoder trained on the frozen tokenizer (stage fast / wavenet) sees every ladder step too."""
    _, model = ladder_model()
    model.set_stage(stage)
    model.train()
    wav = torch.from_numpy(np.stack([varied(0.256, s) for s in range(4)]))
    ref = torch.from_numpy(np.stack([varied(0.3, s + 5) for s in range(4)]))
    losses = []
    for seed in (0, 0, 7):
        torch.manual_seed(seed)
        out = model(wav, torch.zeros(4, dtype=torch.long), ref)
        losses.append(float(out["loss"].detach()) if stage == "fast" else None)
        assert torch.isfinite(out["loss"])
    if stage == "fast":  # deterministic given the draw; another draw, another loss
        assert losses[0] == losses[1] != losses[2]
