"""Evaluation: metric wrappers, alignment, classical baselines, the report and the eval CLI."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest

from vqcodec.audio import load, save
from vqcodec.errors import MissingToolError
from vqcodec.evaluation import baselines, metrics, report

SR = 16000


def _harmonic(seconds=2.0, f0=120.0, seed=0):
    """Speech-like fallback: a gliding harmonic tone with syllable-rate amplitude modulation."""
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) ** 0.5
    rng = np.random.default_rng(seed)
    return (0.3 * x * env / 3 + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def _speech(tmp, text, voice="en-us", name="clip"):
    if shutil.which("espeak-ng"):
        path = tmp / f"{name}_22k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return load(path, SR)
    return _harmonic()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _speech(tmp_path_factory.mktemp("speech"), "The quick brown fox jumps over the lazy dog.")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, clip):
    """DATA_DIR/SPEAKER/*.wav with two known speakers and one the fake model does not know."""
    root = tmp_path_factory.mktemp("data")
    tmp = tmp_path_factory.mktemp("raw")
    texts = {"alice": ["Open the window please.", "It is raining again today."],
             "bob": ["The train leaves at noon."], "carol": ["Where did you put my keys?"]}
    voices = {"alice": "en-us+f2", "bob": "en-us+m3", "carol": "en-gb"}
    for spk, lines in texts.items():
        for i, text in enumerate(lines):
            save(root / spk / f"{spk}_{i}.wav", _speech(tmp, text, voices[spk], f"{spk}{i}"), SR)
    return root


class FakeCodec:
    """Identity-ish codec: 8-bit mu-law tokens at 16 kHz; decode adds a 3 ms delay, declared."""
    sample_rate = 16000
    bitrate = 2250.0
    speakers = ["alice", "bob"]
    delay_samples = 48

    def __init__(self):
        self.calls = []
        self.temperatures = []

    def encode(self, wav, sample_rate):
        assert sample_rate == 16000
        mu = 255
        y = np.sign(wav) * np.log1p(mu * np.abs(np.clip(wav, -1, 1))) / np.log1p(mu)
        return np.round((y + 1) / 2 * mu).astype(np.int64)

    def decode(self, tokens, speaker=None, temperature=1.0, seed=0):
        self.calls.append(speaker)
        self.temperatures.append(temperature)
        mu = 255
        y = 2 * tokens / mu - 1
        x = np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu
        return np.concatenate([np.zeros(48), x]).astype(np.float32)


# --------------------------------------------------------------------------- metrics
def test_metrics_identical_and_noisy(clip):
    assert metrics.stoi(clip, clip, SR) > 0.99
    assert metrics.pesq_wb(clip, clip, SR) > 4.4
    assert metrics.mel_distance(clip, clip, SR) == 0.0
    noisy = clip + 0.05 * np.random.default_rng(0).standard_normal(len(clip)).astype(np.float32)
    assert metrics.stoi(clip, noisy, SR) < 0.97
    assert metrics.pesq_wb(clip, noisy, SR) < 2.5
    assert metrics.mel_distance(clip, noisy, SR) > 0.2


def test_metrics_missing_package(monkeypatch, clip):
    import sys
    monkeypatch.setitem(sys.modules, "pesq", None)
    monkeypatch.setitem(sys.modules, "pystoi", None)
    with pytest.raises(MissingToolError, match="pip install pesq"):
        metrics.pesq_wb(clip, clip)
    with pytest.raises(MissingToolError, match="pip install pystoi"):
        metrics.stoi(clip, clip, SR)


@pytest.mark.parametrize("delay", [0, 1, 160, 400, -250])
def test_delay_estimates_and_shift(clip, delay):
    deg = 0.5 * clip
    deg = np.concatenate([np.zeros(delay, np.float32), deg]) if delay >= 0 else deg[-delay:]
    assert metrics.estimate_delay(clip, deg, SR, max_lag_s=0.05) == delay
    assert abs(metrics.envelope_delay(clip, deg, SR, max_lag_s=0.05) - delay) <= 8
    out = metrics.shift(deg, delay, length=len(clip))
    assert len(out) == len(clip)
    np.testing.assert_allclose(out[500:1500], 0.5 * clip[500:1500], atol=1e-6)
    # delay compensation is what keeps STOI up
    assert metrics.stoi(clip, out, SR) > 0.99


# --------------------------------------------------------------------------- baselines
NOMINAL = {"codec2-3200": 3200, "codec2-1200": 1200, "codec2-700C": 700, "opus-6k": 6000, "opus-8k": 8000}


@pytest.mark.parametrize("name", list(NOMINAL))
def test_baseline_runs(clip, name):
    reason = baselines.available(name)
    if reason:
        pytest.skip(reason)
    system = baselines.get(name)
    out, bps = system(clip, SR)
    assert out.dtype == np.float32 and len(out) == len(clip)
    assert bps == pytest.approx(NOMINAL[name], rel=0.25)
    out = metrics.shift(out, system.delay_samples, length=len(clip))
    assert metrics.stoi(clip, out, SR) > 0.6


def test_baseline_delay_measured_once_per_system(clip):
    """codec2's delay is one number per mode, measured on probe signals: ~19 ms for 3200 (its
    10 ms frames, analysis window and the 16 <-> 8 kHz resampling), the same on speech; opusdec
    drops Opus's pre-skip, so opus is ~0. On speech, no other shift scores a clearly better STOI."""
    for name, lo_ms, hi_ms in (("codec2-3200", 12, 30), ("opus-6k", -1, 1)):
        system = baselines.get(name)
        if baselines.available(name):
            pytest.skip(baselines.available(name))
        assert lo_ms <= system.delay_ms <= hi_ms
        assert system.delay_samples == system.delay_samples  # cached, not re-measured
        out, _ = system(clip, SR)
        at = metrics.stoi(clip, metrics.shift(out, system.delay_samples, length=len(clip)), SR)
        best = max(metrics.stoi(clip, metrics.shift(out, lag, length=len(clip)), SR) for lag in range(-160, 640, 40))
        assert at >= best - 0.01
        comp, _ = baselines.codec2(clip, SR, "3200") if name.startswith("codec2") else baselines.opus(clip, SR, 6)
        np.testing.assert_array_equal(comp, metrics.shift(out, system.delay_samples, length=len(clip)))


def test_evaluate_scores_undeclared_systems_at_lag_zero(clip, tmp_path):
    """Output that is exactly the input (delayed 0 ms) scores lag 0 and STOI 1.0; a system that
    declares no delay is never shifted, even when waveform cross-correlation would pick another lag
    (here a louder echo 2.5 ms late: the old per-file alignment shifted by 2.5 ms)."""
    path = tmp_path / "data" / "clip.wav"
    save(path, clip, SR)
    ref = load(path, SR)

    def identity(wav, sr):
        return wav.copy(), 1000.0

    def echo(wav, sr):
        return 0.3 * wav + 0.7 * metrics.shift(wav, -40, length=len(wav)), 1000.0

    rep = report.evaluate([path], {"identity": identity, "echo": echo}, tmp_path / "rep", progress=False,
                          echo=lambda s: None, spectrogram=False)
    assert metrics.estimate_delay(ref, echo(ref, SR)[0], SR) == 40  # what per-file alignment would pick
    ident = rep["systems"]["identity"]
    assert ident["lag_ms"] == 0.0 and ident["per_file"][0]["lag_ms"] == 0.0
    assert ident["mean"]["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert ident["mean"]["mel_distance"] == 0.0
    assert rep["systems"]["echo"]["lag_ms"] == 0.0


def test_evaluate_removes_declared_delay(clip, tmp_path):
    """A system declaring delay_samples is shifted by exactly that, on every file; codec2's lag in
    the table is its measured delay."""
    path = tmp_path / "clip.wav"
    save(path, clip, SR)

    class Late:
        delay_samples = 160

        def __call__(self, wav, sr):
            return np.concatenate([np.zeros(160, np.float32), wav]), 1000.0

    systems = {"late": Late()}
    if not baselines.available("codec2-3200"):
        systems["codec2-3200"] = baselines.get("codec2-3200")
    printed = []
    rep = report.evaluate([path, path], systems, tmp_path / "rep", progress=False, echo=printed.append,
                          spectrogram=False)
    late = rep["systems"]["late"]
    assert [r["lag_ms"] for r in late["per_file"]] == [10.0, 10.0]
    assert late["mean"]["stoi"] > 0.999
    if "codec2-3200" in systems:
        c2 = rep["systems"]["codec2-3200"]
        assert c2["lag_ms"] == pytest.approx(baselines.get("codec2-3200").delay_ms, abs=0.01)
        assert {r["lag_ms"] for r in c2["per_file"]} == {c2["lag_ms"]}
    assert "lag ms" in printed[0] and "10.0" in printed[0]


def test_baseline_resamples_input(clip):
    if baselines.available("codec2-3200"):
        pytest.skip("codec2 not installed")
    from vqcodec.audio import resample

    x = resample(clip, SR, 22050)
    out, _ = baselines.codec2(x, 22050, "3200")
    assert abs(len(out) - len(clip)) <= 2


def test_baseline_missing_tool(monkeypatch, clip):
    monkeypatch.setattr(baselines.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="apt-get install codec2"):
        baselines.get("codec2-1200")(clip, SR)
    with pytest.raises(MissingToolError, match="apt-get install opus-tools"):
        baselines.get("OPUS-6K")(clip, SR)
    assert "opus-tools" in baselines.available("opus-8k")


def test_unknown_baseline():
    from vqcodec.errors import VqcodecError
    with pytest.raises(VqcodecError, match="unknown baseline 'mp3-8k'.*codec2-3200"):
        baselines.get("mp3-8k")


# --------------------------------------------------------------------------- report
def test_collect_files_round_robin(data_dir):
    files = report.collect_files(data_dir)
    assert [s for _, s in files] == ["alice", "bob", "carol", "alice"]
    assert [s for _, s in report.collect_files(data_dir, limit=2)] == ["alice", "bob"]


def _missing(wav, sr):
    raise MissingToolError("frobnicator not found: install it with `apt-get install frob`")


def test_evaluate_writes_report(data_dir, tmp_path):
    files = report.collect_files(data_dir)
    fake = FakeCodec()
    notes: list[str] = []
    systems = {"vqcodec (fake)": report.CodecSystem(fake, {str(p): s for p, s in files}, notes),
               "broken": _missing}
    if not baselines.available("codec2-3200"):
        systems["codec2-3200"] = baselines.get("codec2-3200")
    printed = []
    rep = report.evaluate([p for p, _ in files], systems, tmp_path / "rep", notes=notes,
                          progress=False, echo=printed.append)

    # the fake decodes each file with its own speaker, and carol (unknown) with the first one
    assert fake.calls == ["alice", "bob", "alice", "alice"]
    assert any("'carol' is unknown" in n and "'alice'" in n for n in rep["notes"])

    for f in ("report.json", "report.csv", "spectrograms.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    fake_row = saved["systems"]["vqcodec (fake)"]
    assert fake_row["num_files"] == 4 and fake_row["skipped"] is None
    assert fake_row["mean"]["bitrate_bps"] == 2250.0
    assert fake_row["mean"]["stoi"] > 0.95 and fake_row["mean"]["pesq_wb"] > 3.0
    assert all(r["lag_ms"] == 3.0 for r in fake_row["per_file"])  # the 48-sample delay was found
    assert saved["systems"]["broken"]["skipped"].startswith("frobnicator not found")
    assert any(n.startswith("skipped broken: frobnicator") for n in saved["notes"])
    if "codec2-3200" in systems:
        c2 = saved["systems"]["codec2-3200"]["mean"]
        assert c2["stoi"] < fake_row["mean"]["stoi"]
        assert c2["bitrate_bps"] == pytest.approx(3200, rel=0.1)

    with open(tmp_path / "rep" / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["system"] for r in rows} >= {"vqcodec (fake)"}
    assert sum(r["file"] == "MEAN" for r in rows) == len(systems) - 1  # skipped system has none
    table = printed[0]
    assert "vqcodec (fake)" in table and "skipped" in table and "PESQ-WB" in table


def test_speaker_similarity_and_conversion(data_dir, tmp_path):
    pytest.importorskip("resemblyzer")
    pytest.importorskip("webrtcvad")
    files = report.collect_files(data_dir)
    by = {}
    for p, s in files:
        by.setdefault(s, []).append(p)
    a0, a1 = (load(p) for p in by["alice"])
    assert metrics.speaker_similarity(a0, a0) == pytest.approx(1.0, abs=1e-4)

    # "conversion" that returns an alice utterance: closer to alice than to the source
    def convert(wav, sr, target):
        return a1

    rep = report.evaluate_conversion([(by["bob"][0], "bob"), (by["carol"][0], "carol")], convert,
                                      "alice", by["alice"], by, tmp_path / "conv", progress=False,
                                      echo=lambda s: None)
    assert (tmp_path / "conv" / "convert.json").exists() and (tmp_path / "conv" / "convert.csv").exists()
    assert rep["mean"]["sim_target"] > rep["mean"]["sim_source"]
    assert rep["mean"]["sim_target"] > rep["mean"]["sim_original_target"]
    assert rep["fraction_closer_to_target"] == 1.0


# --------------------------------------------------------------------------- CLI
def test_cli_eval(data_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from vqcodec.cli import cli
    from vqcodec.cli import evaluate as cli_eval

    runner = CliRunner()
    res = runner.invoke(cli, ["eval", "--no-model", str(data_dir), "--baselines", "none", "-o", str(tmp_path)])
    assert res.exit_code == 1 and "nothing to evaluate" in res.output

    res = runner.invoke(cli, ["eval", "--no-model", str(data_dir), "--baselines", "mp3", "-o", str(tmp_path)])
    assert res.exit_code == 1 and "unknown baseline" in res.output

    monkeypatch.setattr(cli_eval, "_load_codec", lambda model: FakeCodec())
    res = runner.invoke(cli, ["eval", "-m", "fake", str(data_dir), "--baselines", "codec2-3200",
                              "--limit", "3", "-q", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["num_files"] == 3
    assert set(saved["systems"]) == {"vqcodec (fake)", "codec2-3200"}
    assert "vqcodec (fake)" in res.output

    fake = FakeCodec()
    monkeypatch.setattr(cli_eval, "_load_codec", lambda model: fake)
    res = runner.invoke(cli, ["eval", "-m", "fake", str(data_dir), "--baselines", "none", "--limit", "2",
                              "--temperature", "0.7", "-q", "-o", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert fake.temperatures == [0.7, 0.7]
    assert set(json.loads((tmp_path / "t" / "report.json").read_text())["systems"]) == {"vqcodec (fake, T=0.7)"}

    # files of a speaker the model does not know (carol) decode with --speaker; a bad --speaker is refused
    fake = FakeCodec()
    monkeypatch.setattr(cli_eval, "_load_codec", lambda model: fake)
    res = runner.invoke(cli, ["eval", "-m", "fake", str(data_dir), "--baselines", "none", "--speaker", "bob",
                              "-q", "-o", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert sorted(fake.calls) == ["alice", "alice", "bob", "bob"]  # carol's file -> bob
    assert "decoded with the chosen voice 'bob'" in res.output
    res = runner.invoke(cli, ["eval", "-m", "fake", str(data_dir), "--baselines", "none", "--speaker", "dave",
                              "-q", "-o", str(tmp_path / "d")])
    assert res.exit_code == 1 and "no speaker 'dave'" in res.output and not (tmp_path / "d").exists()
