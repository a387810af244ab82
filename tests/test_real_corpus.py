"""`vqcodec corpus real`: tiny .deb packages built here with dpkg-deb stand in for Debian's (no network).

apt-get is replaced by a script on PATH, so a missing package is a real `apt-get download` failure
without touching the archive. VQCODEC_NETWORK_TESTS=1 adds one test with the real download.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from vqcodec.cli import cli
from vqcodec.data import real
from vqcodec.data.corpora import load_corpus

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (G.722)")

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: CC-BY-SA-3.0

Files: it-*
Copyright: someone else
License: CC-BY-3.0

Files: debian/*
Copyright: packager
License: GPL-2+
"""


def voiced(seconds: float, sr: int, f0: float = 140.0, top: float = 7600.0, seed: int = 0,
           pauses: float | None = None) -> np.ndarray:
    """Speech-like test signal: harmonics of f0 up to `top` Hz, in 0.2 s syllables, with
    optional 0.6 s pauses every `pauses` seconds; 0.1 s of silence at both ends."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) / k
            for k in range(1, int(min(top, 0.45 * sr) / f0) + 1))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 5 * t)
    gate = np.ones(n)
    if pauses:
        gate[(t % pauses) > pauses - 0.6] = 0.0
    gate[(t < 0.1) | (t > seconds - 0.1)] = 0.0
    ramp = np.hanning(int(0.04 * sr))        # smooth edges: no clicks spreading energy to high bands
    env = env * np.convolve(gate, ramp / ramp.sum(), mode="same")
    x = 0.3 * x * env / np.max(np.abs(x))
    return x.astype(np.float32)


def ogg(path: Path, wav: np.ndarray, sr: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr, format="OGG", subtype="VORBIS")
    return path


def g722(path: Path, wav: np.ndarray, tmp: Path) -> Path:
    src = tmp / "g722_src.wav"
    sf.write(str(src), wav, 16000, subtype="PCM_16")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-ar", "16000", "-f", "g722", str(path)], check=True)
    return path


def make_deb(deb_dir: Path, work: Path, package: str, files: dict[str, object], copyright: str = DEP5,
             version: str = "1.0-1") -> Path:
    """Build PACKAGE_VERSION_all.deb in deb_dir; `files` maps paths to bytes, str, or a callable(path)."""
    root = work / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(textwrap.dedent(f"""\
        Package: {package}
        Version: {version}
        Architecture: all
        Maintainer: test <t@example.org>
        Description: test package
        """))
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    deb_dir.mkdir(parents=True, exist_ok=True)
    deb = deb_dir / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """apt-get on PATH that copies .deb files from tmp_path/archive (or fails like a missing package)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "apt-get"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        [ "$1" = download ] || exit 2
        shift
        for p in "$@"; do
          f=$(ls {archive}/"$p"_*.deb 2>/dev/null | head -1)
          if [ -z "$f" ]; then echo "E: Unable to locate package $p" >&2; exit 100; fi
          cp "$f" .
        done
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return archive


def run(args, **kw):
    result = CliRunner().invoke(cli, ["corpus", "real", *args], **kw)
    return result


def manifest(out: Path) -> list[dict]:
    return real.read_rows(out / "MANIFEST.tsv")


def no_temp_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def asterisk_debs(deb_dir: Path, tmp: Path, lang: str = "it"):
    voice = {"it": "it_IT_m_Carlo", "en": "en_US_f_Allison"}[lang]
    base = f"usr/share/asterisk/sounds/{voice}"
    make_deb(deb_dir, tmp, f"asterisk-core-sounds-{lang}-g722", {
        f"{base}/hello.g722": lambda p: g722(p, voiced(1.5, 16000, seed=1), tmp),
        f"{base}/digits/1.g722": lambda p: g722(p, voiced(0.9, 16000, seed=2), tmp),
        f"{base}/beep.g722": lambda p: g722(p, voiced(0.8, 16000, f0=1000, seed=3), tmp),
        f"{base}/silence/1.g722": lambda p: g722(p, np.zeros(16000, np.float32), tmp),
    })
    table = ("; Core Asterisk Sounds\n\nhello: Buongiorno a tutti.\ndigits/1: uno\nbeep: (beep)\n"
             "silence/1: (1 secondo di silenzio)\n")
    make_deb(deb_dir, tmp, f"asterisk-core-sounds-{lang}", {
        f"usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz": gzip.compress(table.encode()),
    })


@needs_ffmpeg
def test_g722_package_builds_generic_layout_with_transcripts_and_licence(tmp_path):
    debs = tmp_path / "debs"
    asterisk_debs(debs, tmp_path)
    out = tmp_path / "out"
    r = run([str(out), "--packages", "asterisk-core-sounds-it-g722", "--deb-dir", str(debs), "--workers", "1",
             "--no-speaker-check"])
    assert r.exit_code == 0, r.output
    wavs = sorted((out / "ast_it").glob("*.wav"))
    assert [w.stem for w in wavs] == ["digits_1", "hello"]
    for w in wavs:
        info = sf.info(str(w))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 0.5 <= info.duration < 1.5    # leading/trailing silence trimmed
    assert (out / "ast_it/hello.txt").read_text().strip() == "Buongiorno a tutti."
    rows = {Path(r["source_path"]).name: r for r in manifest(out)}
    assert rows["beep.g722"]["status"] == "rejected" and "not speech" in rows["beep.g722"]["reason"]
    assert "1.g722" in rows and rows["1.g722"]["utt"] == "ast_it/digits_1.wav"   # silence/ is skipped: not listed
    assert rows["hello.g722"]["license"] == "CC-BY-3.0"          # the it-* stanza, not Files: *
    assert rows["hello.g722"]["source_sr"] == "16000" and rows["hello.g722"]["transcript"] == "yes"
    assert rows["hello.g722"]["version"] == "1.0-1"
    utts = load_corpus("folders", out)        # the training reader sees exactly the kept clips
    assert sorted(u.utt_id for u in utts) == ["digits_1", "hello"] and {u.speaker for u in utts} == {"ast_it"}
    assert "asterisk-core-sounds-it-g722" in (out / "README.md").read_text()
    assert no_temp_files(out)


@pytest.mark.parametrize("package", ["asterisk-core-sounds-en-g722", "asterisk-core-sounds-en",
                                     "asterisk-core-sounds-es-wav", "asterisk-core-sounds-es-gsm"])
def test_evaluation_voice_is_refused_for_training(tmp_path, package):
    out = tmp_path / "out"
    r = run([str(out), "--packages", f"festvox-ru,{package}", "--deb-dir", str(tmp_path)])
    assert r.exit_code == 1
    assert "refusing" in r.output and package in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()
    assert real.refused(package) and not real.refused("asterisk-core-sounds-fr-g722")


@needs_ffmpeg
def test_eval_writes_only_the_evaluation_voice(tmp_path):
    debs = tmp_path / "debs"
    asterisk_debs(debs, tmp_path, "en")
    asterisk_debs(debs, tmp_path / "it", "it")   # present in the folder, must not be used
    out = tmp_path / "out"
    r = run([str(out), "--eval", "--deb-dir", str(debs), "--workers", "1", "--no-speaker-check"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["MANIFEST.tsv", "README.md", "eval_en"]
    assert [p.name for p in (out / "eval_en").iterdir()] == ["ast_en"]
    assert {r["package"] for r in manifest(out)} == {"asterisk-core-sounds-en-g722"}
    assert run([str(out), "--eval", "--packages", "festvox-ru"]).exit_code == 1


def tux_deb(debs: Path, tmp: Path):
    base = "usr/share/tuxpaint/stamps/animals"
    wide = voiced(1.2, 44100, seed=4)
    make_deb(debs, tmp, "tuxpaint-stamps-default", {
        f"{base}/frog.txt": "A frog.\nfr.utf8=Une grenouille.\nru.utf8=Жаба.\n",
        f"{base}/frog_desc_fr.ogg": lambda p: ogg(p, wide, 44100),
        f"{base}/frog_desc_ru.ogg": lambda p: ogg(p, voiced(1.0, 44100, f0=210, seed=5), 44100),
        f"{base}/frog_desc.ogg": lambda p: ogg(p, voiced(1.0, 44100, f0=120, seed=6), 44100),
        f"{base}/toad_desc_fr.ogg": lambda p: p.write_bytes((tmp / "build-tuxpaint-stamps-default" / base /
                                                              "frog_desc_fr.ogg").read_bytes()),   # same file again
        f"{base}/cat_desc_fr.ogg": b"OggS" + bytes(range(256)) * 4,        # corrupt
        f"{base}/owl_desc_fr.ogg": lambda p: ogg(p, voiced(1.0, 22050, top=3800, seed=7), 22050),  # band-limited
        f"{base}/bee_desc_fr.ogg": lambda p: ogg(p, voiced(1.0, 8000, seed=8), 8000),             # 8 kHz source
        f"{base}/ant_desc_fr.ogg": lambda p: ogg(p, voiced(0.45, 44100, seed=9), 44100),          # too short
        f"{base}/frog.ogg": lambda p: ogg(p, wide, 44100),                  # a sound effect, not a description
    }, copyright="Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                 "Files: *\nCopyright: x\nLicense: GPL-2\n")


def test_missing_package_and_corrupt_file_are_reported_and_the_rest_is_built(tmp_path, fake_apt):
    debs = tmp_path / "debs"
    tux_deb(debs, tmp_path)
    out = tmp_path / "out"
    r = run([str(out), "--packages", "no-such-package-xyz,tuxpaint-stamps-default", "--deb-dir", str(debs),
             "--workers", "1", "--no-speaker-check"])
    assert r.exit_code == 1
    assert "no-such-package-xyz: apt-get download failed (E: Unable to locate package no-such-package-xyz)" in r.output
    assert "cat_desc_fr.ogg: unreadable" in r.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")) == \
        ["tux_en", "tux_fr", "tux_ru"]
    assert (out / "tux_fr/animals_frog.txt").read_text().strip() == "Une grenouille."
    assert (out / "tux_en/animals_frog.txt").read_text().strip() == "A frog."
    why = {Path(r["source_path"]).name: r["reason"] for r in manifest(out) if r["status"] == "rejected"}
    assert why["toad_desc_fr.ogg"].startswith("duplicate of ") and why["toad_desc_fr.ogg"].endswith("frog_desc_fr.ogg")
    assert why["cat_desc_fr.ogg"].startswith("unreadable")
    assert why["owl_desc_fr.ogg"].startswith("no energy above 5.5 kHz")
    assert why["bee_desc_fr.ogg"] == "narrowband source (8000 Hz)"
    assert why["ant_desc_fr.ogg"] == "shorter than 0.5 s"
    assert "frog.ogg" not in why and not (out / "tux_fr/animals_frog~2.wav").exists()
    readme = (out / "README.md").read_text()
    assert "no-such-package-xyz" in readme and "| tuxpaint-stamps-default | 1.0-1 | GPL-2 | 3 | 3 |" in readme
    assert no_temp_files(out)
    # issue 21 item 7: stderr is not a terminal here: plain progress lines, no tqdm redraws
    assert "\r" not in r.output and "tuxpaint-stamps-default: 0/" in r.output, r.output


def test_download_resume_and_max_minutes(tmp_path, fake_apt):
    tux_deb(fake_apt, tmp_path)              # only in the "archive": fetched with apt-get download
    debs, out = tmp_path / "debs", tmp_path / "out"
    args = [str(out), "--packages", "tuxpaint-stamps-default", "--deb-dir", str(debs), "--workers", "1",
            "--no-speaker-check"]
    assert run(args).exit_code == 1          # the corrupt file
    assert list(debs.glob("tuxpaint-stamps-default_*.deb"))
    first = (out / "MANIFEST.tsv").read_text()
    wav = out / "tux_fr/animals_frog.wav"
    stamp = wav.stat().st_mtime_ns
    again = run(args)
    assert "already built, skipped" in again.output
    assert wav.stat().st_mtime_ns == stamp and (out / "MANIFEST.tsv").read_text() == first
    # a limit builds again (not the same build), and keeps at most about that much per package
    small = tmp_path / "small"
    r = run([str(small), *args[1:], "--max-minutes", "0.01"])
    kept = [r for r in manifest(small) if r["status"] == "kept"]
    assert len(kept) == 1 and float(kept[0]["seconds"]) > 0.5


def test_other_package_is_one_speaker_and_a_package_without_speech_is_reported(tmp_path):
    debs = tmp_path / "debs"
    make_deb(debs, tmp_path, "foo-voice-data", {
        "usr/share/foo/sounds/hello.wav": lambda p: sf.write(str(p), voiced(1.0, 16000, seed=1), 16000),
        "usr/share/foo/sounds/stereo.wav": lambda p: sf.write(str(p), np.stack([voiced(1.0, 48000, seed=2)] * 2, 1),
                                                              48000, subtype="PCM_24"),
    })
    make_deb(debs, tmp_path, "foo-doc", {"usr/share/foo-doc/README": "no audio here\n"})
    out = tmp_path / "out"
    r = run([str(out), "--packages", "foo-doc,foo-voice-data", "--deb-dir", str(debs), "--workers", "1",
             "--no-speaker-check"])
    assert r.exit_code == 1 and "foo-doc: no speech files found in the package" in r.output
    assert sorted(p.name for p in (out / "foo-voice").iterdir()) == ["foo_sounds_hello.wav", "foo_sounds_stereo.wav"]
    info = sf.info(str(out / "foo-voice/foo_sounds_stereo.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert {r["source_sr"] for r in manifest(out)} == {"16000", "48000"}


def test_fillets_speakers_come_from_the_dialog_fonts(tmp_path):
    debs = tmp_path / "debs"
    snd = "usr/share/games/fillets-ng/sound/city/cs"
    make_deb(debs, tmp_path, "fillets-ng-data-cs", {
        f"{snd}/vit-hs-klid1.ogg": lambda p: ogg(p, voiced(1.0, 22050, f0=100, seed=1), 22050),
        f"{snd}/vit-m-hlava.ogg": lambda p: ogg(p, voiced(1.0, 22050, f0=250, seed=2), 22050),
        f"{snd}/vit-x-oba.ogg": lambda p: ogg(p, voiced(1.0, 22050, f0=180, seed=3), 22050),
        f"{snd}/vit-q-neznamy.ogg": lambda p: ogg(p, voiced(1.0, 22050, f0=180, seed=4), 22050),
    }, copyright="Upstream: x\nThe full text of the GPL is in `/usr/share/common-licenses/GPL-2'.\n")
    make_deb(debs, tmp_path, "fillets-ng-data", {
        "usr/share/games/fillets-ng/script/city/dialogs_cs.lua":
            '\ndialogId("vit-hs-klid1", "font_statue", "Citizens, please remain calm.")\n'
            'dialogStr("Občané. Zachovejte klid.")\n\n'
            'dialogId("vit-m-hlava", "font_small", "My head.")\ndialogStr("Moje hlava.")\n\n'
            'dialogId("vit-x-oba", "font_both", "Both.")\ndialogStr("Oba.")\n',
    })
    out = tmp_path / "out"
    r = run([str(out), "--packages", "fillets-ng-data-cs", "--deb-dir", str(debs), "--workers", "1",
             "--no-speaker-check"])
    assert r.exit_code == 0, r.output
    assert (out / "fillets_cs_city_statue/city_vit-hs-klid1.txt").read_text().strip() == "Občané. Zachovejte klid."
    assert (out / "fillets_cs_small/city_vit-m-hlava.wav").exists()
    assert (out / "fillets_cs_city/city_vit-q-neznamy.wav").exists()     # no dialog entry: the level's folder
    rows = {Path(r["source_path"]).stem: r for r in manifest(out)}
    assert rows["vit-x-oba"]["status"] == "rejected" and "two voices" in rows["vit-x-oba"]["reason"]
    assert rows["vit-hs-klid1"]["speaker_from"] == "dialog font font_statue in dialogs_cs.lua"
    assert rows["vit-hs-klid1"]["license"] == "GPL-2"


def test_split_at_pauses_keeps_pieces_under_15_s():
    wav = voiced(40.0, 16000, pauses=4.0)
    pieces = real.split_at_pauses(wav)
    assert len(pieces) >= 3 and all(0.5 * 16000 < len(p) <= 15 * 16000 for p in pieces)
    assert sum(len(p) for p in pieces) > 0.75 * len(wav)        # only pauses are lost
    for p in pieces:                                           # cuts fall in pauses: ends are quiet
        assert np.abs(p[:200]).max() < 0.05 and np.abs(p[-200:]).max() < 0.05
    assert real.split_at_pauses(np.zeros(16000, np.float32)) == []
    tone = np.zeros(4 * 16000, np.float32)
    tone[16000:32000] = tone[48000:56000] = 0.3
    edges = real.nonsilent_intervals(tone) / 16000            # librosa.effects.split's rule: +-1 frame
    assert edges.shape == (2, 2) and np.allclose(edges, [[1, 2], [3, 3.5]], atol=0.07)


def test_highband_check_separates_wideband_from_band_limited():
    import librosa
    wide = voiced(1.0, 16000)
    narrow = librosa.resample(librosa.resample(wide, orig_sr=16000, target_sr=8000), orig_sr=8000, target_sr=16000)
    assert real.highband_db(wide) > real.HIGHBAND_MIN_DB + 20
    assert real.highband_db(narrow) < real.HIGHBAND_MIN_DB


def test_license_for_dep5_and_free_form():
    gcin = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: */3.ogg\n       README\nCopyright: a\nLicense: GPL-3 or LGPL-3\n\n"
            "Files: */5.ogg\nCopyright: b\nLicense: CC-BY-3\n\nFiles: debian/*\nCopyright: c\nLicense: GPL-3\n")
    assert real.license_for(gcin, "usr/share/gcin-voice/ogg/ba/3.ogg") == "GPL-3 or LGPL-3"
    assert real.license_for(gcin, "usr/share/gcin-voice/ogg/ba/5.ogg") == "CC-BY-3"
    assert real.license_for(DEP5, "usr/share/x/fr_CA/hello.g722", "fr-hello.g722") == "CC-BY-SA-3.0"
    assert real.license_for(DEP5, "usr/share/x/it_IT/hello.g722", "it-hello.g722") == "CC-BY-3.0"
    assert real.license_for("free text, see /usr/share/common-licenses/GPL-2 for details", "a/b.ogg") == "GPL-2"


def test_speaker_check_tells_folders_apart(tmp_path):
    pytest.importorskip("resemblyzer")
    rows = []
    for spk, f0 in (("low", 95.0), ("high", 260.0)):
        for i in range(4):
            p = tmp_path / spk / f"u{i}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(str(p), voiced(1.5, 16000, f0=f0 * (1 + 0.03 * i), seed=i), 16000)
            rows.append({"status": "kept", "seconds": "1.5", "speaker": spk, "utt": f"{spk}/u{i}.wav",
                         "package": "p", "version": "1", "license": "x", "transcript": "no", "reason": "",
                         "speaker_from": "folder"})
    sim = real.speaker_check(tmp_path, rows)
    assert sim["speakers"] == 2 and sim["clips"] == 8
    assert sim["within"] > sim["between"]
    assert "within a folder" in real.corpus_readme(rows, sim, [])


def test_help_has_examples():
    r = CliRunner().invoke(cli, ["corpus", "real", "--help"])
    assert r.exit_code == 0 and "Examples:" in r.output and "--deb-dir" in r.output
    listed = CliRunner().invoke(cli, ["corpus", "real", "--list"]).output.splitlines()
    assert [l.split()[0] for l in listed[:-1]] == list(real.DEFAULT_PACKAGES)
    assert not any(real.refused(p) for p in real.DEFAULT_PACKAGES) and "asterisk-core-sounds-en-g722" in listed[-1]


@pytest.mark.skipif(os.environ.get("VQCODEC_NETWORK_TESTS") != "1", reason="set VQCODEC_NETWORK_TESTS=1 (downloads)")
def test_real_download_of_one_package(tmp_path):
    out = tmp_path / "r"
    r = run([str(out), "--packages", "asterisk-core-sounds-it-g722", "--max-minutes", "2", "--no-speaker-check"])
    assert r.exit_code == 0, r.output
    kept = [r for r in manifest(out) if r["status"] == "kept"]
    assert 110 <= sum(float(r["seconds"]) for r in kept) < 140 and {r["speaker"] for r in kept} == {"ast_it"}
    assert sum(r["transcript"] == "yes" for r in kept) > len(kept) / 2
