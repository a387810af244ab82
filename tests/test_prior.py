"""The prior (issue 5): exact incremental sampling, learning token structure, and the whole
VQ-VAE -> tokens -> prior -> `vqcodec sample` path through the CLI, with its refusals."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny import tiny_config, tone
from vqcodec import checkpoint, codes
from vqcodec.api import TokenPrior, load_model, load_prior
from vqcodec.cli import cli
from vqcodec.config import PriorConfig, WaveNetConfig
from vqcodec.errors import VqcodecError
from vqcodec.models.prior import Prior
from vqcodec.tasks import PriorTask, VQVAETask, unigram_entropy
from vqcodec.train import train

SR = 16000
HOP = 64


def tiny_prior(codebook_size: int = 16, num_speakers: int = 3, speaker_conditioned: bool = True) -> Prior:
    cfg = PriorConfig(wavenet=WaveNetConfig(layers=5, dilation_cycle=3, residual_channels=8, gate_channels=12,
                                            skip_channels=10, global_dim=4),
                      speaker_conditioned=speaker_conditioned)
    return Prior(cfg, codebook_size, num_speakers).eval()


# --------------------------------------------------------------------------- exact incremental path
@pytest.mark.parametrize("speaker_conditioned", [True, False])
def test_incremental_prior_reproduces_teacher_forced_logits(speaker_conditioned):
    torch.manual_seed(0)
    prior = tiny_prior(speaker_conditioned=speaker_conditioned)
    tokens = torch.randint(0, 16, (3, 40))
    spk = torch.tensor([2, 0, 1]) if speaker_conditioned else None
    with torch.no_grad():
        ref = prior.net(tokens, None, spk)  # what training scores
        loss = prior(tokens, spk)["loss"]
    assert ref.shape == (3, 16, 40)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(ref, tokens))
    state = prior.net.init_state(3, None, spk)
    steps = []
    for t in range(40):
        steps.append(prior.net.step(state))
        state.feed(tokens[:, t])
    torch.testing.assert_close(torch.stack(steps, 2), ref, rtol=0, atol=1e-5)


def test_greedy_sampling_follows_the_teacher_forced_argmax_and_keeps_the_prompt():
    torch.manual_seed(1)
    prior = tiny_prior()
    tp = TokenPrior(prior, tiny_config(), {"speakers": ["a", "b", "c"], "vqvae_model_id": "0" * 16})
    prompt = np.array([5, 5, 1, 9, 3])
    out = tp.sample(30, speaker="b", temperature=0, prompt=prompt)
    assert out.shape == (30,) and out.dtype == np.int64
    assert np.array_equal(out[:5], prompt)
    with torch.no_grad():
        logits = prior.net(torch.from_numpy(out).view(1, -1), None, torch.tensor([1]))[0]
    assert np.array_equal(out[5:], logits.argmax(0).numpy()[5:])
    # sampling is reproducible for a seed and stays in the codebook
    a = tp.sample(50, speaker="c", seed=3)
    assert np.array_equal(a, tp.sample(50, speaker="c", seed=3))
    assert a.min() >= 0 and a.max() < 16
    with pytest.raises(VqcodecError, match="unknown speaker 'zed'"):
        tp.sample(5, speaker="zed")


# --------------------------------------------------------------------------- learning
def test_tiny_prior_learns_a_repeating_pattern_far_below_unigram_entropy(tmp_path):
    rng = np.random.default_rng(0)
    patterns = [rng.permutation(8), rng.permutation(8) + 8]  # one 8-token cycle per speaker
    items = [(np.tile(p, 60).astype(np.int64), s) for s, p in enumerate(patterns)]
    cfg = tiny_config(str(tmp_path / "prior"), device="cpu")
    cfg.data.window_seconds = 32 * HOP / SR  # 32-token crops
    cfg.train.steps = 80
    cfg.train.valid_every = cfg.train.checkpoint_every = 40
    cfg.train.valid_batches = 4
    task = PriorTask(cfg, items, None, ["s0", "s1"], vqvae_id="0" * 16, codebook_size=16, hop=HOP,
                     sample_rate=SR)
    assert task.window == 32
    assert abs(task.unigram_bits - 4.0) < 1e-9  # 16 tokens equally often
    bits: list[float] = []
    train(cfg, task, progress=False, on_step=lambda step, s: bits.append(s["bits_per_token"]))
    assert abs(bits[0] - 4.0) < 1.0  # starts near log2(16)
    record = checkpoint.load(tmp_path / "prior" / "checkpoint.pt")["history"][-1]
    assert record["valid_unigram_bits"] == task.unigram_bits
    assert record["valid_bits_per_token"] < 0.25 * task.unigram_bits, record
    # and it has learned the cycle: greedy continuation of a prompt repeats it
    prior = load_prior(tmp_path / "prior" / "checkpoint.pt")
    assert prior.unigram_bits == task.unigram_bits
    out = prior.sample(40, speaker="s1", temperature=0, prompt=patterns[1][:3])
    assert np.array_equal(out, np.tile(patterns[1], 5))


def test_unigram_entropy():
    assert unigram_entropy([np.array([0, 1, 2, 3])], 8) == pytest.approx(2.0)
    assert unigram_entropy([np.array([5, 5]), np.array([5])], 8) == pytest.approx(0.0)
    assert unigram_entropy([np.array([0, 0, 0, 1])], 2) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


# --------------------------------------------------------------------------- the whole path
def write_corpus(root: Path) -> Path:
    for s, spk in enumerate(("spkA", "spkB")):
        for u in range(2):
            path = root / spk / f"utt{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), tone(0.3, freq=180.0 + 60 * s + 20 * u, seed=10 * s + u), SR, subtype="PCM_16")
    return root


def tiny_vqvae(tmp_path: Path, name: str, seed: int) -> Path:
    """A few steps of a tiny VQ-VAE on two speakers (enough for a working checkpoint)."""
    cfg = tiny_config(str(tmp_path / name), device="cpu", seed=seed)
    cfg.train.steps = 2
    items = [(tone(0.3, seed=seed), 0), (tone(0.3, freq=300, seed=seed + 1), 1)]
    return train(cfg, VQVAETask(cfg, items, None, ["spkA", "spkB"]), progress=False)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """VQ-VAE checkpoint -> `vqcodec encode` -> `vqcodec train prior`: paths for the tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pipeline(tmp_path_factory.mktemp("pipeline"))
    finally:
        torch.set_num_threads(before)


def _pipeline(tmp: Path) -> dict:
    model = tiny_vqvae(tmp, "vqvae", seed=0)
    other = tiny_vqvae(tmp, "other", seed=1)
    corpus = write_corpus(tmp / "corpus")
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(corpus), "-o", str(tmp / "tokens"), "--model", str(model)])
    assert r.exit_code == 0, r.output
    cfg = tiny_config(str(tmp / "prior"), device="cpu")
    cfg.prior.vqvae = str(model)
    cfg.data.corpus = "tokens"
    cfg.data.root = str(tmp / "tokens")
    cfg.data.valid_fraction = cfg.data.test_fraction = 0.0
    cfg.data.window_seconds = 16 * HOP / SR
    cfg.to_toml(tmp / "prior.toml")
    r = runner.invoke(cli, ["train", "prior", str(tmp / "prior.toml"), "--set", "train.steps=4",
                            "--set", "train.valid_every=4"])
    assert r.exit_code == 0, r.output
    return {"tmp": tmp, "model": model, "other": other, "prior": tmp / "prior" / "checkpoint.pt",
            "tokens": tmp / "tokens", "corpus": corpus, "train_output": r.output, "config": tmp / "prior.toml"}


def test_encode_then_train_prior_through_the_cli(pipeline):
    files = sorted(p.relative_to(pipeline["tokens"]).as_posix() for p in pipeline["tokens"].rglob("*.vqc"))
    assert files == ["spkA/utt0.vqc", "spkA/utt1.vqc", "spkB/utt0.vqc", "spkB/utt1.vqc"]
    codec = load_model(pipeline["model"])
    tf = codes.read(pipeline["tokens"] / "spkB" / "utt1.vqc", expect_model_id=codec.model_id)
    assert tf.speaker == "spkB" and tf.num_tokens == math.ceil(0.3 * SR / HOP)
    assert "unigram entropy of the validation tokens" in pipeline["train_output"]
    state = checkpoint.load(pipeline["prior"])
    assert state["kind"] == "prior" and state["step"] == 4
    assert state["meta"]["vqvae_model_id"] == codec.model_id
    assert state["meta"]["speakers"] == ["spkA", "spkB"] and state["meta"]["codebook_size"] == 16
    history = state["history"][-1]
    assert "valid_bits_per_token" in history and "valid_unigram_bits" in history
    prior = load_prior(pipeline["prior"])
    prior.check_compatible(codec)
    with pytest.raises(VqcodecError, match="codebooks differ"):
        prior.check_compatible(load_model(pipeline["other"]))
    with pytest.raises(VqcodecError, match="not a prior"):
        load_prior(pipeline["model"])


def test_train_prior_refuses_tokens_of_another_vqvae(pipeline, tmp_path):
    r = CliRunner().invoke(cli, ["train", "prior", str(pipeline["config"]), "--set", f"prior.vqvae={pipeline['other']}",
                                 "--set", f"train.out_dir={tmp_path / 'p'}"])
    assert r.exit_code == 1
    assert "vqcodec: error:" in r.output and "codebooks differ" in r.output
    assert not (tmp_path / "p" / "checkpoint.pt").exists()
    r = CliRunner().invoke(cli, ["train", "prior", str(pipeline["config"]), "--set", "data.corpus=folders",
                                 "--set", f"train.out_dir={tmp_path / 'p'}"])
    assert r.exit_code == 1 and 'corpus = "tokens"' in r.output


def sample_args(pipeline, out: Path, *extra: str) -> list[str]:
    return ["sample", "--prior", str(pipeline["prior"]), "--model", str(pipeline["model"]),
            "--seconds", "0.5", "-o", str(out), *extra]


def test_sample_writes_audio_of_the_requested_length_and_its_tokens(pipeline, tmp_path):
    out, vqc = tmp_path / "out.wav", tmp_path / "out.vqc"
    r = CliRunner().invoke(cli, sample_args(pipeline, out, "--speaker", "spkB", "--tokens-out", str(vqc)))
    assert r.exit_code == 0, r.output
    wav, sr = sf.read(str(out))
    assert sr == SR and abs(len(wav) - 0.5 * SR) <= HOP
    assert np.all(np.isfinite(wav)) and np.abs(wav).max() <= 1.0
    codec = load_model(pipeline["model"])
    tf = codes.read(vqc, expect_model_id=codec.model_id)
    assert tf.speaker == "spkB" and tf.num_tokens == round(0.5 * SR / HOP)
    assert tf.num_samples == len(wav) and tf.codebook_size == 16
    # an existing output is not overwritten without --force
    r = CliRunner().invoke(cli, sample_args(pipeline, out, "--speaker", "spkB"))
    assert r.exit_code == 1 and "exists" in r.output


def test_sample_refuses_an_unknown_speaker(pipeline, tmp_path):
    r = CliRunner().invoke(cli, sample_args(pipeline, tmp_path / "x.wav", "--speaker", "nobody"))
    assert r.exit_code == 1
    assert "unknown speaker 'nobody'" in r.output and "spkA" in r.output
    assert not (tmp_path / "x.wav").exists()


def test_sample_refuses_a_prior_of_another_vqvae(pipeline, tmp_path):
    args = sample_args(pipeline, tmp_path / "x.wav")
    args[args.index(str(pipeline["model"]))] = str(pipeline["other"])
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1
    assert "vqcodec: error:" in r.output and "codebooks differ" in r.output
    assert not (tmp_path / "x.wav").exists()


def test_sample_keeps_the_prompt_tokens(pipeline, tmp_path):
    prompt = pipeline["tokens"] / "spkA" / "utt0.vqc"
    given = codes.read(prompt).tokens
    assert len(given) < round(0.5 * SR / HOP)
    vqc = tmp_path / "cont.vqc"
    r = CliRunner().invoke(cli, sample_args(pipeline, tmp_path / "cont.wav", "--speaker", "spkA",
                                            "--prompt", str(prompt), "--tokens-out", str(vqc), "--seed", "4"))
    assert r.exit_code == 0, r.output
    got = codes.read(vqc).tokens
    assert len(got) == round(0.5 * SR / HOP)
    assert np.array_equal(got[:len(given)], given)
    # an audio prompt is encoded first; its tokens are kept too
    wav_prompt = pipeline["corpus"] / "spkB" / "utt1.wav"
    vqc2 = tmp_path / "cont2.vqc"
    r = CliRunner().invoke(cli, sample_args(pipeline, tmp_path / "cont2.wav", "--prompt", str(wav_prompt),
                                            "--tokens-out", str(vqc2)))
    assert r.exit_code == 0, r.output
    encoded = codes.read(pipeline["tokens"] / "spkB" / "utt1.vqc").tokens
    assert np.array_equal(codes.read(vqc2).tokens[:len(encoded)], encoded)
