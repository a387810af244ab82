"""Issue 20: the speaker-perturbed analysis input (formant / pitch / EQ of the log-mel encoder's
input, a clean target), the consistency loss, the d-vector voice input, the parallel synthetic set
and eval-convert's checks that use no speaker encoder."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from test_convert_like import _fake_embedding
from test_v2 import SPEAKERS, tiny_v2_config, varied
from vqcodec import checkpoint
from vqcodec.cli import cli
from vqcodec.evaluation import conversion, metrics
from vqcodec.models.vqvae import VQVAE
from vqcodec.nn.perturb import SpeakerPerturbation, perturb_log_spectrum, random_eq, spectral_envelope
from vqcodec.nn.spectral import stft_magnitude
from vqcodec.tasks import VQVAETask

SR = 16000
BIN_HZ = SR / 1024


def log_spectrum(x: np.ndarray) -> torch.Tensor:
    return torch.log(stft_magnitude(torch.tensor(x, dtype=torch.float32)[None], 1024, 256) + 1e-5)


def resonant_noise(centre: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """White noise through one resonance at `centre` Hz: a smooth envelope with one peak, no harmonics."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(int(seconds * SR)))
    f = np.fft.rfftfreq(int(seconds * SR), 1 / SR)
    spec *= 1 / (1 + ((f - centre) / 150) ** 2) + 0.02
    return (np.fft.irfft(spec) * 0.05).astype(np.float32)


def flat_harmonics(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.02 * sum(np.sin(2 * np.pi * f0 * h * t) for h in range(1, int(7000 / f0)))).astype(np.float32)


def envelope_peak_hz(log_mag: torch.Tensor) -> float:
    env = spectral_envelope(log_mag, 26)[0].mean(-1).numpy()
    k = int(np.argmax(env[5:400])) + 5
    a, b, c = env[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * BIN_HZ


def harmonic_hz(log_mag: torch.Tensor, near: float, half_width: float = 50.0) -> float:
    """Position of the highest spectral peak within `half_width` Hz of `near` (parabolic interpolation)."""
    fine = log_mag[0].mean(-1).numpy()
    lo = int((near - half_width) / BIN_HZ)
    k = lo + int(np.argmax(fine[lo:int((near + half_width) / BIN_HZ) + 1]))
    a, b, c = fine[k - 1:k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * BIN_HZ


# ----------------------------------------------------------------------------- the perturbation
@pytest.mark.parametrize("ratio", [0.75, 1.25, 1.4])
def test_formant_shift_moves_the_envelope_and_leaves_pitch_alone(ratio):
    x = log_spectrum(resonant_noise(1000.0))
    before = envelope_peak_hz(x)
    assert abs(before - 1000) < 40
    out = perturb_log_spectrum(x, torch.tensor([ratio]), torch.tensor([1.0]), None, 26)
    assert envelope_peak_hz(out) == pytest.approx(before * ratio, rel=0.04)
    h = log_spectrum(flat_harmonics(150.0))  # formant-only shift: the harmonics stay where they were
    assert harmonic_hz(perturb_log_spectrum(h, torch.tensor([ratio]), torch.tensor([1.0]), None, 26), 1500) \
        == pytest.approx(harmonic_hz(h, 1500), rel=0.01)


@pytest.mark.parametrize("ratio", [0.7, 1.3, 1.5])
def test_pitch_shift_moves_the_harmonics_and_leaves_the_envelope_alone(ratio):
    h = log_spectrum(flat_harmonics(150.0))
    out = perturb_log_spectrum(h, torch.tensor([1.0]), torch.tensor([ratio]), None, 26)
    for harmonic in (5, 10):  # 750 and 1500 Hz move to ratio x
        assert harmonic_hz(out, 150 * harmonic * ratio) == pytest.approx(harmonic_hz(h, 150 * harmonic) * ratio,
                                                                        rel=0.015)
    x = log_spectrum(resonant_noise(1000.0))
    assert envelope_peak_hz(perturb_log_spectrum(x, torch.tensor([1.0]), torch.tensor([ratio]), None, 26)) \
        == pytest.approx(envelope_peak_hz(x), rel=0.04)


def test_eq_adds_its_curve_in_db_and_factors_follow_the_torch_rng():
    x = log_spectrum(resonant_noise(1000.0))
    eq = random_eq(1, x.shape[1], SR, 12.0)
    assert eq.abs().max() > 1 and eq.abs().max() < 12 * 4 + 6
    out = perturb_log_spectrum(x, torch.tensor([1.0]), torch.tensor([1.0]), eq, 26)
    gain_db = (out - x)[0].mean(-1) * 20 / np.log(10)
    torch.testing.assert_close(gain_db, eq[0], atol=1e-3, rtol=1e-3)
    p = SpeakerPerturbation(0.4, 0.5, 12.0, 4, SR)
    torch.manual_seed(3)
    a = p.draw(4, 513)
    torch.manual_seed(3)
    b = p.draw(4, 513)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert ((a["formant"] >= 1 / 1.4 - 1e-6) & (a["formant"] <= 1.4 + 1e-6)).all()
    assert ((a["pitch"] >= 1 / 1.5 - 1e-6) & (a["pitch"] <= 1.5 + 1e-6)).all()
    assert not SpeakerPerturbation(0, 0, 0, 4, SR).enabled


# ----------------------------------------------------------------------------- training with it
def perturbed_config(consistency: float = 0.5, dvector: bool = False):
    cfg = tiny_v2_config("", device="cpu")
    m = cfg.model
    m.encoder.input, m.encoder.num_strided, m.encoder.stride, m.encoder.widths = "logmel", 4, 4, []
    m.fast.n_fft = 1024
    inv = m.invariance
    inv.formant_shift, inv.pitch_shift, inv.eq_db, inv.consistency_weight = 0.4, 0.5, 12.0, consistency
    if dvector:
        m.voice.input = "dvector"
    cfg.data.window_seconds, cfg.data.voice_seconds = 0.256, 0.3
    return cfg


def items():
    return [(varied(1.0, s), s % 2) for s in range(4)]


def test_training_step_perturbs_the_encoder_input_and_keeps_the_clean_target(monkeypatch):
    cfg = perturbed_config()
    torch.manual_seed(0)
    model = VQVAE(cfg.model, len(SPEAKERS)).train()
    wav, spk, ref = VQVAETask(cfg, items(), None, SPEAKERS).train_batch(0, 0, 1)
    clean = wav.clone()
    targets = []
    real_loss = model.spectral_loss.forward
    monkeypatch.setattr(model.spectral_loss, "forward",
                        lambda p, t, *frames: targets.append(t) or real_loss(p, t, *frames))
    out = model(wav, spk, ref)
    assert {"loss", "consistency"} <= set(out) and float(out["consistency"].detach()) > 0
    assert targets and targets[0] is wav and torch.equal(wav, clean)  # the decoder rebuilds the clean crop
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    with torch.no_grad():  # training: the encoder sees a perturbed copy; evaluation: the crop itself
        trained = model._encode_perturbed(wav)
        model.eval()
        assert (trained - model._encode_perturbed(wav)).abs().max() > 1e-4
        torch.testing.assert_close(model._encode_perturbed(wav), model.encoder(wav), rtol=0, atol=0)


def test_perturbation_settings_are_checked():
    cfg = tiny_v2_config()  # waveform encoder
    cfg.model.invariance.formant_shift = 0.3
    with pytest.raises(ValueError, match="logmel"):
        VQVAE(cfg.model, 2)
    cfg = perturbed_config()
    cfg.model.invariance.formant_shift = cfg.model.invariance.pitch_shift = cfg.model.invariance.eq_db = 0
    with pytest.raises(ValueError, match="consistency_weight"):
        VQVAE(cfg.model, 2)
    cfg = perturbed_config()
    cfg.model.invariance.eq_db = -1
    with pytest.raises(ValueError, match=">= 0"):
        VQVAE(cfg.model, 2)


def test_perturbation_is_training_only_and_keeps_the_model_id():
    plain, perturbed = perturbed_config(), perturbed_config()
    plain.model.invariance.formant_shift = plain.model.invariance.pitch_shift = 0
    plain.model.invariance.eq_db = plain.model.invariance.consistency_weight = 0
    torch.manual_seed(0)
    state = VQVAE(plain.model, 2).state_dict()
    assert checkpoint.model_id(state, plain.to_dict()["model"]) == checkpoint.model_id(state, perturbed.to_dict()["model"])


# ----------------------------------------------------------------------------- the d-vector voice path
def test_speaker_embedder_equals_resemblyzer():
    pytest.importorskip("resemblyzer")
    pytest.importorskip("webrtcvad")
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

    from vqcodec.nn.dvector import SpeakerEmbedder

    wav = varied(2.0, 5, level=0.3)
    ours = SpeakerEmbedder()
    ours.load_pretrained()
    mel = ours.mel(torch.from_numpy(wav)[None])[0].numpy()
    theirs = wav_to_mel_spectrogram(wav)
    assert mel.shape == theirs.shape
    np.testing.assert_allclose(mel, theirs, rtol=1e-4, atol=1e-6 * np.abs(theirs).max())
    frames = torch.from_numpy(theirs[:160])[None]
    np.testing.assert_allclose(ours.embed_frames(frames).numpy(),
                               VoiceEncoder("cpu", verbose=False)(frames).detach().numpy(), atol=1e-5)


def test_dvector_voice_model_trains_on_the_other_utterance_and_carries_the_weights(tmp_path):
    pytest.importorskip("resemblyzer")
    cfg = perturbed_config(consistency=0.0, dvector=True)
    cfg.model.invariance.voice_speaker_weight = 0.1  # (the decoder's voice input starts at identity)
    cfg.train.out_dir = str(tmp_path)
    task = VQVAETask(cfg, items(), None, SPEAKERS)
    model = task.build_model().train()
    wav, spk, ref = task.train_batch(0, 0, 1)
    assert ref.shape == (len(wav), 256)
    torch.testing.assert_close(ref.norm(dim=1), torch.ones(len(wav)), atol=1e-4, rtol=0)
    table = task.dvectors("train")
    assert all(any(torch.equal(r, torch.from_numpy(table[j])) for j in range(len(table))
                   if items()[j][1] == int(s)) for r, s in zip(ref, spk))  # a d-vector of the same speaker
    out = model(wav, spk, ref)
    out["loss"].backward()
    assert all(p.grad is None for p in model.voice_encoder.embedder.parameters())  # frozen
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.voice_encoder.proj.parameters())
    # the pretrained weights travel in the state dict: a model rebuilt from it embeds the same way
    again = VQVAE(cfg.model, len(SPEAKERS))
    again.load_state_dict(model.state_dict())
    x = torch.from_numpy(varied(1.0, 9))[None]
    torch.testing.assert_close(again.eval().voice(x), model.eval().voice(x))
    assert any(k.startswith("voice_encoder.embedder.lstm.") for k in model.state_dict())
    assert (tmp_path / "cache").is_dir()  # the d-vector table is cached


# ----------------------------------------------------------------------------- eval-convert's checks
def test_dtw_mcd_and_classifier_and_swap_and_f0():
    a = varied(1.0, 1, level=0.3)
    slow = np.repeat(a, 2)[::2]
    assert conversion.dtw_mcd(a, a) == pytest.approx(0.0, abs=1e-6)
    padded = np.concatenate([np.zeros(4000, np.float32), a])  # leading silence is not counted
    assert conversion.dtw_mcd(a, padded) < 0.5 < conversion.dtw_mcd(a, varied(1.0, 2, level=0.3))
    assert conversion.dtw_mcd(a, slow) < 0.5
    voices = {"low": [flat_harmonics(110.0, 0.5) * (1 + 0.1 * i) for i in range(3)],
              "noise": [resonant_noise(3000.0, 0.5, seed=i) for i in range(3)]}
    clf = conversion.SpeakerClassifier(voices)
    assert clf.name(flat_harmonics(115.0, 0.6)) == "low" and clf.name(resonant_noise(3000.0, 0.6, 9)) == "noise"
    assert conversion.swap_sensitivity(a, a, slow) == pytest.approx(0.0, abs=1e-9)
    assert conversion.swap_sensitivity(varied(1.0, 4), a, varied(1.0, 1, level=0.31)) > 1
    assert conversion.median_f0(flat_harmonics(200.0)) == pytest.approx(200, rel=0.02)
    assert conversion.semitones(200.0, 100.0) == pytest.approx(12.0) and conversion.semitones(None, 1.0) is None


def test_eval_convert_reports_parallel_classifier_swap_and_f0(tmp_path, monkeypatch):
    from test_v2 import make_model

    monkeypatch.setattr(metrics, "speaker_embedding", _fake_embedding)
    monkeypatch.setattr(metrics, "_voice_encoder", lambda: None)
    cfg, model = make_model()
    path = tmp_path / "v2.pt"
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(),
                           "meta": {"speakers": SPEAKERS, "voices": {"us1": [10, 200, 30, 128],
                                                                     "us2": [250, 5, 128, 60]}},
                           "model": model.state_dict()})
    data = tmp_path / "parallel"
    for v, (voice_seed, level) in {"ann": (0, 0.3), "bob": (40, 0.5), "cat": (80, 0.2)}.items():
        (data / v).mkdir(parents=True)
        for i in range(3):  # the same "sentence" i in every voice's folder under the same name
            sf.write(data / v / f"p{i:05d}.wav", varied(1.2, voice_seed + i, level=level), SR)
    out = tmp_path / "report"
    r = CliRunner().invoke(cli, ["eval-convert", str(data), "--like-refs", str(data), "-m", str(path),
                                 "--ref-seconds", "0.5", "--no-align", "--listen", "0", "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "convert.json").read_text())
    assert rep["num_pairs"] == 3 * 3 * 2
    # p00000 is every voice's reference: only sentences 1 and 2 have a reading outside the reference
    assert rep["parallel_pairs"] == 3 * 2 * 2
    scored = [row for row in rep["per_file"] if "parallel_win" in row]
    assert all(not row["file"].endswith("p00000.wav") for row in scored)
    assert all(row["mcd_target"] > 0 and row["mcd_source"] > 0 for row in scored)
    assert 0 <= rep["parallel_win_rate"] <= 1 and 0 <= rep["classifier_target_rate"] <= 1
    assert rep["classifier"]["voices"] == ["ann", "bob", "cat"]
    assert all(row["classifier_voice"] in ("ann", "bob", "cat") and row["swap_sensitivity"] >= 0
               for row in rep["per_file"])
    assert "checks without a speaker encoder" in r.output and "mcd tgt" in r.output


def test_corpus_synth_parallel_reads_the_same_sentences(tmp_path):
    import shutil

    if not (shutil.which("espeak-ng") and shutil.which("mbrola")):
        pytest.skip("espeak-ng / mbrola not installed")
    from vqcodec.data import synth

    try:
        synth.check_tools(["us1", "us2"])
    except Exception as e:  # noqa: BLE001 - a voice package missing
        pytest.skip(str(e))
    r = CliRunner().invoke(cli, ["corpus", "synth", str(tmp_path / "par"), "--parallel", "2", "--text", "heldout",
                                 "--voices", "us1,us2", "-j", "1"])
    assert r.exit_code == 0, r.output
    names = {v: sorted(p.name for p in (tmp_path / "par" / v).glob("*.wav")) for v in ("us1", "us2")}
    assert names["us1"] == names["us2"] == ["p00000.wav", "p00001.wav"]
    for n in ("p00000", "p00001"):
        assert (tmp_path / "par" / "us1" / f"{n}.txt").read_text() == (tmp_path / "par" / "us2" / f"{n}.txt").read_text()


def test_pseudo_speakers_are_warped_copies_with_their_own_labels(tmp_path):
    from vqcodec.tasks import add_pseudo_speakers

    its = items()
    out, names, warps = add_pseudo_speakers(its, list(SPEAKERS), [0.8, 1.25], 1)
    assert names == SPEAKERS + ["us1@0.8", "us2@0.8", "us1@1.25", "us2@1.25"]
    assert len(out) == len(its) + 4 and list(warps[:len(its)]) == [1.0] * len(its)
    assert sorted(warps[len(its):]) == [0.8, 0.8, 1.25, 1.25]
    assert all(out[len(its) + k][0] is its[[0, 1, 0, 1][k]][0] for k in range(4))  # first utterance of each
    cfg = perturbed_config(consistency=0.0)
    cfg.data.pseudo_speakers, cfg.data.pseudo_utterances = [0.8], 1
    task = VQVAETask(cfg, its, None, SPEAKERS)
    assert task.speakers == SPEAKERS + ["us1@0.8", "us2@0.8"] and task.num_real_speakers == 2
    seen_pseudo = False
    for step in range(6):
        wav, spk, ref = task.train_batch(step, 0, 1)
        rng = np.random.default_rng([cfg.train.seed, step, 0])
        from vqcodec.tasks import random_crops

        crops, labels, picks = random_crops(task.train_items, rng, cfg.train.batch_size, task.window,
                                            return_picks=True)
        plain = torch.from_numpy(crops.astype(np.float32) / 32767.0 if crops.dtype == np.int16 else crops)
        plain = plain * torch.from_numpy(task._gains["train"][picks]).float()[:, None]
        for b, label in enumerate(labels):
            if label >= 2:  # a pseudo-speaker's crop is the warped crop of its real utterance
                seen_pseudo = True
                assert (wav[b] - plain[b]).abs().max() > 1e-3
            else:
                torch.testing.assert_close(wav[b], plain[b])
    assert seen_pseudo
    with pytest.raises(Exception, match="warp factors"):
        add_pseudo_speakers(its, list(SPEAKERS), [1.0], 1)
