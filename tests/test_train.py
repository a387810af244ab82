"""The training loop (issue 3): learning, exact resume, checkpoints, the CLI, DDP, config errors.

Tiny models on tiny generated audio; every test runs in seconds on a CPU.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny import tiny_config, tone
from vqcodec import checkpoint
from vqcodec.cli import cli
from vqcodec.config import Config, apply_override, load_config
from vqcodec.errors import ConfigError, VqcodecError
from vqcodec.models.vqvae import VQVAE
from vqcodec.tasks import VQVAETask
from vqcodec.train import train

SR = 16000


def clean_clip(seconds: float = 0.25, freq: float = 250.0) -> np.ndarray:
    """A periodic harmonic clip (no noise): a decoder can learn to predict it almost exactly."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 4))).astype(np.float32)


def write_corpus(root: Path, speakers=("spkA", "spkB"), per_speaker: int = 2, seconds: float = 0.3) -> Path:
    """A folders-layout corpus ROOT/SPEAKER/UTT.wav of tiny tones."""
    for s, spk in enumerate(speakers):
        for u in range(per_speaker):
            path = root / spk / f"utt{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), tone(seconds, freq=180.0 + 60 * s + 20 * u, seed=10 * s + u), SR, subtype="PCM_16")
    return root


def write_config(path: Path, out_dir: Path, corpus: Path, **train) -> Path:
    cfg = tiny_config(str(out_dir), device="cpu", **train)
    cfg.data.root = str(corpus)
    cfg.data.cache_dir = str(out_dir.parent / (out_dir.name + "-cache"))
    cfg.data.valid_fraction = 0.0
    cfg.data.test_fraction = 0.0
    cfg.to_toml(path)
    return path


def run_with_losses(cfg: Config, task, **kw) -> list[float]:
    losses: list[float] = []
    train(cfg, task, progress=False, on_step=lambda step, s: losses.append(s["loss"]), **kw)
    return losses


# --------------------------------------------------------------------------- learning
def test_tiny_vqvae_overfits_one_clip(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(str(tmp_path / "run"), device="cpu")
    cfg.train.steps = 120
    cfg.train.lr = 1e-2
    cfg.train.valid_every = cfg.train.checkpoint_every = 120
    task = VQVAETask(cfg, [(clean_clip(), 0)], None, ["only"])
    ce: list[float] = []
    train(cfg, task, progress=False, on_step=lambda step, s: ce.append(s["ce"]))
    assert len(ce) == 120
    assert abs(ce[0] - math.log(256)) < 0.5  # starts near uniform over 256 mu-law levels
    final = float(np.mean(ce[-10:]))
    assert final < 0.15 * ce[0], (ce[0], final)
    record = checkpoint.load(tmp_path / "run" / "checkpoint.pt")["history"][-1]
    assert record["step"] == 120 and record["valid_ce"] < 0.15 * ce[0]


# --------------------------------------------------------------------------- exact resume
def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(tmp_path):
    wav = tone(0.4, seed=1)
    items = [(wav[:3200], 0), (wav[3200:], 1)]

    def config(out):
        cfg = tiny_config(str(tmp_path / out), device="cpu")
        cfg.train.steps = 16
        cfg.train.checkpoint_every = 4
        cfg.train.valid_every = 4
        cfg.train.lr_min = 1e-4  # the cosine schedule must resume at the right step too
        cfg.model.quantizer.dead_code_steps = 3  # restarts draw from the torch RNG: it must be restored
        return cfg

    full = run_with_losses(config("full"), VQVAETask(config("full"), items, None, ["a", "b"]))
    cfg = config("split")
    first = run_with_losses(cfg, VQVAETask(cfg, items, None, ["a", "b"]), max_steps=8)
    assert checkpoint.load(tmp_path / "split" / "checkpoint.pt")["step"] == 8
    with open(tmp_path / "split" / "log.jsonl", "a") as fh:  # killed after logging step 9, before its checkpoint
        fh.write(json.dumps({"step": 9, "loss": 123.0}) + "\n")
    # a fresh process would rebuild the task from the config alone
    rest = run_with_losses(cfg, VQVAETask(cfg, items, None, ["a", "b"]), resume=True)
    assert len(first) == 8 and len(rest) == 8
    assert first == full[:8]
    np.testing.assert_allclose(rest, full[8:], rtol=0, atol=1e-6)
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 16
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-6)
    assert [r["step"] for r in b["history"]] == [4, 8, 12, 16]
    logged = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    full_log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in logged]
    assert steps == sorted(steps) and set(steps) == {r["step"] for r in full_log}
    assert all(r.get("loss") != 123.0 for r in logged)


def test_checkpoint_loads_weights_only_and_rebuilds_the_model(tmp_path):
    cfg = tiny_config(str(tmp_path / "run"), device="cpu")
    cfg.train.steps = 3
    items = [(tone(0.2, seed=2), 0), (tone(0.2, freq=300, seed=3), 1)]
    path = train(cfg, VQVAETask(cfg, items, None, ["alice", "bob"]), progress=False)
    assert path == tmp_path / "run" / "checkpoint.pt"
    raw = torch.load(path, weights_only=True)  # no pickled code in a checkpoint
    state = checkpoint.load(path)
    assert raw.keys() == state.keys()
    assert state["kind"] == "vqvae" and state["step"] == 3
    assert state["meta"]["speakers"] == ["alice", "bob"]
    for key in ("optimizer", "rng", "history", "config", "model"):
        assert key in state
    rebuilt_cfg = checkpoint.config_of(state)
    assert rebuilt_cfg.model == cfg.model
    model = VQVAE(rebuilt_cfg.model, len(state["meta"]["speakers"]))
    model.load_state_dict(state["model"])  # strict: every tensor matches
    from vqcodec.api import from_checkpoint

    codec = from_checkpoint(state, str(path))
    assert codec.speakers == ["alice", "bob"] and codec.hop == 64
    assert codec.encode(tone(0.128), SR).shape == (32,)
    # `train export` strips the training state
    r = CliRunner().invoke(cli, ["train", "export", str(path), str(tmp_path / "shipped.pt")])
    assert r.exit_code == 0, r.output
    shipped = checkpoint.load(tmp_path / "shipped.pt")
    assert "optimizer" not in shipped and "rng" not in shipped
    assert shipped["meta"]["speakers"] == ["alice", "bob"]


def test_refuses_to_start_over_an_existing_checkpoint(tmp_path):
    cfg = tiny_config(str(tmp_path / "run"), device="cpu")
    cfg.train.steps = 2
    task = VQVAETask(cfg, [(tone(0.2), 0)], None, ["a"])
    train(cfg, task, progress=False)
    saved_config = (tmp_path / "run" / "config.toml").read_text()
    other = tiny_config(str(tmp_path / "run"), device="cpu")
    other.train.steps = 99
    with pytest.raises(VqcodecError, match="--resume"):
        train(other, task, progress=False)
    assert (tmp_path / "run" / "config.toml").read_text() == saved_config  # the old run is untouched
    # resuming a finished run does nothing more
    assert run_with_losses(cfg, task, resume=True) == []


# --------------------------------------------------------------------------- the CLI
def test_cli_train_vqvae_end_to_end(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    config_path = write_config(tmp_path / "tiny.toml", tmp_path / "run", corpus)
    args = ["train", "vqvae", str(config_path), "--set", "train.steps=6", "--set", "train.valid_every=3",
            "--set", "train.log_every=2"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").exists()
    assert "codes_used=" in r.output and "valid_perplexity=" in r.output
    saved = load_config(run / "config.toml")
    assert saved.train.steps == 6 and saved.train.valid_every == 3  # the overrides are recorded
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [2, 4, 6]
    history = checkpoint.load(run / "checkpoint.pt")["history"]
    assert [h["step"] for h in history] == [3, 6]
    for h in history:
        assert 1 <= h["codes_used"] <= 16 and 1.0 <= h["valid_perplexity"] <= 16.0
        assert h["samples_per_s"] > 0
    assert checkpoint.load(run / "checkpoint.pt")["meta"]["speakers"] == ["spkA", "spkB"]

    # again without --resume: refused with a clear message, exit 1
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1
    assert "exists: pass --resume" in r.output
    # with --resume and more steps: continues from step 6
    r = CliRunner().invoke(cli, args + ["--resume", "--set", "train.steps=8"])
    assert r.exit_code == 0, r.output
    assert "resumed from" in r.output
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 8


def test_cli_reports_config_errors_in_one_line(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", per_speaker=1)
    config_path = write_config(tmp_path / "tiny.toml", tmp_path / "run", corpus)
    r = CliRunner().invoke(cli, ["train", "vqvae", str(config_path), "--set", "train.stepz=5"])
    assert r.exit_code == 1 and "unknown config key(s) in [train]: stepz" in r.output
    r = CliRunner().invoke(cli, ["train", "vqvae", str(tmp_path / "missing.toml")])
    assert r.exit_code == 1 and "no such config file" in r.output
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- DDP
DDP_SPY = """
import os, sys, torch
from vqcodec.tasks import VQVAETask
from vqcodec.cli import cli
models = []
build = VQVAETask.build_model
def spy(self):
    models.append(build(self))
    return models[-1]
VQVAETask.build_model = spy
cli.main(args=sys.argv[2:], prog_name="vqcodec", standalone_mode=False)
torch.save(models[0].state_dict(), os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_two_process_gloo_smoke(tmp_path):
    """`torchrun --standalone --nproc_per_node 2 -m vqcodec train vqvae CFG` on CPU (gloo), on a
    fresh corpus (both ranks prepare the cache): finishes without deadlock, writes one checkpoint,
    and both ranks end with the same weights and codebook (EMA statistics are all-reduced and
    dead-code restarts, forced here, broadcast). The script torchrun starts is the same CLI entry
    point as `-m vqcodec` plus a spy that saves each rank's final state_dict."""
    corpus = write_corpus(tmp_path / "corpus")
    config_path = write_config(tmp_path / "tiny.toml", tmp_path / "run", corpus)
    spy = tmp_path / "spy.py"
    spy.write_text(DDP_SPY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(spy), str(tmp_path),
           "train", "vqvae", str(config_path), "--set", "train.steps=6", "--set", "train.valid_every=3",
           "--set", "train.checkpoint_every=3", "--set", "model.quantizer.dead_code_steps=2"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun did not finish in 150 s (deadlock?): {e.stderr}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 6 and [h["step"] for h in state["history"]] == [3, 6]
    assert sorted(f.name for f in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "config.toml", "log.jsonl"]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key in ranks[0]:
        if key.endswith("usage"):
            continue  # rank 0 alone resets the usage counter when it validates
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    for key, value in state["model"].items():
        if not key.endswith("usage"):
            assert torch.equal(value, ranks[0][key]), key


# --------------------------------------------------------------------------- config errors
def test_unknown_config_key_is_an_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nsteps = 10\nbatchsize = 4\n")
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) in \[train\]: batchsize"):
        load_config(path)
    path.write_text("[model.decoder]\nlayer = 4\n")
    with pytest.raises(ConfigError, match=r"\[model.decoder\]: layer"):
        load_config(path)
    path.write_text("[modle]\n")
    with pytest.raises(ConfigError, match="modle"):
        load_config(path)
    path.write_text("model = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(path)


def test_bad_toml_is_a_config_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train\nsteps = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_bytes(b"\xff\xfe[train]")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_set_overrides_are_parsed_as_toml_values(tmp_path):
    path = tmp_path / "c.toml"
    Config().to_toml(path)
    cfg = load_config(path, ["train.steps=123", "train.lr=2e-4", "model.quantizer.ema=false",
                             "data.root=data/my corpus", 'data.corpus="vctk"',
                             "data.holdout_speakers=['p225', 'p226']", "model.decoder.layers = 8"])
    assert cfg.train.steps == 123 and isinstance(cfg.train.steps, int)
    assert cfg.train.lr == 2e-4
    assert cfg.model.quantizer.ema is False
    assert cfg.data.root == "data/my corpus"  # bare strings need no quotes
    assert cfg.data.corpus == "vctk"
    assert cfg.data.holdout_speakers == ["p225", "p226"]
    assert cfg.model.decoder.layers == 8
    assert cfg.train.batch_size == Config().train.batch_size  # untouched values keep their defaults
    # an override may create a section the file lacks
    data: dict = {}
    apply_override(data, "prior.wavenet.layers=3")
    assert Config.from_dict(data).prior.wavenet.layers == 3
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["train.steps"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(path, ["train.step=5"])
    # a config survives a write / read round trip
    cfg.to_toml(tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml") == cfg
