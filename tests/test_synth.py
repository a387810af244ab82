"""The offline synthetic corpus (espeak-ng + mbrola) and the shared phone inventory."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf

from vqcodec.analysis import phones
from vqcodec.analysis.alignments import read_textgrid
from vqcodec.errors import MissingToolError, VqcodecError

HAVE_TOOLS = (shutil.which("espeak-ng") is not None and shutil.which("mbrola") is not None
              and all(Path(f"/usr/share/mbrola/{v}/{v}").exists() for v in ("us1", "us2", "en1")))
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="espeak-ng, mbrola or mbrola-us1/us2/en1 not installed")


def test_inventory_and_normalize():
    assert len(phones.PHONES) == 40 and "sil" in phones.PHONES and len(set(phones.PHONES)) == 40
    for lab in ("", " ", "sp", "spn", "sil", "SIL", "_", "<eps>", "pau"):
        assert phones.normalize(lab) == "sil"
    assert phones.normalize("AH0") == "AH" and phones.normalize("ey1") == "EY"
    assert phones.normalize("i:", phones.mbrola_map("en1")) == "IY"
    assert phones.normalize("t_h", phones.mbrola_map("us1")) == "T"
    assert phones.normalize("r=", phones.mbrola_map("us2")) == "ER"
    assert phones.normalize("{", phones.mbrola_map("us1", {"{": "EH"})) == "EH"
    with pytest.raises(VqcodecError):
        phones.normalize("XX", strict=True)
    with pytest.raises(VqcodecError):
        phones.mbrola_map("fr1")
    for m in phones.MBROLA_MAPS.values():
        assert set(m.values()) <= set(phones.PHONES)


def test_clean_sentence():
    from vqcodec.data.synth import clean_sentence
    assert clean_sentence("the cat sat on the mat") == "The cat sat on the mat."
    assert clean_sentence("Too short.") is None
    assert clean_sentence("There were 12 apples on the table.") is None
    assert clean_sentence("Caf\u00e9 au lait is what I drink.") is None
    assert clean_sentence(" ".join(["word"] * 26)) is None


def test_missing_tool(monkeypatch):
    from vqcodec.data import synth
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match="apt-get install espeak-ng"):
        synth.check_tools()
    monkeypatch.setattr(synth, "MBROLA_DIR", Path("/nonexistent"))
    monkeypatch.setattr(synth.shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(MissingToolError, match="mbrola-us1"):
        synth.check_tools(["us1"])


def test_default_voices_exclude_us3():
    from vqcodec.data import synth
    assert "us3" not in synth.DEFAULT_VOICES
    assert all(synth.SPEAKERS[v].voice != "us3" for v in synth.DEFAULT_VOICES)
    assert len(synth.DEFAULT_VOICES) >= 6
    with pytest.raises(VqcodecError, match="unknown synthetic speaker"):
        synth.get_speaker("nobody")


@needs_tools
def test_every_mbrola_label_maps():
    from vqcodec.data import synth
    text = ("The quick brown fox jumps over the lazy dog. Thinking about measure, judge, church, "
            "water, better, butter. Hear the air near the pure cure; a bottle of fuel.")
    for name in ("us1", "en1"):
        rows = synth.pho(synth.get_speaker(name), text)
        mapping = phones.mbrola_map(name)
        for p, _, _ in rows:
            assert phones.normalize(p, mapping, strict=True) in phones.PHONES


@needs_tools
def test_synth_small_corpus(tmp_path):
    from vqcodec.data import synth
    a, b = tmp_path / "a", tmp_path / "b"
    sa = synth.synthesize(a, hours=0.01, seed=5, jobs=2, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    speakers = {p.parts[0] for p in files}
    assert len(speakers) >= 3 and "us3" not in speakers
    assert sa["seconds"] >= 0.01 * 3600 * 0.9
    wavs = [p for p in files if p.suffix == ".wav"]
    assert wavs and all((a / p.with_suffix(".TextGrid")).exists() and (a / p.with_suffix(".txt")).exists()
                        for p in wavs)
    for p in wavs:
        info = sf.info(str(a / p))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        ivs = read_textgrid(a / p.with_suffix(".TextGrid"), "phones")
        assert abs(ivs[-1].end - info.frames / 16000) <= 0.010
        assert ivs[0].start == 0
        assert all(x.end == y.start for x, y in zip(ivs, ivs[1:]))
        assert all(iv.label in phones.PHONES for iv in ivs)
        assert sum(iv.label != "sil" for iv in ivs) >= 5
    # deterministic: a second run with the same seed writes byte-identical files
    synth.synthesize(b, hours=0.01, seed=5, jobs=1, progress=False)
    assert sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) == files
    for p in files:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p
    # resumable: an existing utterance is not rewritten, a deleted one comes back
    first = a / wavs[0]
    mtime = first.stat().st_mtime_ns
    (a / wavs[1]).unlink()
    synth.synthesize(a, hours=0.01, seed=5, jobs=1, progress=False)
    assert first.stat().st_mtime_ns == mtime and (a / wavs[1]).exists()
    assert (a / wavs[1]).read_bytes() == (b / wavs[1]).read_bytes()


@needs_tools
@pytest.mark.skipif(not Path("/usr/share/mbrola/us3/us3").exists(), reason="mbrola-us3 not installed")
def test_heldout_voice_and_text(tmp_path):
    from vqcodec.data import synth
    s = synth.synthesize(tmp_path, hours=0.002, voices=["us3"], text="heldout", progress=False, jobs=1)
    assert s["speakers"] == ["us3"]
    txts = list((tmp_path / "us3").glob("*.txt"))
    assert txts and all(synth.is_heldout_text(t.read_text().strip()) for t in txts)


HAVE_ESPEAK = shutil.which("espeak-ng") is not None


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng not installed")
def test_espeak_voices_have_exact_timing_and_mapped_labels(tmp_path):
    """espeak-ng formant voices: phone rows from the library's phoneme events cover the audio,
    every label maps into the shared inventory, synthesis is reproducible call after call (the
    library itself is not: each call runs in a fresh child process), corpora are deterministic."""
    from vqcodec.data import espeak, synth

    assert espeak.has_voice("en-us+m3") and not espeak.has_voice("en-us+nosuchvariant")
    assert not espeak.has_voice("xx-nosuchlanguage")
    text = ("The quick brown fox jumps over the lazy dog. Thinking about measure, judge, church, "
            "water, better, butter. Hear the air near the pure cure; a bottle of fuel.")
    for name in synth.ESPEAK_VOICES:
        spk = synth.get_speaker(name)
        rows = synth.pho(spk, text)
        wav = synth.render(spk, rows, text)
        assert abs(sum(d for _, d, _ in rows) / 1000 - len(wav) / 16000) <= 0.010
        ivs = synth.phone_intervals(spk, rows, len(wav))
        labels = [iv.label for iv in ivs]
        assert all(lab in phones.PHONES for lab in labels)
        assert sum(lab != "sil" for lab in labels) >= 40 and {"DH", "K", "W", "F", "JH", "CH"} <= set(labels)
    first = espeak.synthesize("en-us+m3", text)
    again = espeak.synthesize("en-us+m3", text)
    assert (first[0] == again[0]).all() and first[2] == again[2]

    a, b = tmp_path / "a", tmp_path / "b"
    synth.synthesize(a, hours=0.006, voices=list(synth.ESPEAK_VOICES), seed=3, jobs=2, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {p.parts[0] for p in files} == set(synth.ESPEAK_VOICES)
    for p in (p for p in files if p.suffix == ".wav"):
        info = sf.info(str(a / p))
        ivs = read_textgrid(a / p.with_suffix(".TextGrid"), "phones")
        assert info.samplerate == 16000 and abs(ivs[-1].end - info.frames / 16000) <= 0.010
    synth.synthesize(b, hours=0.006, voices=list(synth.ESPEAK_VOICES), seed=3, jobs=1, progress=False)
    for p in files:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p
