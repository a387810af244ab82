"""Issue 14: training-only pushes towards speaker-independent tokens ([model.invariance]): the
frequency warp of the encoder input, the speaker adversary behind gradient reversal, defaults that
change nothing (ids of shipped and tiny models), exact resume with the warp on."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_train import run_with_losses
from test_v2 import SPEAKERS, make_model, tiny_v2_config, varied
from tiny import tiny_config
from vqcodec import checkpoint
from vqcodec.api import from_checkpoint, load_model
from vqcodec.config import Config, load_config
from vqcodec.errors import ConfigError
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.perturb import frequency_warp, random_warp_factors
from vqcodec.tasks import VQVAETask

SR = 16000


def sine(freq: float, n: int = 8000, amp: float = 0.3) -> torch.Tensor:
    return amp * torch.sin(2 * np.pi * freq * torch.arange(n, dtype=torch.float64) / SR).float()


def peak_hz(x: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(len(x))))
    return float(np.argmax(spec)) * SR / len(x)


def centroid_hz(x: torch.Tensor) -> float:
    power = np.abs(np.fft.rfft(x.numpy())) ** 2
    return float((np.fft.rfftfreq(len(x), 1 / SR) * power).sum() / power.sum())


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1).sqrt()


# --------------------------------------------------------------------------- the warp
def test_warp_by_one_gives_back_the_input():
    x = torch.stack([sine(440), torch.from_numpy(varied(0.5, 1))])
    y = frequency_warp(x, torch.ones(2))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-4)


def coloured_noise(n: int = 8000, top_hz: float = 4000) -> torch.Tensor:
    """Broadband noise falling with frequency, nothing above `top_hz` (so no warp pushes it past
    Nyquist): its spectral centroid is a clean measure of the warp."""
    spec = torch.fft.rfft(torch.randn(n, generator=torch.Generator().manual_seed(0)))
    f = torch.fft.rfftfreq(n, 1 / SR)
    spec = torch.where(f > top_hz, 0, spec / (1 + f / 500))
    return torch.fft.irfft(spec, n=n)


@pytest.mark.parametrize("alpha", [0.8, 0.9, 1.15, 1.25])
def test_warp_moves_frequencies_by_alpha_keeping_length_and_rms(alpha):
    harmonic = sum(sine(200 * k, amp=0.3 / k) for k in range(1, 4))
    x = torch.stack([sine(440), harmonic, coloured_noise()])
    y = frequency_warp(x, torch.full((3,), alpha))
    assert y.shape == x.shape
    torch.testing.assert_close(rms(y), rms(x), rtol=1e-4, atol=0)
    assert peak_hz(y[0]) == pytest.approx(440 * alpha, abs=4)  # 2 Hz bins
    freqs = np.fft.rfftfreq(len(y[0]), 1 / SR)
    for row, partials in ((y[0], [440]), (y[1], [200, 400, 600])):  # clean partials, not a smear
        power = np.abs(np.fft.rfft(row.numpy() * np.hanning(len(row)))) ** 2
        near = sum(np.abs(freqs - f * alpha) < 15 for f in partials).astype(bool)
        assert power[near].sum() > 0.99 * power.sum()
    assert centroid_hz(y[1]) / centroid_hz(x[1]) == pytest.approx(alpha, rel=0.02)
    # broadband: phase-vocoded noise smears a little, the centroid still follows alpha
    assert centroid_hz(y[2]) / centroid_hz(x[2]) == pytest.approx(alpha, rel=0.1)


def test_warp_length_not_a_multiple_of_the_stft_hop_and_silence():
    x = torch.stack([sine(300, n=1000), torch.zeros(1000)])
    y = frequency_warp(x, torch.tensor([1.2, 0.8]))
    assert y.shape == (2, 1000) and torch.isfinite(y).all() and y[1].abs().max() == 0


def test_warp_factors_are_log_uniform_in_range_and_follow_the_torch_rng():
    torch.manual_seed(3)
    a = random_warp_factors(20000, 0.2)
    torch.manual_seed(3)
    torch.testing.assert_close(random_warp_factors(20000, 0.2), a, rtol=0, atol=0)
    assert a.min() >= 1 / 1.2 and a.max() <= 1.2
    assert a.log().mean().abs() < 0.01  # symmetric in log: as many voices up as down
    assert (a > 1.1).float().mean() == pytest.approx(np.log(1.2 / 1.1) / (2 * np.log(1.2)), abs=0.02)


# --------------------------------------------------------------------------- training with both
def invariant_config(out_dir: str = "", warp: float = 0.2, adversary: float = 0.1, **train) -> Config:
    cfg = tiny_v2_config(out_dir, device="cpu", **train)
    cfg.model.invariance.warp = warp
    cfg.model.invariance.adversary_weight = adversary
    cfg.data.voice_seconds = 0.3
    return cfg


def batch(cfg: Config, step: int = 0):
    items = [(varied(1.0, s), s % 2) for s in range(4)]
    return VQVAETask(cfg, items, None, SPEAKERS).train_batch(step, 0, 1)


def test_training_step_with_warp_and_adversary():
    cfg = invariant_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS)).train()
    wav, spk, ref = batch(cfg)
    out = model(wav, spk, ref)
    assert {"loss", "stft", "mel", "adv", "spk_acc"} <= set(out)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert 0 <= float(out["spk_acc"]) <= 1
    out["loss"].backward()
    for part in (model.encoder, model.speaker_adversary, model.fast_decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    # the encoder sees a warped crop only while training; evaluation sees the crop itself
    assert (model._encoder_input(wav) - wav).abs().max() > 1e-3
    torch.testing.assert_close(model.eval()._encoder_input(wav), wav, rtol=0, atol=0)


def test_adversary_leaves_the_loss_value_alone():
    """'loss' is the codec's loss with or without the adversary (comparable across variants)."""
    cfg = invariant_config(warp=0.0)
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS)).eval()  # eval: no EMA update between the two passes
    wav, spk, ref = batch(cfg)
    with_adv = model(wav, spk, ref)
    model.speaker_adversary, adversary = None, model.speaker_adversary
    without = model(wav, spk, ref)
    assert "adv" not in without
    torch.testing.assert_close(with_adv["loss"], without["loss"], rtol=0, atol=0)
    assert float(with_adv["adv"].detach()) > 0 and adversary is not None


def test_adversary_gradient_reaches_the_encoder_reversed():
    weight = 0.1
    cfg = invariant_config(warp=0.0, adversary=weight)
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS))
    wav, spk, _ = batch(cfg)
    adversary = model.speaker_adversary

    def grads(reverse: bool):
        model.zero_grad()
        z_e = model.encoder(wav)
        if reverse:
            loss = adversary(z_e, spk)["adv"]
        else:  # the same classifier without the reversal layer
            loss = F.cross_entropy(adversary.net(z_e).mean(-1), spk)
        loss.backward()
        return ([p.grad.clone() for p in model.encoder.parameters()],
                [p.grad.clone() for p in adversary.parameters()])

    enc_rev, adv_rev = grads(True)
    enc_plain, adv_plain = grads(False)
    assert sum(g.abs().sum() for g in enc_plain) > 0
    for r, p in zip(enc_rev, enc_plain):  # the encoder is pushed to hide the speaker ...
        torch.testing.assert_close(r, -weight * p, rtol=1e-4, atol=1e-9)
    for r, p in zip(adv_rev, adv_plain):  # ... while the classifier learns to find it
        torch.testing.assert_close(r, p, rtol=1e-5, atol=1e-9)


def test_adversary_checkpoints_load_strictly_and_stage_two_ignores_it(tmp_path):
    cfg = invariant_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS))
    assert any(k.startswith("speaker_adversary.") for k in model.state_dict())
    path = tmp_path / "adv.pt"
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": SPEAKERS},
                           "model": model.state_dict()})
    codec = from_checkpoint(checkpoint.load(path))  # strict load: the adversary is built from the config
    assert codec.encode(varied(0.5, 1), SR).shape == (125,)
    # stage 2 from a config without the adversary: its weights are training-only, not an error
    stage2 = invariant_config(str(tmp_path / "s2"), warp=0.0, adversary=0.0, stage="wavenet", init=str(path))
    task = VQVAETask(stage2, [(varied(1.0, s), s % 2) for s in range(4)], None, SPEAKERS)
    built = task.build_model()
    assert built.speaker_adversary is None
    torch.testing.assert_close(built.encoder.out.weight, model.encoder.out.weight, rtol=0, atol=0)


# --------------------------------------------------------------------------- defaults change nothing
def test_shipped_model_ids_unchanged():
    assert load_model("vqcodec-real-v2").model_id == "09fbd5516c092206"
    assert load_model("vqcodec-real-ladder").model_id == "eb378e155cd4d097"
    assert load_model("vqcodec-synth-v1").model_id == "0facbb2f4238a1ae"


def without_invariance(d: dict) -> dict:
    """A model config as written before [model.invariance] existed."""
    return {k: v for k, v in d.items() if k != "invariance"}


def test_tiny_model_ids_unchanged_by_the_section():
    cfg, v2 = make_model()
    torch.manual_seed(0)
    cfg1 = tiny_config()
    v1 = VQVAE(cfg1.model, 2)
    for c, m in ((cfg, v2), (cfg1, v1)):
        d = c.to_dict()["model"]
        assert "invariance" in d
        old = checkpoint.model_id(m.state_dict(), without_invariance(d))
        assert checkpoint.model_id(m.state_dict(), d) == old
        # training-only settings never enter the id (only the weights they shape do)
        c.model.invariance.warp, c.model.invariance.adversary_weight = 0.2, 0.1
        assert checkpoint.model_id(m.state_dict(), c.to_dict()["model"]) == old


def test_old_checkpoints_load_and_unknown_keys_stay_errors(tmp_path):
    cfg, model = make_model()
    d = cfg.to_dict()
    d["model"] = without_invariance(d["model"])
    rebuilt = Config.from_dict(d)
    assert rebuilt.model.invariance.warp == 0.0 and rebuilt.model.invariance.adversary_weight == 0.0
    assert VQVAE(rebuilt.model, 2).speaker_adversary is None
    d["model"]["invariance"] = {"wrap": 0.2}
    with pytest.raises(ConfigError, match="wrap"):
        Config.from_dict(d)
    path = tmp_path / "c.toml"
    cfg.to_toml(path)
    loaded = load_config(path, ["model.invariance.warp=0.2", "model.invariance.adversary_weight=0.1"])
    assert loaded.model.invariance.warp == 0.2 and loaded.model.invariance.adversary_weight == 0.1
    with pytest.raises(ConfigError, match="expected float"):
        load_config(path, ["model.invariance.warp=true"])


# --------------------------------------------------------------------------- exact resume
def test_resume_is_exact_with_warp_and_adversary(tmp_path):
    items = [(varied(1.0, s), s % 2) for s in range(4)]

    def config(out):
        cfg = invariant_config(str(tmp_path / out))
        cfg.train.steps = 6
        cfg.train.checkpoint_every = cfg.train.valid_every = 3
        return cfg

    full = run_with_losses(config("full"), VQVAETask(config("full"), items, None, SPEAKERS))
    cfg = config("split")
    first = run_with_losses(cfg, VQVAETask(cfg, items, None, SPEAKERS), max_steps=3)
    rest = run_with_losses(cfg, VQVAETask(cfg, items, None, SPEAKERS), resume=True)
    assert first == full[:3]
    np.testing.assert_allclose(rest, full[3:], rtol=0, atol=1e-6)
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["model"]
    b = checkpoint.load(tmp_path / "split" / "checkpoint.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    logged = checkpoint.load(tmp_path / "full" / "checkpoint.pt")["history"][-1]
    assert "valid_spk_acc" in logged and "valid_adv" in logged


# --------------------------------------------------------------------------- the voice vector
def test_layernorm_voice_vectors_stay_off_the_tanh_ends():
    """model.voice.norm = layernorm: whatever the scale of the linear layer's outputs, they are
    normalised before the tanh, so most values stay inside the grid instead of at 0 / 255."""
    cfg = tiny_v2_config()
    cfg.model.voice.norm = "layernorm"
    torch.manual_seed(0)
    model = VQVAE(cfg.model, 2).eval()
    with torch.no_grad():
        model.voice_encoder.out.weight.mul_(100.0)  # a tanh would saturate everywhere
        v = model.voice(torch.from_numpy(np.stack([varied(1.0, 1), varied(1.0, 2)])))
    assert v.shape == (2, 4) and float(v.abs().max()) <= 1.0
    assert float((v.abs() < 0.99).float().mean()) >= 0.5
    cfg.model.voice.norm = "none"
    with pytest.raises(ValueError, match="tanh' or 'layernorm"):
        VQVAE(cfg.model, 2)


def test_voice_norm_enters_the_id_only_when_changed():
    cfg, model = make_model()
    d = cfg.to_dict()["model"]
    plain = checkpoint.model_id(model.state_dict(), d)
    d_old = {**d, "voice": {k: v for k, v in d["voice"].items() if k != "norm"}}   # written before the key
    assert checkpoint.model_id(model.state_dict(), d_old) == plain
    d_new = {**d, "voice": {**d["voice"], "norm": "layernorm"}}
    assert checkpoint.model_id(model.state_dict(), d_new) != plain


def test_voice_classifier_adds_its_loss_and_trains_the_voice_encoder():
    cfg = tiny_v2_config()
    cfg.model.invariance.voice_speaker_weight = 0.5
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS)).eval()
    wav, spk, ref = batch(cfg)
    out = model(wav, spk, ref)
    assert {"voice_ce", "voice_acc"} <= set(out) and 0 <= float(out["voice_acc"]) <= 1
    model.voice_classifier, classifier = None, model.voice_classifier
    without = model(wav, spk, ref)
    torch.testing.assert_close(out["loss"], without["loss"] + 0.5 * out["voice_ce"], rtol=1e-5, atol=1e-6)
    model.voice_classifier = classifier
    model.zero_grad()
    model(wav, spk, ref)["voice_ce"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.voice_encoder.parameters())
    assert any(k.startswith("voice_classifier.") for k in model.state_dict())
    # frozen with the tokenizer in the later stages
    model.set_stage("fast")
    assert not any(p.requires_grad for p in model.voice_classifier.parameters())
    cfg.model.voice.dim = 0
    cfg.model.fast.blocks = 0
    with pytest.raises(ValueError, match="voice encoder"):
        VQVAE(cfg.model, 2)
