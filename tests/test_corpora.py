"""Corpus readers, the split, the preprocessing cache and the crop dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vqcodec.data import corpora, split, windows
from vqcodec.data.corpora import Utterance, load_corpus
from vqcodec.errors import VqcodecError


def test_vctk_080(tmp_path, make_wav):
    root = tmp_path / "VCTK-Corpus"
    for spk in ("p225", "p226"):
        for n in (1, 2):
            make_wav(root / "wav48" / spk / f"{spk}_{n:03d}.wav", seconds=0.05, sr=48000)
    (root / "txt" / "p225").mkdir(parents=True)
    (root / "txt" / "p225" / "p225_001.txt").write_text("Please call Stella.\n")
    utts = corpora.vctk(tmp_path)  # a parent of the corpus folder works too
    assert [u.utt_id for u in utts] == ["p225_001", "p225_002", "p226_001", "p226_002"]
    assert [u.speaker for u in utts] == ["p225", "p225", "p226", "p226"]
    assert utts[0].transcript == "Please call Stella."
    assert utts[1].transcript is None
    assert load_corpus("vctk", root) == utts


def test_vctk_092_mics(tmp_path, make_wav):
    root = tmp_path / "vctk"
    for mic in ("mic1", "mic2"):
        make_wav(root / "wav48_silence_trimmed" / "p225" / f"p225_001_{mic}.flac", seconds=0.05, sr=48000)
        make_wav(root / "wav48_silence_trimmed" / "p227" / f"p227_003_{mic}.flac", seconds=0.05, sr=48000)
    (root / "txt" / "p227").mkdir(parents=True)
    (root / "txt" / "p227" / "p227_003.txt").write_text("Six spoons.")
    u1 = corpora.vctk(root)
    assert [u.utt_id for u in u1] == ["p225_001", "p227_003"]
    assert all(u.path.name.endswith("_mic1.flac") for u in u1)
    assert u1[1].transcript == "Six spoons."
    u2 = load_corpus("vctk", root, mic="mic2")
    assert all(u.path.name.endswith("_mic2.flac") for u in u2)
    with pytest.raises(VqcodecError):
        corpora.vctk(root, mic="mic3")


def test_librispeech(tmp_path, make_wav):
    root = tmp_path / "LibriSpeech"
    for subset, spk, ch in (("train-clean-100", "19", "198"), ("dev-clean", "84", "121123")):
        d = root / subset / spk / ch
        for n in range(2):
            make_wav(d / f"{spk}-{ch}-{n:04d}.flac", seconds=0.05)
        (d / f"{spk}-{ch}.trans.txt").write_text(
            f"{spk}-{ch}-0000 NORTHANGER ABBEY\n{spk}-{ch}-0001 THIS LITTLE WORK\n")
    all_utts = corpora.librispeech(root)
    assert len(all_utts) == 4 and {u.speaker for u in all_utts} == {"19", "84"}
    assert all_utts[0].utt_id == "19-198-0000" and all_utts[0].transcript == "NORTHANGER ABBEY"
    one = load_corpus("librispeech", root / "dev-clean")
    assert [u.utt_id for u in one] == ["84-121123-0000", "84-121123-0001"]
    assert one[1].transcript == "THIS LITTLE WORK"


def test_folders(tmp_path, make_wav):
    root = tmp_path / "corpus"
    make_wav(root / "alice" / "a1.wav")
    make_wav(root / "alice" / "sub" / "a2.flac")
    make_wav(root / "bob" / "b1.wav")
    (root / "alice" / "a1.txt").write_text("hello  world\n")
    (root / "bob" / "b1.lab").write_text("bye")
    (root / "bob" / "notes.md").write_text("not audio")
    (root / "loose.wav").write_bytes(b"")  # not in a speaker folder: ignored
    utts = corpora.folders(root)
    assert [(u.speaker, u.utt_id, u.transcript) for u in utts] == [
        ("alice", "a1", "hello world"), ("alice", "sub_a2", None), ("bob", "b1", "bye")]
    assert split.speaker_index(utts) == ["alice", "bob"]


def test_corpus_errors(tmp_path):
    with pytest.raises(VqcodecError, match="does not exist"):
        load_corpus("folders", tmp_path / "missing")
    (tmp_path / "empty" / "spk").mkdir(parents=True)
    for kind in ("folders", "librispeech"):
        with pytest.raises(VqcodecError, match="no audio"):
            load_corpus(kind, tmp_path / "empty")
    with pytest.raises(VqcodecError, match="not a VCTK"):
        load_corpus("vctk", tmp_path / "empty")
    with pytest.raises(VqcodecError, match="unknown corpus kind"):
        load_corpus("timit", tmp_path)
    with pytest.raises(VqcodecError, match="do not apply"):
        load_corpus("folders", tmp_path / "empty", mic="mic2")


def _fake(n_spk=4, n_utt=200):
    return [Utterance(f"/x/{s}/{i}.wav", f"s{s}", f"s{s}_{i:03d}") for s in range(n_spk) for i in range(n_utt)]


def test_split_deterministic_and_order_free():
    utts = _fake()
    a = split.split(utts, 0.1, 0.1, seed=1)
    b = split.split(list(reversed(utts)), 0.1, 0.1, seed=1)
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}
    assert sum(len(v) for v in a.values()) == len(utts)
    assert 40 < len(a["valid"]) < 120 and 40 < len(a["test"]) < 120
    # a subset of the corpus keeps each utterance's assignment
    c = split.split(utts[::3], 0.1, 0.1, seed=1)
    assert set(c["train"]) <= set(a["train"]) and set(c["test"]) <= set(a["test"])
    # another seed gives another split
    d = split.split(utts, 0.1, 0.1, seed=2)
    assert set(d["valid"]) != set(a["valid"])


def test_split_holdout_speakers():
    utts = _fake()
    s = split.split(utts, 0.05, 0.05, holdout_speakers=["s3"])
    assert all(u.speaker != "s3" for u in s["train"] + s["valid"])
    assert sum(u.speaker == "s3" for u in s["test"]) == 200
    with pytest.raises(VqcodecError, match="not in the corpus"):
        split.split(utts, holdout_speakers=["s9"])
    with pytest.raises(VqcodecError):
        split.split(utts, 0.6, 0.5)


@pytest.fixture
def small_corpus(tmp_path, make_wav):
    root = tmp_path / "corpus"
    make_wav(root / "a" / "long.wav", seconds=0.5, sr=22050, freq=300)
    make_wav(root / "a" / "short.wav", seconds=0.02, freq=500)
    make_wav(root / "b" / "mid.flac", seconds=0.3, kind="noise")
    return corpora.folders(root)


def test_cache_and_skip(tmp_path, small_corpus, monkeypatch):
    cache = tmp_path / "cache"
    entries = windows.build_cache(small_corpus, cache, progress=False)
    assert [e.key for e in entries] == ["a/long", "a/short", "b/mid"]
    assert entries[0].length == 8000 and entries[0].dtype == "int16"
    assert np.load(entries[0].path, mmap_mode="r").dtype == np.int16
    assert windows.open_cache(cache) == sorted(entries, key=lambda e: e.key)
    # second run reads nothing
    calls = []
    monkeypatch.setattr(windows, "_cache_one", lambda a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    again = windows.build_cache(small_corpus, cache, progress=False)
    assert again == entries and calls == []


def test_cache_skips_bad_audio(tmp_path, small_corpus):
    bad = small_corpus[0].path.parent / "bad.wav"
    bad.write_text("not audio")
    utts = small_corpus + [Utterance(bad, "a", "bad")]
    entries = windows.build_cache(utts, tmp_path / "c", progress=False)
    assert len(entries) == 3
    with pytest.raises(VqcodecError):
        windows.build_cache(utts, tmp_path / "c2", progress=False, skip_bad=False)


def test_crop_dataset(tmp_path, small_corpus):
    entries = windows.build_cache(small_corpus, tmp_path / "cache", progress=False)
    spk = split.speaker_index(small_corpus)
    ds = windows.CropDataset(entries, window=1024, speakers=spk, seed=3, length=50)
    assert len(ds) == 50
    items = [ds[i] for i in range(50)]
    for wav, s in items:
        assert wav.shape == (1024,) and wav.dtype == torch.float32 and s in (0, 1)
    assert {s for _, s in items} == {0, 1}
    # short utterance (320 samples) is padded with zeros
    short = windows.CropDataset([e for e in entries if e.key == "a/short"], 1024, spk)
    w, s = short[0]
    assert s == 0 and float(w[320:].abs().max()) == 0 and float(w[:320].abs().max()) > 0.1
    # deterministic for a seed, different for another seed / epoch
    ds2 = windows.CropDataset(entries, window=1024, speakers=spk, seed=3, length=50)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(items, (ds2[i] for i in range(50))))
    ds2.set_epoch(1)
    assert not all(torch.equal(a[0], ds2[i][0]) for i, a in enumerate(items))
    xb, sb = ds.batch(7, 4)
    assert xb.shape == (4, 1024) and sb.shape == (4,) and sb.dtype == torch.long
    assert torch.equal(ds.batch(7, 4)[0], xb)
    assert not torch.equal(ds.batch(7, 4, rank=1)[0], xb)
    # works through a DataLoader with workers (memory maps are not pickled)
    loader = torch.utils.data.DataLoader(ds, batch_size=10, num_workers=1)
    xs, ss = next(iter(loader))
    assert xs.shape == (10, 1024) and torch.equal(xs[0], items[0][0])


def test_mulaw_export(tmp_path, small_corpus):
    entries = windows.build_cache(small_corpus, tmp_path / "cache", progress=False)
    shards = windows.export_mulaw(entries, tmp_path / "mu", shard_seconds=0.4)
    assert len({e.file for e in shards}) >= 2
    assert [e.key for e in shards] == [e.key for e in sorted(entries, key=lambda e: e.key)]
    again = windows.open_cache(tmp_path / "mu")
    for e, m in zip(sorted(entries, key=lambda e: e.key), again):
        a, b = windows.read_entry(e), windows.read_entry(m)
        assert m.dtype == "mulaw8" and len(a) == len(b) == e.length
        assert np.abs(a - b).max() < 0.02
    ds = windows.CropDataset(again, 512, ["a", "b"])
    assert ds[0][0].shape == (512,)
