"""Issue 22's decoder levers, each off by default: the harmonic excitation from F0
(`model.fast.excitation`), the phase losses (`model.loss.phase_weight`), a larger n_fft at the same
hop (`model.fast.n_fft`), weight EMA (`train.ema_decay`) and the fast decoder's discriminator
(`model.loss.adversarial_weight`)."""
import json
import math

import numpy as np
import pytest
import torch

from test_pitch import SR, make_pitch_model, pitch_config, speechlike
from test_v2 import SPEAKERS, make_model, tiny_v2_config, varied
from vqcodec import checkpoint
from vqcodec.api import from_checkpoint
from vqcodec.models.vqvae import TRAINING_ONLY, VQVAE
from vqcodec.nn import voice as voice_codec
from vqcodec.nn.excitation import (SINE_AMPLITUDE, UNVOICED_NOISE_STD, VOICED_NOISE_STD, continuous_source,
                                   excitation_frames, harmonic_source, harmonic_sum, harmonics_below_nyquist,
                                   source_phase)
from vqcodec.nn.fast_decoder import SOURCE_GAIN_OFFSET
from vqcodec.nn.pitch import f0_of_features, pitch_features
from vqcodec.nn.spectral import SpectralLoss, anti_wrap, phase_losses
from vqcodec.tasks import VQVAETask
from vqcodec.train import WeightEMA, train

NEW_PREFIXES = ("fast_decoder.excitation_inp.", "fast_decoder.source_gain.", "fast_discriminator.")


def harmonic_config(out_dir: str = "", **train):
    cfg = pitch_config(out_dir, **train)
    cfg.model.fast.excitation = "harmonic"
    return cfg


# --------------------------------------------------------------------------- off by default
@pytest.mark.parametrize("excitation", ["harmonic", "source"])
def test_defaults_add_no_weights_and_keep_the_ids(excitation):
    """With every lever at its default the model has the weights it had before issue 22; with every
    lever on, the tokenizer (hence the id of its files) is the same."""
    cfg, model = make_pitch_model()
    state = model.state_dict()
    assert not [k for k in state if k.startswith(NEW_PREFIXES)]
    on = harmonic_config()
    on.model.fast.excitation = excitation
    on.model.loss.phase_weight = 1.0 if excitation == "harmonic" else 0.0  # the source refuses the phase losses
    on.model.loss.adversarial_weight = 1.0
    torch.manual_seed(0)
    lever_model = VQVAE(on.model, 2)
    lever_model.load_state_dict(state, strict=False)
    assert {k for k in lever_model.state_dict() if k.startswith(NEW_PREFIXES)}
    old = checkpoint.model_id(state, cfg.to_dict()["model"])
    assert checkpoint.model_id(lever_model.state_dict(), on.to_dict()["model"]) == old
    written_before = cfg.to_dict()["model"]  # a config written before the levers existed
    for section, key in (("fast", "excitation"), ("loss", "phase_weight"), ("loss", "adversarial_weight")):
        del written_before[section][key]
    assert checkpoint.model_id(state, written_before) == old


# --------------------------------------------------------------------------- the harmonic source
def test_f0_of_features_inverts_pitch_features():
    f0 = torch.tensor([[0.0, 87.3, 151.0, 0.0, 402.5]])
    back = f0_of_features(pitch_features(f0, every=2, num_tokens=10))
    np.testing.assert_allclose(back.numpy(), f0.repeat_interleave(2, 1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("f0", [123.0, 310.0])
def test_harmonic_source_sounds_at_its_f0_below_nyquist(f0):
    wav = harmonic_source(torch.full((1, SR), f0), SR)[0].numpy()
    spec = np.abs(np.fft.rfft(wav))                       # 1 Hz bins
    peaks = np.flatnonzero(spec > 0.5 * spec.max())
    assert peaks[0] == round(f0)                          # the lowest strong component is F0
    assert np.allclose(peaks / f0, np.round(peaks / f0), atol=0.02)   # all others its harmonics
    K = int(SR / 2 // f0)
    assert len(peaks) == K                                # every harmonic below Nyquist, none above
    assert spec[round(K * f0) + 5:].max() < 0.01 * spec.max()
    np.testing.assert_allclose(np.sqrt(np.mean(wav ** 2)), SINE_AMPLITUDE * math.sqrt(K / 2), rtol=0.02)


def test_harmonic_source_equals_the_explicit_sum_of_its_sines():
    f0 = torch.tensor([[50.0] * 3000 + [173.3] * 3000 + [499.0] * 2000])
    out = harmonic_source(f0, SR, centre=4000)[0].double()
    cum = torch.cumsum(f0[0].double(), 0)
    phase = 2 * math.pi / SR * (cum - cum[4000])
    ref = torch.zeros_like(phase)
    for lo, hi, f in ((0, 3000, 50.0), (3000, 6000, 173.3), (6000, 8000, 499.0)):
        ref[lo:hi] = sum(torch.sin(k * phase[lo:hi]) for k in range(1, math.ceil(SR / 2 / f)))
    assert out[4000] == 0                                 # phase 0 at the centre
    assert float((out - SINE_AMPLITUDE * ref).abs().max()) < 1e-3 * float(SINE_AMPLITUDE * ref.abs().max())


def test_harmonic_source_follows_a_glide_and_is_silent_when_unvoiced():
    f0 = torch.cat([torch.linspace(100, 200, SR), torch.zeros(SR // 4)])[None]
    wav = harmonic_source(f0, SR)[0].numpy()
    assert np.all(wav[SR:] == 0)
    # the phase is accumulated sample by sample: the fundamental's zero crossings follow the glide
    lowpassed = np.convolve(wav[:SR], np.ones(40) / 40, mode="same")   # keeps the fundamental mostly
    last = lowpassed[SR - 4000:SR - 100]
    crossings = np.flatnonzero(np.diff(np.sign(last)) > 0)
    period = np.median(np.diff(crossings))
    assert abs(SR / period - 190) < 12


def test_excitation_frames_voiced_comb_and_flat_noise_when_unvoiced():
    n_fft, hop = 1024, 64
    f0 = torch.tensor([[0.0] * 40 + [250.0] * 40])
    feats = excitation_frames(f0, SR, hop, n_fft)[0]       # (513, 80)
    assert feats.shape == (n_fft // 2 + 1, 80)
    window = torch.hann_window(n_fft)
    flat = math.log(UNVOICED_NOISE_STD ** 2 * float(window.square().sum()) + 1e-8)
    np.testing.assert_allclose(feats[:, :30].numpy(), flat, rtol=1e-5)        # noise only, far from voicing
    voiced = feats[:, 70].numpy()
    bin_hz = SR / n_fft
    harmonics = [round(k * 250 / bin_hz) for k in range(1, 32)]
    between = [round((k + 0.5) * 250 / bin_hz) for k in range(1, 31)]
    assert int(np.argmax(voiced[:24])) == harmonics[0]                         # F0's bin
    assert voiced[harmonics].min() > voiced[between].max() + 5                 # a comb up to Nyquist
    floor = math.log(VOICED_NOISE_STD ** 2 * float(window.square().sum()))
    assert voiced[between].min() > floor - 1e-3                                # the noise floor under it


def test_an_excitation_frame_depends_only_on_the_tokens_its_window_spans():
    n_fft, hop = 256, 64
    f0 = torch.full((1, 60), 180.0)
    base = excitation_frames(f0, SR, hop, n_fft)
    moved = f0.clone()
    moved[0, 40] = 90.0
    diff = (excitation_frames(moved, SR, hop, n_fft) - base).abs().amax(0)[0] > 0
    span = n_fft // (2 * hop)
    assert diff[40 - span + 1:40 + span + 1].all() and not diff[:40 - span].any() and not diff[41 + span:].any()


def test_excitation_needs_the_pitch_stream_and_a_known_name():
    cfg = tiny_v2_config()
    cfg.model.fast.excitation = "harmonic"
    with pytest.raises(ValueError, match="pitch stream"):
        VQVAE(cfg.model, 2)
    cfg = pitch_config()
    cfg.model.fast.excitation = "pulse"
    with pytest.raises(ValueError, match="excitation"):
        VQVAE(cfg.model, 2)


def pitch_codec(seed: int, cfg):
    """A tiny Codec of a pitch-stream config with two named voices."""
    cfg, model = make_model(seed, cfg)
    meta = {"speakers": SPEAKERS, "voices": {"us1": [10, 200, 30, 128], "us2": [250, 5, 128, 60]},
            "f0_medians": {"us1": 110.0, "us2": 240.0}}
    return from_checkpoint({"kind": "vqvae", "config": cfg.to_dict(), "meta": meta, "model": model.state_dict()})


@pytest.fixture(scope="module")
def harmonic_codec():
    return pitch_codec(3, harmonic_config())


def test_the_excitation_reaches_the_output(harmonic_codec):
    """With the pitch features' own path zeroed, the F0 still changes the output: through the source."""
    model = harmonic_codec.model
    codes = torch.randint(0, 16, (1, 60), generator=torch.Generator().manual_seed(0))
    voice = torch.zeros(1, 4)
    saved = {k: v.clone() for k, v in model.fast_decoder.pitch_inp.state_dict().items()}
    with torch.no_grad():
        for p in model.fast_decoder.pitch_inp.parameters():
            p.zero_()
        try:
            feats = [pitch_features(torch.full((1, 15), f), 4, 60) for f in (120.0, 180.0)]
            a, b = (model.decode_fast(codes, voice, f) for f in feats)
            again = model.decode_fast(codes, voice, feats[0])
        finally:
            model.fast_decoder.pitch_inp.load_state_dict(saved)
    assert torch.equal(a, again)                                         # deterministic
    assert (a - b).abs().max() > 1e-3


def test_chunked_decode_equals_whole_with_the_excitation(harmonic_codec):
    tf = harmonic_codec.encode_utterance(speechlike(2.0, 170, 4), SR)
    dec = harmonic_codec.decoder("fast")
    feats = dec.pitch_input(torch.as_tensor(tf.tokens), tf.pitch, None, tf.f0_median)
    v = voice_codec.from_bytes(tf.voice)
    plain = pitch_config().model.fast
    assert harmonic_codec.model.fast_decoder.context > VQVAE(pitch_config().model, 2).fast_decoder.context
    assert plain.excitation == ""
    whole = dec.decode_chunks(torch.as_tensor(tf.tokens), v, pitch_features=feats, chunk_tokens=10 ** 6)
    for chunk in (37, 97):
        chunked = dec.decode_chunks(torch.as_tensor(tf.tokens), v, pitch_features=feats, chunk_tokens=chunk)
        np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_a_larger_n_fft_at_the_same_hop_decodes_chunk_exact():
    cfg = tiny_v2_config()
    cfg.model.fast.n_fft = 512
    cfg, model = make_model(1, cfg)
    assert model.fast_decoder.head.out_features == 514 and model.hop == 64
    assert model.fast_decoder.context == 2 * (1 + 1) + 4
    codec = from_checkpoint({"kind": "vqvae", "config": cfg.to_dict(),
                             "meta": {"speakers": SPEAKERS, "voices": {"us1": [1, 2, 3, 4]}},
                             "model": model.state_dict()})
    tf = codec.encode_utterance(varied(1.5, 2), SR)
    v = voice_codec.from_bytes(tf.voice)
    dec = codec.decoder("fast")
    whole = dec.decode_chunks(torch.as_tensor(tf.tokens), v, chunk_tokens=10 ** 6)
    np.testing.assert_allclose(dec.decode_chunks(torch.as_tensor(tf.tokens), v, chunk_tokens=41), whole, atol=1e-5)


# --------------------------------------------------------------------------- phase losses
def _frames_of(wav, n_fft=128, hop=32):
    T = wav.shape[-1] // hop
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True)[..., :T]
    return spec.abs(), spec.angle()


def test_anti_wrap_is_blind_to_whole_turns():
    x = torch.tensor([0.3, -0.3, 0.3 + 2 * math.pi, -0.3 - 6 * math.pi, math.pi - 0.01])
    np.testing.assert_allclose(anti_wrap(x).numpy(), [0.3, 0.3, 0.3, 0.3, math.pi - 0.01], atol=1e-5)


def test_phase_losses_zero_for_the_signal_itself_blind_to_turns_positive_otherwise():
    wav = torch.from_numpy(np.stack([varied(0.25, 1), varied(0.25, 2)]))
    mag, phase = _frames_of(wav)
    same = phase_losses(mag, phase, wav, 128, 32)
    for k in ("ip", "gd", "iaf"):
        assert float(same[k]) < 1e-5, k
    assert float(same["consistency"]) < 1e-4 * float(mag.mean())
    turns = torch.randint(-3, 4, phase.shape, generator=torch.Generator().manual_seed(0)).float()
    wrapped = phase_losses(mag, phase + 2 * math.pi * turns, wav, 128, 32)
    for k in ("ip", "gd", "iaf"):
        assert float(wrapped[k]) < 1e-4, k
    other = phase_losses(mag, phase + 0.5 * torch.randn(phase.shape, generator=torch.Generator().manual_seed(1)),
                         wav, 128, 32)
    for k in ("ip", "gd", "iaf", "consistency"):
        assert float(other[k]) > 100 * max(float(same[k]), 1e-6), k
    shifted = phase_losses(mag, phase + 0.4, wav, 128, 32)    # a constant offset: phase wrong, differences right
    assert float(shifted["ip"]) > 0.3 and float(shifted["gd"]) < 1e-4 and float(shifted["iaf"]) < 1e-4


def test_spectral_loss_adds_the_weighted_phase_losses_only_when_on():
    wav = torch.from_numpy(np.stack([varied(0.25, 3)]))
    pred = wav.roll(7, -1)
    frames = _frames_of(pred)
    off = SpectralLoss([[128, 32]], SR)(pred, wav, frames)
    on = SpectralLoss([[128, 32]], SR, phase_weight=0.5, phase_frame=(128, 32))(pred, wav, frames)
    assert "phase" not in off and float(on["phase"]) > 0
    torch.testing.assert_close(on["loss"], off["loss"] + 0.5 * on["phase"])
    with pytest.raises(ValueError, match="frames"):
        SpectralLoss([[128, 32]], SR, phase_weight=0.5)(pred, wav)


# --------------------------------------------------------------------------- weight EMA
def test_weight_ema_follows_its_formula_and_restores_the_weights_bit_for_bit():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    ema = WeightEMA({"p": p}, 0.9)
    with torch.no_grad():
        p.copy_(torch.tensor([3.0, 0.0]))
    ema.update()
    with torch.no_grad():
        p.copy_(torch.tensor([5.0, 2.0]))
    ema.update()
    first = 0.9 * torch.tensor([1.0, -2.0]) + 0.1 * torch.tensor([3.0, 0.0])
    torch.testing.assert_close(ema.state_dict()["p"], 0.9 * first + 0.1 * torch.tensor([5.0, 2.0]))
    with ema.applied():
        torch.testing.assert_close(p.detach(), ema.state_dict()["p"])
    assert torch.equal(p.detach(), torch.tensor([5.0, 2.0]))
    with pytest.raises(Exception, match="ema_decay"):
        WeightEMA({"p": p}, 1.0)


def _fast_stage(tmp_path, name, init, steps, **lever):
    """A stage-'fast' config on the tiny pitch model (harmonic excitation on) plus the given levers."""
    cfg = harmonic_config(str(tmp_path / name), stage="fast", init=init)
    cfg.train.steps, cfg.train.checkpoint_every, cfg.train.valid_every = steps, 2, 2
    cfg.data.voice_seconds = 0.3
    for key, value in lever.items():
        section, field = key.split("__")
        setattr(cfg.train if section == "train" else cfg.model.loss, field, value)
    return cfg


def _items():
    return [(speechlike(1.0, 120 + 40 * s, s), s % 2) for s in range(6)]


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A stage-'auto' checkpoint of the tiny pitch model with the harmonic excitation and the phase losses
    on (2 steps: losses finite)."""
    root = tmp_path_factory.mktemp("levers")
    cfg = harmonic_config(str(root / "s1"))
    cfg.model.loss.phase_weight = 0.3
    cfg.train.steps = cfg.train.checkpoint_every = cfg.train.valid_every = 2
    cfg.data.voice_seconds = 0.3
    logged = []
    items = _items()
    path = train(cfg, VQVAETask(cfg, items[:4], items[4:], SPEAKERS), progress=False,
                 on_step=lambda step, s: logged.append(s))
    return root, str(path), logged


def test_training_with_the_excitation_and_phase_losses_runs(stage1):
    _, path, logged = stage1
    assert len(logged) == 2
    for s in logged:
        for k in ("loss", "stft", "mel", "ip", "gd", "iaf", "consistency", "phase"):
            assert math.isfinite(s[k]) and s[k] >= 0, (k, s)
    state = checkpoint.load(path)
    assert any(k.startswith("fast_decoder.excitation_inp.") for k in state["model"])
    from_checkpoint(state)  # loads strictly


def _losses(cfg, **kw):
    items = _items()
    logged = []
    train(cfg, VQVAETask(cfg, items[:4], items[4:], SPEAKERS), progress=False,
          on_step=lambda step, s: logged.append(s), **kw)
    return logged


def test_ema_and_discriminator_resume_exactly_and_export_ships_the_ema(stage1, tmp_path):
    """Stage 'fast' with weight EMA and the discriminator: an interrupted and resumed run equals the
    uninterrupted one (weights, EMA, both optimizers); the tokenizer and the id stay; export ships
    the EMA; the checkpoint and the export load strictly."""
    _, init, _ = stage1

    def config(name):
        return _fast_stage(tmp_path, name, init, 6, train__ema_decay=0.8, loss__adversarial_weight=0.5)

    full = _losses(config("full"))
    first = _losses(config("split"), max_steps=2)
    rest = _losses(config("split"), resume=True)
    assert [s["loss"] for s in first] == [s["loss"] for s in full[:2]]
    np.testing.assert_allclose([s["loss"] for s in rest], [s["loss"] for s in full[2:]], rtol=0, atol=1e-6)
    for s in full:
        for k in ("loss", "adv", "fm", "disc"):
            assert math.isfinite(s[k]), (k, s)
    a = checkpoint.load(tmp_path / "full" / "checkpoint.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoint.pt")
    for part in ("model", "ema"):
        assert set(a[part]) == set(b[part])
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=1e-6, msg=key)
    assert set(a["ema"]) == {k for k in a["model"] if k.startswith("fast_decoder.")} - {"fast_decoder.window"}
    assert "disc_optimizer" in a
    start = checkpoint.load(init)
    for key, value in start["model"].items():                 # the frozen tokenizer: bit-identical
        if key.startswith(("encoder.", "quantizer.", "voice_encoder.")):
            assert torch.equal(a["model"][key], value), key
    disc = [k for k in a["model"] if k.startswith("fast_discriminator.")]
    assert disc and all(k.startswith(TRAINING_ONLY) for k in disc)
    assert from_checkpoint(a).model_id == from_checkpoint(start).model_id
    moved = [k for k in a["ema"] if not torch.equal(a["ema"][k], a["model"][k])]
    assert moved                                              # the average lags the weights
    checkpoint.export(tmp_path / "full" / "checkpoint.pt", tmp_path / "shipped.pt")
    shipped = checkpoint.load(tmp_path / "shipped.pt")
    assert "ema" not in shipped and "optimizer" not in shipped and "disc_optimizer" not in shipped
    for key, value in shipped["model"].items():
        torch.testing.assert_close(value, a["ema"].get(key, a["model"][key]), rtol=0, atol=0, msg=key)
    codec = from_checkpoint(shipped)
    tf = codec.encode_utterance(speechlike(0.5, 150), SR)
    assert np.isfinite(codec.decode_file(tf)).all()


def test_validation_runs_on_the_ema(stage1, tmp_path):
    """The valid loss logged with a weight EMA is the loss of the averaged weights: with decay near 1
    (the average stays at the start) it equals the start's valid loss, step after step."""
    _, init, _ = stage1
    cfg = _fast_stage(tmp_path, "ema", init, 4, train__ema_decay=1 - 1e-9)
    cfg.train.lr = 0.05
    _losses(cfg)
    hist = checkpoint.load(tmp_path / "ema" / "checkpoint.pt")["history"]
    plain = _fast_stage(tmp_path, "plain", init, 4)
    plain.train.lr = 0.05
    _losses(plain)
    plain_hist = checkpoint.load(tmp_path / "plain" / "checkpoint.pt")["history"]
    assert hist[0]["valid_loss"] == pytest.approx(hist[1]["valid_loss"], rel=1e-5)
    assert plain_hist[1]["valid_loss"] != pytest.approx(hist[1]["valid_loss"], rel=1e-3)
    log = [json.loads(line) for line in (tmp_path / "ema" / "log.jsonl").read_text().splitlines()]
    assert any("valid_loss" in r for r in log)


def test_ema_switched_on_at_a_resume_starts_from_the_resumed_weights(stage1, tmp_path):
    _, init, _ = stage1
    cfg = _fast_stage(tmp_path, "late", init, 4)
    cfg.train.lr = 0.05
    _losses(cfg, max_steps=2)
    at2 = checkpoint.load(tmp_path / "late" / "checkpoint.pt")
    assert "ema" not in at2
    cfg.train.ema_decay = 1 - 1e-9                    # the average stays where it started
    _losses(cfg, resume=True)
    end = checkpoint.load(tmp_path / "late" / "checkpoint.pt")
    assert end["step"] == 4
    for key, value in end["ema"].items():
        torch.testing.assert_close(value, at2["model"][key], rtol=0, atol=1e-6, msg=key)
    assert any(not torch.equal(v, end["model"][k]) for k, v in end["ema"].items())


def test_the_discriminator_trains_and_only_with_a_fast_decoder(stage1, tmp_path):
    _, init, _ = stage1
    cfg = _fast_stage(tmp_path, "gan", init, 2, loss__adversarial_weight=1.0)
    _losses(cfg)
    state = checkpoint.load(tmp_path / "gan" / "checkpoint.pt")
    torch.manual_seed(cfg.train.seed)                  # what the run started its discriminator from
    fresh = VQVAE(cfg.model, 2).state_dict()
    disc = [k for k in state["model"] if k.startswith("fast_discriminator.")]
    assert any(not torch.equal(state["model"][k], fresh[k]) for k in disc)
    bad = tiny_v2_config()
    bad.model.fast.blocks = 0
    bad.model.loss.adversarial_weight = 1.0
    with pytest.raises(ValueError, match="adversarial_weight"):
        VQVAE(bad.model, 2)


def test_torchrun_two_processes_with_the_discriminator_and_ema(tmp_path):
    """Under DDP (gloo, 2 ranks) the discriminator steps outside DDP (its parameters ignored by it,
    its gradients averaged by hand): the run finishes and both ranks end with the same weights,
    discriminator included; the checkpoint holds the EMA and the discriminator's optimizer."""
    import os
    import subprocess
    from pathlib import Path

    from test_train import DDP_SPY, write_corpus

    cfg = harmonic_config(str(tmp_path / "run"), device="cpu")
    cfg.data.root = str(write_corpus(tmp_path / "corpus", seconds=1.0))
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.valid_fraction = cfg.data.test_fraction = 0.0
    cfg.data.voice_seconds = 0.3
    cfg.model.decoder.layers = 0  # no WaveNet: stage auto would leave its parameters without gradients
    cfg.model.loss.phase_weight, cfg.model.loss.adversarial_weight, cfg.train.ema_decay = 0.3, 1.0, 0.9
    cfg.train.steps = 4
    cfg.to_toml(tmp_path / "tiny.toml")
    (tmp_path / "spy.py").write_text(DDP_SPY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", str(tmp_path / "spy.py"), str(tmp_path),
           "train", "vqvae", str(tmp_path / "tiny.toml"), "--set", "train.valid_every=2",
           "--set", "train.checkpoint_every=2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert any(k.startswith("fast_discriminator.") for k in ranks[0])
    for key in ranks[0]:
        if not key.endswith("usage"):  # rank 0 alone resets the usage counter when it validates
            assert torch.equal(ranks[0][key], ranks[1][key]), key
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 4 and "ema" in state and "disc_optimizer" in state


# --------------------------------------------------------------------------- the source-filter decoder
def source_config(out_dir: str = "", **train):
    cfg = pitch_config(out_dir, **train)
    cfg.model.fast.excitation = "source"
    return cfg


@pytest.fixture(scope="module")
def source_codec():
    return pitch_codec(4, source_config())


def test_the_continuous_source_is_one_phase_continuous_waveform():
    """Token by token from `source_phase`, the source equals the harmonic sum over the held F0
    accumulated sample by sample from the start; a chunk started from its slice of the phases
    equals the whole's samples."""
    hop, sr = 64, 16000
    f0 = torch.tensor([[0.0, 110.0, 113.0, 117.5, 240.0, 0.0, 0.0, 180.0, 181.0, 90.0] * 3])
    wave = continuous_source(f0, source_phase(f0, sr, hop), sr, hop)
    reference = harmonic_source(f0.repeat_interleave(hop, 1).double(), sr).float()
    # harmonic_source's phase at sample n counts F0 up to n inclusive; shift by one sample to compare
    step = 2 * math.pi * f0.repeat_interleave(hop, 1) / sr
    reference = harmonic_sum(torch.cumsum(step.double(), -1) - step.double(),
                             harmonics_below_nyquist(f0.repeat_interleave(hop, 1), sr)).float()
    np.testing.assert_allclose(wave.numpy(), reference.numpy(), atol=2e-3)
    phases = source_phase(f0, sr, hop)
    chunk = continuous_source(f0[:, 7:19], phases[:, 7:19], sr, hop)
    np.testing.assert_allclose(chunk.numpy(), wave[:, 7 * hop:19 * hop].numpy(), atol=1e-5)
    assert wave[:, :hop].abs().max() == 0 and wave[:, hop:2 * hop].abs().max() > 0.1   # unvoiced: silent


def test_a_source_decoder_with_a_silent_head_outputs_the_filtered_source(source_codec):
    """Head frames ~0 and a constant gain: the output is gain x the source itself (the STFT / iSTFT
    pair is exact), so its harmonics are coherent: periodic at the decoded F0."""
    model = source_codec.model
    fd = model.fast_decoder
    saved = {k: v.clone() for k, v in fd.state_dict().items()}
    try:
        with torch.no_grad():
            fd.head.weight.zero_()
            fd.head.bias.fill_(-30.0)                       # magnitude e^-30: nothing of the head's own
            fd.source_gain.weight.zero_()
            fd.source_gain.bias.zero_()                     # gain e^SOURCE_GAIN_OFFSET everywhere
            T, f0 = 80, 125.0
            feats = pitch_features(torch.full((1, T), f0), 1, T)
            codes = torch.randint(0, 16, (1, T), generator=torch.Generator().manual_seed(1))
            out = model.decode_fast(codes, torch.zeros(1, 4), feats)[0]
        hop = model.hop
        f0s = torch.full((1, T), f0)
        expected = math.exp(SOURCE_GAIN_OFFSET) * continuous_source(f0s, source_phase(f0s, SR, hop), SR, hop)[0]
        inner = slice(fd.cfg.n_fft, T * hop - fd.cfg.n_fft)       # away from the zero-padded ends
        np.testing.assert_allclose(out[inner].numpy(), expected[inner].numpy(), atol=1e-4)
        period = int(round(SR / f0))
        a, b = out[inner][:-period], out[inner][period:]
        assert float(torch.dot(a, b) / torch.sqrt(torch.dot(a, a) * torch.dot(b, b))) > 0.99
    finally:
        fd.load_state_dict(saved)


def test_chunked_decode_equals_whole_with_the_source(source_codec):
    """The chunks get the whole sequence's source phases; started from 0 in each chunk instead, the
    output would differ (what the test would catch)."""
    tf = source_codec.encode_utterance(speechlike(2.0, 170, 4), SR)
    dec = source_codec.decoder("fast")
    feats = dec.pitch_input(torch.as_tensor(tf.tokens), tf.pitch, None, tf.f0_median)
    v = voice_codec.from_bytes(tf.voice)
    tokens = torch.as_tensor(tf.tokens)
    whole = dec.decode_chunks(tokens, v, pitch_features=feats, chunk_tokens=10 ** 6)
    for chunk in (37, 97):
        np.testing.assert_allclose(dec.decode_chunks(tokens, v, pitch_features=feats, chunk_tokens=chunk),
                                   whole, atol=1e-5)
    lo = 40
    with torch.no_grad():
        restarted = source_codec.model.decode_fast(tokens[lo:][None], v.view(1, -1), feats[..., lo:])[0].numpy()
    ctx = source_codec.model.fast_decoder.context * source_codec.model.hop
    assert np.abs(restarted[ctx:2 * ctx] - whole[lo * source_codec.model.hop + ctx:lo * source_codec.model.hop + 2 * ctx]).max() > 1e-4


def test_the_source_decoder_trains_and_refuses_the_phase_losses(tmp_path):
    """Two training steps with finite losses; the spectral loss reaches the source's gain head."""
    bad = source_config()
    bad.model.loss.phase_weight = 0.5
    with pytest.raises(ValueError, match="phase_weight"):
        VQVAE(bad.model, 2)
    cfg = source_config(str(tmp_path / "run"))
    cfg.train.steps = cfg.train.checkpoint_every = cfg.train.valid_every = 2
    cfg.data.voice_seconds = 0.3
    logged = _losses(cfg)
    assert len(logged) == 2 and all(math.isfinite(s["loss"]) for s in logged)
    from_checkpoint(checkpoint.load(tmp_path / "run" / "checkpoint.pt"))  # loads strictly
    model = VQVAE(cfg.model, len(SPEAKERS))
    T = 40
    wav = torch.from_numpy(speechlike(T * model.hop / SR, 150, 5)[None].astype(np.float32))[:, :T * model.hop]
    out = model._fast_losses(torch.randn(1, cfg.model.encoder.dim, T), torch.zeros(1, 4),
                             pitch_features(torch.full((1, T), 150.0), 1, T), wav)
    out["loss"].backward()
    assert model.fast_decoder.source_gain.weight.grad.abs().sum() > 0


def test_a_new_source_decoder_trains_on_an_exported_tokenizer(stage1, tmp_path):
    """`train export --tokenizer-only` drops the fast decoder; a stage-'fast' run with the source
    decoder starts from it, and its tokens (hence the model id) are the tokenizer's."""
    from click.testing import CliRunner

    from vqcodec.cli import cli

    _, path, _ = stage1
    tok = tmp_path / "tok.pt"
    result = CliRunner().invoke(cli, ["train", "export", path, str(tok), "--tokenizer-only"])
    assert result.exit_code == 0, result.output
    state = checkpoint.load(tok)
    assert not [k for k in state["model"] if k.startswith("fast_decoder.")] and "history" not in state
    assert [k for k in state["model"] if k.startswith("encoder.")]
    cfg = _fast_stage(tmp_path, "src", str(tok), 2)
    cfg.model.fast.excitation = "source"
    cfg.model.loss.phase_weight = 0.0
    logged = _losses(cfg)
    assert len(logged) == 2 and all(math.isfinite(s["loss"]) for s in logged)
    new = from_checkpoint(checkpoint.load(tmp_path / "src" / "checkpoint.pt"))
    assert new.model_id == from_checkpoint(checkpoint.load(path)).model_id
