"""Phoneme analysis: metrics against hand-worked numbers, alignment readers, the pocketsphinx
aligner on mbrola speech, the MFCC k-means baseline and the `analyze phonemes` report."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqcodec.analysis.alignments import (Interval, find_alignment, read_alignment, read_pho, read_textgrid,
                                         read_tsv, write_textgrid)
from vqcodec.analysis.metrics import (TokenizedUtterance, analyze_tokens, cluster_purity, contingency, frame_labels,
                                      phone_purity, pnmi, speaker_classification, split_utterances,
                                      token_agreement)

FIX = Path(__file__).parent / "fixtures"
HELLO = ["sil", "HH", "AH", "L", "OW", "sil"]
HELLO_TIMES = [(0, .1), (.1, .2), (.2, .3), (.3, .4), (.4, .52), (.52, .62)]


def _ivs(labels, dur=0.01):
    """One interval of `dur` seconds per label, back to back."""
    return [Interval(i * dur, (i + 1) * dur, lab) for i, lab in enumerate(labels)]


# --------------------------------------------------------------------------- frame pairing
def test_frame_labels_at_token_centres():
    ivs = [Interval(0.0, 0.02, "a"), Interval(0.02, 0.05, "b")]
    # hop 160 at 16 kHz: token centres 5, 15, 25, 35, 45, 55 ms
    assert frame_labels(ivs, 6, 160, 16000).tolist() == ["a", "a", "b", "b", "b", ""]
    # hop 64: token 4 covers samples 256..319, centre 288/16000 = 18 ms -> "a"; token 5 -> 22 ms -> "b"
    lab = frame_labels(ivs, 13, 64, 16000)
    assert lab[4] == "a" and lab[5] == "b" and lab[11] == "b" and lab[12] == ""  # 50 ms = end: outside


# --------------------------------------------------------------------------- metrics
def test_perfect_tokenizer():
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 10, 2000)
    perm = rng.permutation(32)[:10]
    counts = contingency(perm[phones], phones, 32, 10)
    assert phone_purity(counts) == 1.0
    assert cluster_purity(counts) == 1.0
    assert pnmi(counts) == pytest.approx(1.0)


def test_worked_example():
    # codes   0 0 0 1 1 2
    # phones  a a b b b b
    counts = contingency(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 1]), 3, 2)
    assert phone_purity(counts) == pytest.approx(5 / 6)    # code0->a (2), code1->b (2), code2->b (1)
    assert cluster_purity(counts) == pytest.approx(4 / 6)  # a: 2 on code0, b: 2 on code1
    h_y = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    mi = math.log(2) / 6 + math.log(1.5) / 2
    assert pnmi(counts) == pytest.approx(mi / h_y)


def test_mapping_accuracy_train_test_and_unseen_codes():
    # train utterance: codes 0 0 1, phones a a b; test utterance: codes 0 1 2, phones a a a.
    items = [(np.array([0, 0, 1]), _ivs(["a", "a", "b"])), (np.array([0, 1, 2]), _ivs(["a", "a", "a"]))]
    res = analyze_tokens(items, hop=160, sample_rate=16000, codebook_size=4, is_test=np.array([False, True]),
                         phone_order=["a", "b"], min_count=1)
    assert res.mapping_accuracy["train"] == pytest.approx(1.0)
    assert res.mapping_accuracy["test"] == pytest.approx(2 / 3)   # 1 -> b is wrong; unseen 2 -> a
    assert res.majority_phone == "a"
    assert res.majority_baseline["train"] == pytest.approx(2 / 3)
    assert res.majority_baseline["test"] == pytest.approx(1.0)
    assert res.num_frames == {"train": 3, "test": 3}
    assert res.phone_recall["a"] == {"recall": pytest.approx(2 / 3), "count": 3}
    assert res.confusion.tolist() == [[2, 1], [0, 0]]
    # all frames: code0: a a a, code1: b a, code2: a
    assert res.phone_purity == pytest.approx(5 / 6)
    assert res.codes_used == 3 and res.codebook_size == 4
    assert res.most_phonetic_codes[0].code in (0, 2) and res.most_phonetic_codes[0].purity == 1.0
    assert res.least_phonetic_codes[0].code == 1 and res.least_phonetic_codes[0].purity == 0.5
    d = res.to_dict()
    json.dumps(d)
    assert "counts" not in d and d["mapping_accuracy"]["test"] == pytest.approx(2 / 3, abs=1e-6)


def test_independent_codes_give_pnmi_zero_and_baseline_accuracy():
    rng = np.random.default_rng(1)
    p = np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    items = []
    for _ in range(20):
        labels = rng.choice(6, size=2000, p=p)
        items.append((rng.integers(0, 16, 2000), _ivs([str(x) for x in labels])))
    res = analyze_tokens(items, hop=160, sample_rate=16000, codebook_size=16, test_fraction=0.5, seed=0)
    assert res.pnmi < 0.01
    assert abs(res.mapping_accuracy["test"] - res.majority_baseline["test"]) < 0.02
    assert res.majority_phone == "0"


def test_perfect_tokens_through_analyze_tokens():
    rng = np.random.default_rng(2)
    items = []
    for _ in range(6):
        labels = rng.integers(0, 5, 300)
        items.append((labels * 3 + 1, _ivs([f"p{x}" for x in labels])))
    res = analyze_tokens(items, hop=160, sample_rate=16000, codebook_size=16)
    assert res.phone_purity == 1.0 and res.pnmi == pytest.approx(1.0)
    assert res.mapping_accuracy["test"] == 1.0


def test_split_is_deterministic_and_nonempty():
    a = split_utterances(10, 0.2, seed=3)
    assert a.sum() == 2 and (a == split_utterances(10, 0.2, seed=3)).all()
    assert split_utterances(2, 0.01).sum() == 1
    assert split_utterances(1, 0.5).sum() == 0


def test_speaker_independence_parts():
    ivs = _ivs(["sil", "a", "b", "c", "d", "sil"], dur=0.04)   # 4 tokens of 10 ms per phone
    same = np.repeat([0, 1, 2, 3, 4, 0], 4)
    other = np.repeat([0, 1, 2, 9, 9, 0], 4)
    utts = [TokenizedUtterance(same, ivs, "s1", "A b, c d."), TokenizedUtterance(same, ivs, "s1", "a b c d"),
            TokenizedUtterance(other, ivs, "s2", "a b c d")]
    ag = token_agreement(utts, hop=160, sample_rate=16000)
    assert ag["utterance_pairs"] == 2 and ag["phones_compared"] == 8
    assert ag["agreement"] == pytest.approx(0.5)   # a, b agree; c, d do not
    assert "skipped" in token_agreement(utts[:2], 160, 16000)
    # histograms: speaker 1 uses codes 0..4, speaker 2 codes 0, 1, 2, 9
    utts4 = utts + [TokenizedUtterance(other, ivs, "s2", None)]
    cl = speaker_classification(utts4, 16, is_test=np.array([True, False, True, False]))
    assert cl["accuracy"] == 1.0 and cl["speakers"] == 2
    assert "skipped" in speaker_classification(utts[:2], 16, np.array([False, True]))


# --------------------------------------------------------------------------- readers
def test_textgrid_roundtrip_and_normalised_reading(tmp_path):
    raw = read_textgrid(FIX / "analysis_mfa.TextGrid")
    assert [iv.label for iv in raw] == ["", "HH", "AH0", "L", "OW1", "sp"]
    assert read_textgrid(FIX / "analysis_mfa.TextGrid", "words")[1] == Interval(0.1, 0.52, "hello")
    norm = read_alignment(FIX / "analysis_mfa.TextGrid")
    assert [iv.label for iv in norm] == HELLO
    write_textgrid(tmp_path / "x.TextGrid", {"phones": norm})
    assert read_textgrid(tmp_path / "x.TextGrid") == norm


def test_read_pho_cumulative_times_and_mapping():
    ivs = read_pho(FIX / "analysis_us1.pho")
    assert [iv.label for iv in ivs] == HELLO
    assert [(round(iv.start, 6), round(iv.end, 6)) for iv in ivs] == \
        [(0, .1), (.1, .2), (.2, .3), (.3, .4), (.4, .52), (.52, .62)]
    assert read_alignment(FIX / "analysis_us1.pho") == ivs
    custom = read_pho(FIX / "analysis_us1.pho", mapping={"h": "HH", "@": "AH", "l": "L", "@U": "OW", "_": "sil"})
    assert [iv.label for iv in custom] == HELLO


@pytest.mark.parametrize("name", ["analysis.tsv", "analysis.ctm"])
def test_read_tsv_and_ctm(name):
    ivs = read_tsv(FIX / name)
    assert [iv.label for iv in ivs] == HELLO
    assert [(round(iv.start, 6), round(iv.end, 6)) for iv in ivs] == HELLO_TIMES
    assert read_alignment(FIX / name) == ivs


def test_find_alignment(tmp_path):
    wav = tmp_path / "data" / "spk1" / "u1.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"")
    assert find_alignment(wav) is None
    (tmp_path / "data" / "spk1" / "u1.pho").write_text("_ 10\n")
    assert find_alignment(wav).name == "u1.pho"
    al = tmp_path / "al"
    assert find_alignment(wav, al) is None
    (al / "u1.tsv").parent.mkdir()
    (al / "u1.tsv").write_text("0 1 a\n")
    assert find_alignment(wav, al) == al / "u1.tsv"
    (al / "spk1").mkdir()
    (al / "spk1" / "u1.TextGrid").write_text("")
    assert find_alignment(wav, al) == al / "spk1" / "u1.TextGrid"   # mirrored path wins


# --------------------------------------------------------------------------- aligner on mbrola speech
MBROLA_US1 = Path("/usr/share/mbrola/us1/us1")


def _synth(tmp_path, text, name="s"):
    if not (shutil.which("espeak-ng") and shutil.which("mbrola") and MBROLA_US1.exists()):
        pytest.skip("espeak-ng, mbrola or the mbrola us1 voice is not installed")
    pho, wav = tmp_path / f"{name}.pho", tmp_path / f"{name}.wav"
    with open(pho, "w") as f:
        subprocess.run(["espeak-ng", "-v", "mb-us1", "-q", "--pho", text], stdout=f, check=True)
    subprocess.run(["mbrola", "-e", str(MBROLA_US1), str(pho), str(wav)], check=True, capture_output=True)
    return pho, wav


def test_pocketsphinx_aligner_matches_mbrola_truth(tmp_path):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed")
    from vqcodec.analysis.aligner import align_corpus

    text = "The quick brown fox jumps over the lazy dog near the river bank"
    pho, wav = _synth(tmp_path, text)
    (tmp_path / "bad.wav").write_bytes(wav.read_bytes())
    rep = align_corpus([(wav, text), (tmp_path / "bad.wav", "the zqxwvy fox")], tmp_path / "al", progress=False)
    assert [p.name for p in rep.aligned] == ["s.TextGrid"]
    assert "zqxwvy" in rep.skipped[str(tmp_path / "bad.wav")]
    got = read_alignment(tmp_path / "al" / "s.TextGrid")
    words = read_textgrid(tmp_path / "al" / "s.TextGrid", "words")
    assert [w.label for w in words if w.label] == text.lower().split()
    truth = [iv for iv in read_pho(pho) if iv.label != "sil"]
    bounds = np.array([iv.start for iv in got] + [got[-1].end])
    err = np.array([np.abs(bounds - iv.start).min() for iv in truth])
    assert np.mean(err <= 0.05) >= 0.7, err
    # labels agree for most phones at the truth phones' centres
    centres = np.array([(iv.start + iv.end) / 2 for iv in truth])
    from vqcodec.analysis.metrics import labels_at
    assert np.mean(labels_at(got, centres) == np.array([iv.label for iv in truth])) >= 0.6


def test_missing_pocketsphinx_is_a_clear_error(monkeypatch):
    import builtins

    from vqcodec.analysis import aligner
    from vqcodec.errors import MissingToolError

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pocketsphinx":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(MissingToolError, match=r"vqcodec\[analysis\]"):
        aligner.ForcedAligner()


# --------------------------------------------------------------------------- baseline + report
def _tone_utterance(rng, phones, sr=16000, seg=0.06):
    """Each phone a pure tone of its own frequency; returns wav and intervals."""
    freqs = {"AA": 300, "IY": 900, "S": 2500, "M": 150, "sil": 0}
    wav, ivs, t = [], [], 0.0
    for p in phones:
        n = int(seg * sr)
        x = np.arange(n) / sr
        wav.append(0.5 * np.sin(2 * np.pi * freqs[p] * x) + 0.01 * rng.standard_normal(n))
        ivs.append(Interval(t, t + seg, p))
        t += seg
    return np.concatenate(wav).astype(np.float32), ivs


def test_mfcc_kmeans_baseline_runs_on_tiny_audio():
    from vqcodec.analysis.baseline import fit_mfcc_kmeans, mfcc_frames

    rng = np.random.default_rng(0)
    wav, ivs = _tone_utterance(rng, ["sil", "AA", "S", "IY", "M", "sil"] * 2)
    feats = mfcc_frames(wav, 16000, 64)
    assert feats.shape == (len(wav) // 64, 39)
    km = fit_mfcc_kmeans([wav], 16000, 64, k=8, seed=0)
    codes = km.encode(wav, 16000)
    assert codes.shape == (len(wav) // 64,) and codes.dtype == np.int64 and codes.max() < 8
    res = analyze_tokens([(codes, ivs)], 64, 16000, codebook_size=8)
    assert res.phone_purity > 0.6


class FakeCodec:
    """Tokens = the strongest FFT bin of each hop-sample frame (a 'phonetic' tokenizer for tones)."""
    hop, sample_rate, codebook_size = 64, 16000, 33

    def encode(self, wav, sample_rate):
        n = len(wav) // self.hop
        frames = wav[:n * self.hop].reshape(n, self.hop)
        return np.abs(np.fft.rfft(frames, axis=1)).argmax(axis=1).astype(np.int64)


class FakeLadderCodec(FakeCodec):
    """FakeCodec's tokens as the first of 3 codebooks, the others noise: a bitrate-ladder model."""

    def encode(self, wav, sample_rate):
        first = super().encode(wav, sample_rate)
        rest = np.random.default_rng(len(wav)).integers(0, self.codebook_size, (len(first), 2))
        return np.column_stack([first, rest])


def test_a_ladder_model_is_analysed_by_its_first_codebook(tmp_path):
    """Tokens (frames, N): the analysis sees codebook 1, frame-aligned (flattening them would put
    N codes in each frame's place)."""
    from vqcodec.analysis.report import run_phoneme_analysis

    rng = np.random.default_rng(0)
    for spk in ("spk1", "spk2"):
        (tmp_path / "data" / spk).mkdir(parents=True)
        for i, sent in enumerate([["sil", "AA", "S", "IY", "sil"], ["sil", "M", "AA", "M", "sil"]] * 2):
            wav, ivs = _tone_utterance(rng, sent)
            sf.write(tmp_path / "data" / spk / f"u{i}.wav", wav, 16000)
            (tmp_path / "data" / spk / f"u{i}.tsv").write_text(
                "".join(f"{iv.start:.3f}\t{iv.end:.3f}\t{iv.label}\n" for iv in ivs))
    reps = [run_phoneme_analysis(c, tmp_path / "data", tmp_path / name, baseline=False, progress=False)
            for c, name in ((FakeCodec(), "one"), (FakeLadderCodec(), "ladder"))]
    assert reps[1]["tokens"]["mapping_accuracy"] == reps[0]["tokens"]["mapping_accuracy"]
    assert reps[1]["tokens"]["pnmi"] == reps[0]["tokens"]["pnmi"] and reps[0]["tokens"]["pnmi"] > 0.3


def test_analyze_phonemes_cli_writes_report(tmp_path, monkeypatch):
    import vqcodec
    from click.testing import CliRunner

    from vqcodec.cli import cli

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    sentences = [["sil", "AA", "S", "IY", "sil"], ["sil", "M", "AA", "M", "sil"], ["sil", "S", "IY", "S", "AA", "sil"]]
    for spk in ("spk1", "spk2"):
        (data / spk).mkdir(parents=True)
        for i, sent in enumerate(sentences * 2):
            wav, ivs = _tone_utterance(rng, sent)
            sf.write(data / spk / f"u{i}.wav", wav, 16000)
            (data / spk / f"u{i}.txt").write_text(" ".join(sent[1:-1]).lower() + "\n")
            (data / spk / f"u{i}.tsv").write_text("".join(f"{iv.start:.3f}\t{iv.end:.3f}\t{iv.label}\n" for iv in ivs))
    (data / "spk1" / "orphan.wav").write_bytes((data / "spk1" / "u0.wav").read_bytes())  # no alignment
    monkeypatch.setattr(vqcodec, "load_model", lambda name, **kw: FakeCodec())
    out = tmp_path / "report"
    r = CliRunner().invoke(cli, ["analyze", "phonemes", str(data), "-o", str(out), "--split-seed", "1"])
    assert r.exit_code == 0, r.output
    assert "mapping accuracy (test)" in r.output and "49.3%" in r.output and "7.2%" in r.output
    for f in ("report.json", "heatmap.png", "confusion.png"):
        assert (out / f).stat().st_size > 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["data"]["utterances"] == 12 and rep["data"]["speakers"] == ["spk1", "spk2"]
    assert rep["tokens"]["mapping_accuracy"]["test"] > 0.9
    assert rep["mfcc_kmeans"]["pnmi"] is not None
    si = rep["tokens"]["speaker_independence"]
    assert si["token_agreement"]["agreement"] > 0.9 and "accuracy" in si["speaker_classifier"]
    assert any("without an alignment" in n for n in rep["notes"])
    # no usable data: one clear error line
    r = CliRunner().invoke(cli, ["analyze", "phonemes", str(tmp_path / "report"), "-o", str(tmp_path / "r2")])
    assert r.exit_code == 1 and "no .wav or .flac" in r.output


def test_analyze_with_builtin_aligner(tmp_path):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx not installed")
    from vqcodec.analysis.report import run_phoneme_analysis

    text = "She sells sea shells by the sea shore"
    for spk in ("a", "b"):
        (tmp_path / "data" / spk).mkdir(parents=True)
        pho, wav = _synth(tmp_path / "data" / spk, text, name="u1")
        pho.unlink()   # only --align can provide the phones now
        (wav.with_suffix(".txt")).write_text(text + "\n")
    rep = run_phoneme_analysis(FakeCodec(), tmp_path / "data", tmp_path / "out", align=True, baseline=False,
                               progress=False)
    assert rep["data"]["utterances"] == 2
    assert (tmp_path / "out" / "alignments" / "a" / "u1.TextGrid").exists()
    assert rep["tokens"]["speaker_independence"]["token_agreement"]["utterance_pairs"] == 1
    assert "SH" in rep["tokens"]["phones"] and (tmp_path / "out" / "heatmap.png").exists()


# --------------------------------------------------------------------------- z_e k-means, side by side
def _tiny_codec(version: int):
    """A tiny random-init Codec: v2 (level normalisation, voice) from test_v2, or a v1 one."""
    import torch

    from vqcodec.api import Codec

    if version == 2:
        from test_v2 import SPEAKERS, make_model
        cfg, model = make_model()
        return Codec(model, cfg, SPEAKERS, voices={"us1": [1, 2, 3, 4], "us2": [5, 6, 7, 8]})
    from tiny import tiny_config
    from vqcodec.models.vqvae import VQVAE
    cfg = tiny_config()
    torch.manual_seed(0)
    return Codec(VQVAE(cfg.model, 2).eval(), cfg, ["a", "b"])


@pytest.mark.parametrize("version", [1, 2])
def test_encoder_frames_are_what_the_quantizer_rounds(version):
    """z_e's nearest codebook entry is the token: same frames, same level normalisation."""
    from vqcodec.analysis.baseline import assign, encoder_frames, has_encoder

    codec = _tiny_codec(version)
    assert has_encoder(codec) and not has_encoder(FakeCodec())
    wav, _ = _tone_utterance(np.random.default_rng(1), ["AA", "S", "IY", "M", "AA"])
    wav = 0.3 * wav[: len(wav) - 37]                       # not a whole number of tokens
    tokens = codec.encode(wav, 16000)
    z = encoder_frames(codec, wav, 16000, num_frames=len(tokens))
    assert z.shape == (len(tokens), codec.model.encoder(__import__("torch").zeros(1, codec.hop)).shape[1])
    codebook = codec.model.quantizer.codebook.detach().double().numpy()
    assert np.mean(assign(z, codebook) == tokens) > 0.98


@pytest.mark.parametrize("version", [1, 2])
def test_phoneme_report_puts_tokens_mfcc_and_ze_kmeans_side_by_side(tmp_path, version):
    from vqcodec.analysis.report import format_summary, run_phoneme_analysis

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    sentences = [["sil", "AA", "S", "IY", "sil"], ["sil", "M", "AA", "M", "sil"], ["sil", "S", "IY", "S", "AA", "sil"]]
    for spk, level in (("spk1", 0.5), ("spk2", 1.0)):
        (data / spk).mkdir(parents=True)
        for i, sent in enumerate(sentences * 2):
            wav, ivs = _tone_utterance(rng, sent)
            sf.write(data / spk / f"u{i}.wav", level * wav, 16000)
            (data / spk / f"u{i}.tsv").write_text("".join(f"{iv.start:.3f}\t{iv.end:.3f}\t{iv.label}\n" for iv in ivs))
    codec = _tiny_codec(version)
    rep = run_phoneme_analysis(codec, data, tmp_path / "out", progress=False, model_name=f"tiny v{version}",
                               baseline=version == 2)   # the MFCC part does not depend on the model
    K = codec.codebook_size
    systems = ["tokens", "mfcc_kmeans", "ze_kmeans"] if version == 2 else ["tokens", "ze_kmeans"]
    for key in systems:   # the old keys stay, the new one is alike
        d = rep[key]
        assert 0 <= d["pnmi"] <= 1 and 0 < d["mapping_accuracy"]["test"] <= 1 and d["codebook_size"] == K
        cl = d["speaker_independence"]["speaker_classifier"]
        assert 0 <= cl["accuracy"] <= 1 and cl["chance"] == pytest.approx(0.5) and cl["speakers"] == 2
    assert "z_e" in rep["ze_kmeans"]["method"] and f"K={K}" in rep["ze_kmeans"]["method"]
    side = rep["side_by_side"]
    assert list(side["systems"]) == systems
    assert side["pnmi"]["ze_kmeans"] == rep["ze_kmeans"]["pnmi"]
    assert side["speaker_from_histogram"]["tokens"] == rep["tokens"]["speaker_independence"]["speaker_classifier"]["accuracy"]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["side_by_side"] == json.loads(json.dumps(side))
    text = format_summary(rep)
    header = next(ln for ln in text.splitlines() if "MFCC k-means" in ln and "model" in ln)
    assert "z_e k-means" in header
    spk_row = next(ln for ln in text.splitlines() if ln.startswith("speaker from histogram"))
    assert len(spk_row.split()) == 3 + len(systems)    # label words + one figure per system
    if version == 1:
        return
    # a codec without an encoder (or --no-ze-kmeans): the old report, with a note
    rep2 = run_phoneme_analysis(FakeCodec(), data, tmp_path / "out2", progress=False, baseline=False)
    assert "ze_kmeans" not in rep2 and any("z_e k-means skipped" in n for n in rep2["notes"])
    assert list(rep2["side_by_side"]["systems"]) == ["tokens"]
