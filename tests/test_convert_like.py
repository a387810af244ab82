"""eval-convert --like-refs: conversion of every source to every voice of a reference folder,
scored against the voice's other clips (never its reference clips), with intelligibility kept."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from test_v2 import SPEAKERS, make_model, varied
from tiny import tiny_config
from vqcodec import checkpoint
from vqcodec.cli import cli
from vqcodec.errors import VqcodecError
from vqcodec.evaluation import metrics, report

SR = 16000


def _fake_embedding(wav, sr=SR):
    """A stand-in for resemblyzer: the unit 16-band log spectrum (different signals, different
    directions; the same signal, the same one)."""
    if isinstance(wav, (list, tuple)):
        return report._mean_direction([_fake_embedding(w) for w in wav])
    spec = np.abs(np.fft.rfft(np.asarray(wav, dtype=np.float64).reshape(-1), n=512 * 32))
    e = np.log1p(np.add.reduceat(spec, np.linspace(0, len(spec) - 1, 17).astype(int)[:-1]))
    e = e - e.mean()
    return e / np.linalg.norm(e)


def _voices(root, clips: dict[str, list[np.ndarray]]):
    for name, wavs in clips.items():
        (root / name).mkdir(parents=True)
        for i, w in enumerate(wavs):
            sf.write(root / name / f"{name}_{i:02d}.wav", w, SR)
    return root


def test_target_voices_reference_and_scoring_clips_are_disjoint(tmp_path):
    ref_dir = _voices(tmp_path / "refs", {"alice": [varied(1.5, i) for i in range(5)],
                                          "bob": [varied(1.2, 7)]})
    (tmp_path / "refs" / "loose.wav").write_bytes((ref_dir / "alice" / "alice_00.wav").read_bytes())
    notes: list[str] = []
    voices = report.target_voices(ref_dir, ref_seconds=2.5, max_other=2, notes=notes)
    assert [v.name for v in voices] == ["alice"]      # bob has nothing left to score against
    alice = voices[0]
    assert [p.name for p in alice.reference_clips] == ["alice_00.wav", "alice_01.wav"]   # 3.0 s >= 2.5 s
    assert [p.name for p in alice.other_clips] == ["alice_02.wav", "alice_03.wav"]       # max_other
    assert alice.reference.shape == (int(3.0 * SR),)
    np.testing.assert_allclose(alice.reference[:int(1.5 * SR)], sf.read(alice.reference_clips[0])[0], atol=1e-4)
    assert any("'bob' skipped" in n for n in notes) and any("loose" in n or "directly" in n for n in notes)
    # one clip always goes in, however short --ref-seconds
    assert len(report.target_voices(ref_dir, ref_seconds=0.1)[0].reference_clips) == 1


@pytest.mark.parametrize("layout, words", [
    ("missing", "not found or not a folder"),
    ("empty", "no audio files"),
    ("loose", "one folder per voice"),
    ("one_clip", "no voice has clips beyond"),
    ("not_audio", "reference voice 'carol'"),
])
def test_bad_reference_folder_is_one_clear_error(tmp_path, layout, words):
    root = tmp_path / "refs"
    if layout != "missing":
        root.mkdir()
    if layout == "loose":
        sf.write(root / "a.wav", varied(1.0, 1), SR)
    elif layout == "one_clip":
        _voices(root, {"carol": [varied(1.0, 1)]})
    elif layout == "not_audio":
        (root / "carol").mkdir()
        (root / "carol" / "c0.wav").write_text("not audio")
        sf.write(root / "carol" / "c1.wav", varied(1.0, 1), SR)
    with pytest.raises(VqcodecError, match=words) as e:
        report.target_voices(root, ref_seconds=2.0)
    assert "\n" not in str(e.value)


def test_pairs_and_similarities_use_only_the_other_clips(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "speaker_embedding", _fake_embedding)
    data = _voices(tmp_path / "data", {"us1": [varied(1.0, 20 + i) for i in range(2)],
                                       "us2": [varied(1.0, 30)], "carol": [varied(1.0, 40)]})
    refs = _voices(tmp_path / "refs", {"carol": [varied(1.0, 50 + i) for i in range(3)],
                                       "dave": [varied(1.0, 60 + i) for i in range(3)]})
    voices = report.target_voices(refs, ref_seconds=1.5)
    sources = report.collect_files(data)
    by = {}
    for p, s in sources:
        by.setdefault(s, []).append(p)
    calls = []

    def convert(wav, sr, name):  # "converts" to the first reference clip itself
        calls.append(name)
        return sf.read(refs / name / f"{name}_00.wav", dtype="float32")[0]

    rep = report.evaluate_like_conversion(sources, convert, voices, by, tmp_path / "out", align=False,
                                          progress=False, echo=lambda s: None, source_label=str(refs))
    # 4 sources x 2 voices, less carol -> carol (same name)
    assert rep["num_pairs"] == len(rep["per_file"]) == 7 and rep["num_sources"] == 4 and rep["num_targets"] == 2
    assert calls.count("carol") == 3 and calls.count("dave") == 4
    assert any("same name" in n or "target voice's name" in n for n in rep["notes"])
    row = next(r for r in rep["per_file"] if r["target"] == "dave" and r["source_speaker"] == "us1")
    out = _fake_embedding(sf.read(refs / "dave" / "dave_00.wav")[0])
    others = report._mean_direction([_fake_embedding(sf.read(refs / "dave" / f"dave_0{i}.wav")[0]) for i in (2,)])
    with_refs = report._mean_direction([_fake_embedding(sf.read(refs / "dave" / f"dave_0{i}.wav")[0])
                                        for i in range(3)])
    assert row["sim_target"] == pytest.approx(float(out @ others), abs=1e-6)
    assert abs(row["sim_target"] - float(out @ with_refs)) > 1e-3   # the reference clips would change it
    assert rep["targets"]["dave"]["scored_against"] == [str(refs / "dave" / "dave_02.wav")]
    # sim_source: the source speaker's other clip only; us2 and carol have none
    own = sorted(by["us1"])
    other = own[1] if row["file"] == str(own[0]) else own[0]
    assert row["sim_source"] == pytest.approx(float(out @ _fake_embedding(sf.read(other)[0])), abs=1e-6)
    assert all(r["sim_source"] is None for r in rep["per_file"] if r["source_speaker"] != "us1")
    judged = [r for r in rep["per_file"] if r["sim_source"] is not None]
    assert rep["fraction_closer_to_target"] == pytest.approx(np.mean([r["sim_target"] > r["sim_source"]
                                                                      for r in judged]))
    assert rep["fraction_target_reached"] == pytest.approx(np.mean([r["sim_target"] >= 0.8 for r in rep["per_file"]]))
    assert rep["intelligibility"] == {"skipped": "not asked for (--no-align)"}
    with open(tmp_path / "out" / "convert.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 7
    assert json.loads((tmp_path / "out" / "convert.json").read_text())["num_pairs"] == 7


def test_phone_error_rate():
    assert report._phone_error_rate(list("abcd"), list("abcd")) == 0.0
    assert report._phone_error_rate(list("abcd"), list("abxd")) == 0.25            # substitution
    assert report._phone_error_rate(list("abcd"), list("abd")) == 0.25             # deletion
    assert report._phone_error_rate(["F", "AO", "R"], ["F", "ER"]) == pytest.approx(2 / 3)
    assert report._phone_error_rate([], list("ab")) == 2.0


def _espeak(path, text, voice):
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_intelligibility_of_an_identity_and_a_noise_conversion(tmp_path, monkeypatch):
    pytest.importorskip("pocketsphinx")
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng not installed")
    from vqcodec.audio import load, save

    monkeypatch.setattr(metrics, "speaker_embedding", _fake_embedding)
    text = "she sells sea shells by the sea shore"
    (tmp_path / "data" / "us1").mkdir(parents=True)
    _espeak(tmp_path / "raw.wav", text, "en-us")
    save(tmp_path / "data" / "us1" / "u0.wav", load(tmp_path / "raw.wav", SR), SR)
    (tmp_path / "data" / "us1" / "u0.txt").write_text(text + "\n")
    refs = _voices(tmp_path / "refs", {"same": [varied(1.0, i) for i in range(2)],
                                       "noise": [varied(1.0, 5 + i) for i in range(2)]})
    voices = report.target_voices(refs, ref_seconds=0.5)
    rng = np.random.default_rng(0)

    def convert(wav, sr, name):  # "same": the original back; "noise": no speech left
        return wav if name == "same" else 0.1 * rng.standard_normal(len(wav)).astype(np.float32)

    rep = report.evaluate_like_conversion(report.collect_files(tmp_path / "data"), convert, voices, {},
                                          tmp_path / "out", progress=False, echo=lambda s: None)
    it = rep["intelligibility"]
    assert it["sources_with_transcript"] == 1 and it["pairs_with_transcript"] == 2
    assert it["original_aligned"] == 1.0
    rows = {r["target"]: r for r in rep["per_file"]}
    assert rows["same"]["converted_aligned"] and rows["same"]["phones_match"]
    assert rows["same"]["phone_frame_agreement"] == 1.0
    assert rows["same"]["phone_error_rate"] == 0.0
    assert not rows["noise"]["converted_aligned"] and "phones_match" not in rows["noise"]
    assert it["converted_aligned"] == 0.5 and it["phone_sequence_match"] == 1.0 and it["pairs_compared"] == 1
    assert "aligned 100% of originals, 50% of conversions" in report.format_like_conversion(rep)


# --------------------------------------------------------------------------- CLI on tiny models
@pytest.fixture(scope="module")
def v2_path(tmp_path_factory):
    cfg, model = make_model()
    path = tmp_path_factory.mktemp("v2like") / "v2.pt"
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(),
                           "meta": {"speakers": SPEAKERS, "voices": {"us1": [10, 200, 30, 128],
                                                                     "us2": [250, 5, 128, 60]}},
                           "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("likedata")
    data = _voices(root / "data", {"us3": [varied(1.0, 70 + i, level=0.3) for i in range(2)],
                                   "us4": [varied(0.8, 80)]})
    refs = _voices(root / "refs", {"eve": [varied(1.2, 90 + i) for i in range(3)],
                                   "zed": [varied(1.2, 95 + i) for i in range(3)]})
    return data, refs


def test_cli_eval_convert_like(v2_path, dirs, tmp_path):
    pytest.importorskip("resemblyzer")
    pytest.importorskip("webrtcvad")
    data, refs = dirs
    out = tmp_path / "conv"
    r = CliRunner().invoke(cli, ["eval-convert", str(data), "--like-refs", str(refs), "-m", v2_path,
                                 "--ref-seconds", "2", "--listen", "2", "-q", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "convert.json").read_text())
    assert rep["mode"] == "like" and rep["num_pairs"] == 6 and len(rep["per_file"]) == 6
    assert sorted(rep["targets"]) == ["eve", "zed"]
    for name, t in rep["targets"].items():
        assert len(t["reference_clips"]) == 2 and len(t["scored_against"]) == 1
        assert not set(t["reference_clips"]) & set(t["scored_against"])
    for row in rep["per_file"]:
        assert -1 <= row["sim_target"] <= 1 and -1 <= row["sim_original_target"] <= 1
    assert "no source has a .txt" in rep["intelligibility"]["skipped"]
    assert "eve" in r.output and "tgt>src" in r.output
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 * 3 and "pair(s)" in page and "sim_target &gt;= 0.80" in page
    # the first source to both voices: each block links its own voice's reference, written once
    refs_linked = sorted({p.name for p in (out / "listen").rglob("reference-voice-*.wav")})
    assert refs_linked == ["reference-voice-eve.wav", "reference-voice-zed.wav"]
    eve = next((out / "listen").rglob("reference-voice-eve.wav"))
    expected = np.concatenate([sf.read(refs / "eve" / f"eve_0{i}.wav", dtype="float32")[0] for i in (0, 1)])
    assert np.abs(sf.read(eve, dtype="float32")[0] - expected).max() < 1e-3
    # deterministic: the fast decoder and the same reference give the same numbers
    r2 = CliRunner().invoke(cli, ["eval-convert", str(data), "--like-refs", str(refs), "-m", v2_path,
                                  "--ref-seconds", "2", "--listen", "0", "-q", "-o", str(tmp_path / "again")])
    assert r2.exit_code == 0, r2.output
    again = json.loads((tmp_path / "again" / "convert.json").read_text())
    assert [x["sim_target"] for x in again["per_file"]] == pytest.approx([x["sim_target"] for x in rep["per_file"]])


def test_cli_eval_convert_like_refusals(v2_path, dirs, tmp_path):
    data, refs = dirs
    cfg = tiny_config()
    torch.manual_seed(0)
    from vqcodec.models.vqvae import VQVAE

    v1 = tmp_path / "v1.pt"
    checkpoint.save(v1, {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": SPEAKERS},
                         "model": VQVAE(cfg.model, len(SPEAKERS)).state_dict()})
    (tmp_path / "empty").mkdir()
    cases = [(["--like-refs", str(tmp_path / "nope")], "not found or not a folder"),
             (["--like-refs", str(tmp_path / "empty")], "no audio files"),
             (["--like-refs", str(refs), "--ref-seconds", "60"], "no voice has clips beyond"),
             (["--like-refs", str(refs), "--to", "us1"], "exactly one of --to"),
             ([], "exactly one of --to"),
             (["--like-refs", str(refs), "--ref-seconds", "2", "-m", str(v1)], "v1 model")]
    for args, words in cases:
        out = tmp_path / "out"
        model = [] if "-m" in args else ["-m", v2_path]
        r = CliRunner().invoke(cli, ["eval-convert", str(data), "-q", "-o", str(out), *args, *model])
        assert r.exit_code == 1, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vqcodec: error") and words in lines[0], (args, r.output)
        assert not out.exists()
