"""`vqcodec corpus real`: real recorded voices from Debian packages, rebuilt offline on the user's machine.

Each package is fetched with `apt-get download` (or reused from a .deb folder), unpacked with
`dpkg-deb -x`, and a per-package *finder* lists its speech files with a speaker (from the
package's structure: voice folder, locale, game role) and a transcript where the package has one.
Every file is then decoded (soundfile; ffmpeg for raw G.722 and what libsndfile cannot read),
mixed to mono, resampled to 16 kHz (soxr), trimmed of leading/trailing silence, split at pauses
when longer than 15 s, checked for wideband content, and written as OUT/SPEAKER/UTT.wav
(+ UTT.txt): the generic layout `vqcodec.data.corpora.folders` reads.

Bookkeeping: OUT/.real/PACKAGE.tsv (manifest rows) and PACKAGE.done (written last, the resume
marker); OUT/MANIFEST.tsv and OUT/README.md are written (atomically) at the end of a run.
The asterisk-core-sounds-en*/es* voice is the real-speech evaluation set and is refused for
training (`--eval` writes it alone, under OUT/eval_en/).
"""
from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MissingToolError, VqcodecError
from ..files import atomic_path, remove_stale_temps, walk

SAMPLE_RATE = 16000
MAX_SECONDS = 15.0        # longer files are split at pauses
MIN_SECONDS = 0.5         # shorter clips (after trimming) are dropped
TOP_DB = 40.0             # silence = this far below the clip's loudest frame (librosa trim/split)
NARROWBAND_SR = 11500     # sources sampled below this have nothing above ~5.5 kHz
HIGHBAND_HZ = (5500.0, 7800.0)
# Band energy (5.5-7.8 kHz vs 0-5.5 kHz, loud frames) below which a clip counts as narrowband.
# Measured on 8 random clips per default package: wideband clips -62..-12 dB (fillets-ng-data-nl
# is the dullest), 8 kHz recordings stored at 22 kHz in ktuberling -127..-129 dB.
HIGHBAND_MIN_DB = -75.0

EVAL_PACKAGES = ("asterisk-core-sounds-en-g722",)
EVAL_DIR = "eval_en"
_REFUSED = re.compile(r"^asterisk-core-sounds-(en|es)(\b|-|_|$)")
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".flac", ".mp3", ".g722")
MANIFEST_COLUMNS = ("package", "version", "license", "source_path", "speaker", "utt", "seconds",
                    "source_sr", "transcript", "status", "reason", "speaker_from")


@dataclass(frozen=True)
class Item:
    """One source file to process; `utt` is unique within `speaker`."""
    path: str              # absolute path in the unpacked package
    source_path: str       # path inside the package (manifest)
    speaker: str
    speaker_from: str      # how the speaker was derived (manifest)
    utt: str
    transcript: str | None = None
    reject: str | None = None   # set by the finder for files known not to be speech


@dataclass(frozen=True)
class Source:
    package: str
    finder: Callable[[Path, dict[str, Path]], list[Item]]
    extra: tuple[str, ...] = ()   # packages holding transcripts / speaker tables (optional)
    note: str = ""


# --------------------------------------------------------------------------- finders
def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "utt"


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def _rel(p: Path, root: Path) -> str:
    return str(p.relative_to(root))


def _speech_transcript(text: str | None) -> tuple[str | None, str | None]:
    """(transcript, reject reason): a transcript that is only a bracketed description such as
    "[ascending tones]" or "(beep)" marks a sound effect, not speech."""
    if text is None:
        return None, None
    text = text.strip()
    if not text:
        return None, None
    if re.fullmatch(r"[\[(][^\])]*[\])]\.?", text):
        return None, f"not speech (transcript {text[:40]!r})"
    return text, None


def asterisk_finder(lang: str, speaker: str):
    def find(root: Path, extra: dict[str, Path]) -> list[Item]:
        texts: dict[str, str] = {}
        tp = extra.get(f"asterisk-core-sounds-{lang}")
        if tp is not None:
            import gzip
            for f in _files(tp, f"usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt*"):
                raw = gzip.open(f, "rt", encoding="utf-8", errors="replace") if f.suffix == ".gz" else open(f, encoding="utf-8", errors="replace")
                with raw:
                    for line in raw:
                        if line.startswith(";") or ":" not in line:
                            continue
                        key, text = line.split(":", 1)
                        texts[key.strip()] = text.strip()
        items = []
        for f in _files(root, "usr/share/asterisk/sounds/*/**/*.g722"):
            voice_dir = f.relative_to(root).parts[4]
            key = "/".join(f.relative_to(root).parts[5:])[: -len(".g722")]
            if key.startswith("silence/"):
                continue
            text, reject = _speech_transcript(texts.get(key))
            items.append(Item(str(f), _rel(f, root), speaker, f"one voice per package ({voice_dir})",
                              _safe(key.replace("/", "_")), text, reject))
        return items
    return find


def festvox_ru(root: Path, extra: dict[str, Path]) -> list[Item]:
    texts = {}
    for f in _files(root, "usr/share/festival/voices/russian/*/etc/txt.done.data"):
        for m in re.finditer(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$', f.read_text(encoding="utf-8", errors="replace"), re.M):
            texts[m.group(1)] = m.group(2).replace("+", "")   # '+' marks stress
    return [Item(str(f), _rel(f, root), "festvox_ru", "one voice per package (msu_ru_nsh)", f.stem,
                 texts.get(f.stem)) for f in _files(root, "usr/share/festival/voices/*/*/wav/*.wav")]


_TUX = re.compile(r"^(?P<stamp>.+?)_desc(?:_(?P<loc>[A-Za-z]{2,3}(?:_[A-Z]{2})?(?:@\w+)?))?\.ogg(?:\.ogg)?$")


def tuxpaint(root: Path, extra: dict[str, Path]) -> list[Item]:
    base = root / "usr/share/tuxpaint/stamps"
    items, text_cache = [], {}
    for f in _files(base, "**/*_desc*.ogg"):
        m = _TUX.match(f.name)
        if not m:
            continue
        loc = m.group("loc") or "en"
        txt = f.with_name(m.group("stamp") + ".txt")
        if txt not in text_cache:
            table = {}
            if txt.exists():
                lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
                if lines and "=" not in lines[0].split(" ")[0]:
                    table["en"] = lines[0].strip()
                for line in lines:
                    mm = re.match(r"^([A-Za-z_@]+)\.utf8=(.*)$", line)
                    if mm:
                        table[mm.group(1)] = mm.group(2).strip()
            text_cache[txt] = table
        rel_stamp = str(f.parent.relative_to(base) / m.group("stamp"))
        items.append(Item(str(f), _rel(f, root), f"tux_{_safe(loc).lower()}",
                          f"locale suffix _desc_{loc} (one volunteer per locale)", _safe(rel_stamp.replace("/", "_")),
                          text_cache[txt].get(loc)))
    return items


def _fillets_dialogs(extra: dict[str, Path], lang: str) -> dict[str, tuple[str, str]]:
    """dialog id (= sound file stem) -> (font = character, text in `lang`) from fillets-ng-data's
    script/LEVEL/dialogs_LANG.lua and script/share/*_dialogs_LANG.lua."""
    out = {}
    data = extra.get("fillets-ng-data")
    if data is None:
        return out
    for f in _files(data, f"usr/share/games/fillets-ng/script/**/*dialogs_{lang}.lua"):
        src = f.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r'dialogId\("([^"]*)",\s*"([^"]*)"[^\n]*\)\s*\n\s*dialogStr\("((?:[^"\\]|\\.)*)"\)', src):
            out.setdefault(m.group(1), (m.group(2), m.group(3).replace('\\"', '"')))
    return out


def fillets_finder(lang: str):
    def find(root: Path, extra: dict[str, Path]) -> list[Item]:
        dialogs = _fillets_dialogs(extra, lang)
        items = []
        base = root / "usr/share/games/fillets-ng/sound"
        for f in _files(base, f"**/{lang}/*.ogg"):
            level = "_".join(f.parent.parent.relative_to(base).parts)
            font, text = dialogs.get(f.stem, (None, None))
            reject = None
            if font is None:
                role, how = level, "level folder (no dialog entry)"
            else:
                role = font[len("font_"):] if font.startswith("font_") else font
                how = f"dialog font {font or '(none)'} in dialogs_{lang}.lua"
                if role in ("small", "big"):    # the two fish speak in every level
                    pass
                elif role == "both":
                    reject = "two voices at once (font_both)"
                else:                            # other characters belong to their level
                    role = f"{level}_{role}" if role else level
            items.append(Item(str(f), _rel(f, root), f"fillets_{lang}_{_safe(role)}", how,
                              _safe(f"{level}_{f.stem}"), text or None, reject))
        return items
    return find


def klettres(root: Path, extra: dict[str, Path]) -> list[Item]:
    base = root / "usr/share/klettres"
    names = {}
    for xml in _files(base, "*/sounds.xml"):
        try:
            tree = ET.parse(xml)
            for s in tree.iter("sound"):
                if s.get("file") and s.get("name"):
                    names[s.get("file")] = s.get("name")
        except ET.ParseError:
            for m in re.finditer(r'<sound\s+name="([^"]*)"\s+file="([^"]*)"', xml.read_text(errors="replace")):
                names[m.group(2)] = m.group(1)
    items = []
    for f in _files(base, "*/*/*.ogg"):
        loc = f.relative_to(base).parts[0]
        items.append(Item(str(f), _rel(f, root), f"klettres_{_safe(loc).lower()}", "language folder (one voice each)",
                          _safe(f"{f.parent.name}_{f.stem}"), names.get(str(f.relative_to(base)))))
    return items


def ktuberling(root: Path, extra: dict[str, Path]) -> list[Item]:
    base = root / "usr/share/ktuberling/sounds"
    # sr, sr@latin, sr@ijekavian...: one language, one voice (identical files are dropped as duplicates)
    return [Item(str(f), _rel(f, root), f"ktub_{_safe(f.parent.name.split('@')[0]).lower()}", "language folder (one voice each)",
                 _safe(f.stem)) for f in sorted(p for p in base.glob("*/*") if p.suffix in (".wav", ".ogg", ".opus"))]


def gcin_voice(root: Path, extra: dict[str, Path]) -> list[Item]:
    # Debian's copyright file: */3.ogg and */5.ogg are two different recordings (voices).
    return [Item(str(f), _rel(f, root), f"gcin_{f.stem}", "file name 3.ogg / 5.ogg (two recorded voices)",
                 _safe(f.parent.name), f.parent.name)
            for f in _files(root, "usr/share/gcin-voice/ogg/*/*.ogg")]


def hedgewars(root: Path, extra: dict[str, Path]) -> list[Item]:
    return [Item(str(f), _rel(f, root), f"hw_{_safe(f.parent.name).lower()}", "voice pack folder",
                 _safe(f.stem)) for f in _files(root, "usr/share/games/hedgewars/Data/Sounds/voices/*/*.ogg")]


def generic_finder(package: str):
    """Any package outside the default set: every audio file under usr/share, one speaker."""
    short = _safe(re.sub(r"-(data|voice|sounds?)$", "", package)).lower()[:24]

    def find(root: Path, extra: dict[str, Path]) -> list[Item]:
        files = walk(root / "usr/share", AUDIO_SUFFIXES)
        return [Item(str(f), _rel(f, root), short, "package (no voice structure known)",
                     _safe(str(f.relative_to(root / "usr/share").with_suffix("")).replace("/", "_"))) for f in files]
    return find


SOURCES: dict[str, Source] = {s.package: s for s in [
    Source("asterisk-core-sounds-fr-g722", asterisk_finder("fr", "ast_fr"), ("asterisk-core-sounds-fr",)),
    Source("asterisk-core-sounds-it-g722", asterisk_finder("it", "ast_it"), ("asterisk-core-sounds-it",)),
    Source("asterisk-core-sounds-ru-g722", asterisk_finder("ru", "ast_ru"), ("asterisk-core-sounds-ru",)),
    Source("festvox-ru", festvox_ru),
    Source("tuxpaint-stamps-default", tuxpaint),
    Source("fillets-ng-data-cs", fillets_finder("cs"), ("fillets-ng-data",)),
    Source("fillets-ng-data-nl", fillets_finder("nl"), ("fillets-ng-data",)),
    Source("klettres-data", klettres),
    Source("ktuberling-data", ktuberling),
    Source("gcin-voice", gcin_voice),
    Source("hedgewars-data", hedgewars),
]}
DEFAULT_PACKAGES = tuple(SOURCES)
EVAL_SOURCES = {"asterisk-core-sounds-en-g722": Source(
    "asterisk-core-sounds-en-g722", asterisk_finder("en", "ast_en"), ("asterisk-core-sounds-en",))}


def refused(package: str) -> bool:
    """asterisk-core-sounds-en*/es* are the held-out evaluation voice: never training data."""
    return bool(_REFUSED.match(package))


# --------------------------------------------------------------------------- licences
def _license_table(copyright_text: str):
    """DEP-5 copyright file -> [(patterns, license)] in file order, or None if not DEP-5."""
    if not re.match(r"^Format:\s*\S*copyright-format", copyright_text):
        return None
    table = []
    for para in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:\s*(.*(?:\n[ \t]+.*)*)", para, re.M)
        lic = re.search(r"^License:\s*(.*)$", para, re.M)
        if files and lic:
            table.append((files.group(1).split(), lic.group(1).strip()))
    return table


def license_for(copyright_text: str, source_path: str, key: str | None = None) -> str:
    """The licence of one file: the last DEP-5 `Files:` stanza whose pattern matches the file's
    path (or a suffix of it, since Debian paths are source paths), else `Files: *`; for
    free-form copyright files the licences named under /usr/share/common-licenses."""
    table = _license_table(copyright_text)
    if table is None:
        names = sorted(set(re.findall(r"common-licenses/([A-Za-z0-9+-]+(?:\.[0-9]+)?)", copyright_text)))
        return ", ".join(names) or "see copyright file"
    parts = source_path.split("/")
    candidates = ["/".join(parts[i:]) for i in range(len(parts))] + ([key] if key else [])
    found = None
    for patterns, lic in table:
        if any(fnmatch.fnmatchcase(c, p) for p in patterns for c in candidates):
            found = lic
    return found or "see copyright file"


def _license_key(package: str, source_path: str) -> str | None:
    m = re.match(r"asterisk-core-sounds-(\w+)-g722$", package)
    return f"{m.group(1)}-{Path(source_path).name}" if m else None   # stanzas are "fr-*", "it-*"


# --------------------------------------------------------------------------- audio processing
def _decode(path: str) -> tuple[np.ndarray, int]:
    """(float32 samples x channels, source rate). soundfile first; ffmpeg for raw G.722 and the rest."""
    import soundfile as sf
    if not path.endswith(".g722"):
        try:
            wav, sr = sf.read(path, dtype="float32", always_2d=True)
            return wav, int(sr)
        except Exception:   # libsndfile cannot read it: let ffmpeg try
            pass
    if shutil.which("ffmpeg") is None:
        raise MissingToolError("ffmpeg not found (apt-get install ffmpeg)")
    sr = 16000 if path.endswith(".g722") else None
    if sr is None:
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                                "stream=sample_rate", "-of", "csv=p=0", path], capture_output=True, text=True)
        if probe.returncode != 0 or not probe.stdout.strip().isdigit():
            raise ValueError("not a readable audio file")
        sr = int(probe.stdout.strip())
    cmd = ["ffmpeg", "-nostdin", "-v", "error"] + (["-f", "g722"] if path.endswith(".g722") else []) + \
          ["-i", path, "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise ValueError((r.stderr.decode(errors="replace").strip().splitlines() or ["ffmpeg failed"])[-1][:120])
    return np.frombuffer(r.stdout, dtype=np.float32).reshape(-1, 1), sr


def highband_db(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Energy in 5.5-7.8 kHz relative to 0-5.5 kHz over the clip's loud frames, in dB."""
    n_fft, hop = 512, 256
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(1)
    loud = energy > 0.01 * energy.max() if energy.max() > 0 else np.ones_like(energy, bool)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    hi = power[loud][:, (freqs >= HIGHBAND_HZ[0]) & (freqs < HIGHBAND_HZ[1])].sum()
    lo = power[loud][:, freqs < HIGHBAND_HZ[0]].sum()
    return float(10 * np.log10((hi + 1e-30) / (lo + 1e-30)))


def nonsilent_intervals(wav: np.ndarray, top_db: float = TOP_DB, frame: int = 1024, hop: int = 256) -> np.ndarray:
    """[start, end) sample intervals whose frame RMS is within `top_db` of the loudest frame.

    The rule of librosa.effects.split (centred frames), in numpy: librosa's version costs a
    numba compile of 20-100 s in every fresh worker process.
    """
    if len(wav) == 0:
        return np.zeros((0, 2), dtype=int)
    y = np.pad(wav.astype(np.float64), frame // 2)
    if len(y) < frame:
        y = np.pad(y, (0, frame - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, frame)[::hop]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    ref = max(rms.max(), 1e-10)
    loud = 20 * np.log10(np.maximum(rms, 1e-10) / ref) > -top_db
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    return np.minimum(edges.reshape(-1, 2) * hop, len(wav))


def split_at_pauses(wav: np.ndarray, sr: int = SAMPLE_RATE, max_s: float = MAX_SECONDS,
                    top_db: float = TOP_DB) -> list[np.ndarray]:
    """Trim leading/trailing silence (50 ms kept), then cut pieces of at most `max_s` in the
    middle of pauses; a single stretch of sound longer than `max_s` is cut hard."""
    if len(wav) == 0 or np.abs(wav).max() < 1e-4:    # digital silence (the threshold is relative)
        return []
    intervals = nonsilent_intervals(wav, top_db)
    if len(intervals) == 0:
        return []
    pad = int(0.05 * sr)
    start, end = max(0, intervals[0][0] - pad), min(len(wav), intervals[-1][1] + pad)
    max_n = int(max_s * sr)
    if end - start <= max_n:
        return [wav[start:end]]
    cuts = [(a + b) // 2 for (_, a), (b, _) in zip(intervals[:-1], intervals[1:])]  # mid-pause points
    pieces, s = [], start
    while end - s > max_n:
        inside = [c for c in cuts if s + int(MIN_SECONDS * sr) < c <= s + max_n]
        c = inside[-1] if inside else s + max_n
        pieces.append(wav[s:c])
        s = c
    pieces.append(wav[s:end])
    out = []
    for p in pieces:     # re-trim each piece: cuts sit in pauses
        idx = nonsilent_intervals(p, top_db)
        if len(idx):
            out.append(p[max(0, idx[0][0] - pad): min(len(p), idx[-1][1] + pad)])
    return out


def process_item(item: Item) -> dict:
    """Decode and cut one source file. Returns {'sr', 'clips': [(utt, int16, seconds)],
    'rejects': [(seconds, reason)], 'error': str|None} (nothing is written here)."""
    out = {"sr": 0, "clips": [], "rejects": [], "error": None}
    if item.reject:
        out["rejects"].append((0.0, item.reject))
        return out
    try:
        raw, sr = _decode(item.path)
    except MissingToolError as e:
        out["error"] = str(e)
        return out
    except Exception as e:   # a corrupt file: one line, the rest goes on
        out["error"] = f"unreadable: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
        return out
    out["sr"] = sr
    if raw.size == 0:
        out["rejects"].append((0.0, "empty"))
        return out
    wav = raw.mean(axis=1) if raw.shape[1] > 1 else raw[:, 0]
    if not np.all(np.isfinite(wav)):
        out["error"] = "unreadable: NaN or infinite samples"
        return out
    seconds = len(wav) / sr
    if sr < NARROWBAND_SR:
        out["rejects"].append((seconds, f"narrowband source ({sr} Hz)"))
        return out
    from ..audio import resample
    wav = resample(np.ascontiguousarray(wav, dtype=np.float32), sr, SAMPLE_RATE)
    pieces = split_at_pauses(wav)
    if not pieces:
        out["rejects"].append((seconds, "silent"))
        return out
    multi = len(pieces) > 1
    for k, p in enumerate(pieces):
        secs = len(p) / SAMPLE_RATE
        if secs < MIN_SECONDS:
            out["rejects"].append((secs, f"shorter than {MIN_SECONDS:g} s"))
            continue
        db = highband_db(p)
        if db < HIGHBAND_MIN_DB:
            out["rejects"].append((secs, f"no energy above 5.5 kHz ({db:.0f} dB)"))
            continue
        pcm = (np.clip(p, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        out["clips"].append((f"{item.utt}_{k:02d}" if multi else item.utt, pcm, secs))
    return out


# --------------------------------------------------------------------------- packages
class PackageError(VqcodecError):
    """One package could not be used; the others are still built."""


def _deb_for(package: str, deb_dir: Path, log) -> Path:
    """The package's .deb in deb_dir, fetched with `apt-get download` when missing."""
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise PackageError(f"{package}: not in {deb_dir} and apt-get is not available")
    r = subprocess.run(["apt-get", "download", package], cwd=deb_dir, capture_output=True, text=True)
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not found:
        msg = [l for l in (r.stderr or r.stdout).splitlines() if l.startswith("E:")] or [(r.stderr or "failed").strip()]
        raise PackageError(f"{package}: apt-get download failed ({msg[-1][:160]})")
    return found[-1]


def _unpack(deb: Path, dest: Path) -> tuple[str, str]:
    """dpkg-deb -x; returns (package name, version) from the control fields."""
    if shutil.which("dpkg-deb") is None:
        raise PackageError(f"{deb.name}: dpkg-deb is not available")
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if r.returncode != 0:
        raise PackageError(f"{deb.name}: not a valid .deb ({(r.stderr.strip().splitlines() or ['?'])[-1][:160]})")
    f = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True, text=True)
    fields = dict(line.split(": ", 1) for line in f.stdout.splitlines() if ": " in line)
    return fields.get("Package", deb.name.split("_")[0]), fields.get("Version", "?")


def _copyright(root: Path, package: str) -> str:
    f = root / "usr/share/doc" / package / "copyright"
    return f.read_text(encoding="utf-8", errors="replace") if f.exists() else ""


# --------------------------------------------------------------------------- build
def _write_rows(path: Path, rows: list[dict]):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: str(r.get(k, "")).replace("\t", " ").replace("\n", " ") for k in MANIFEST_COLUMNS})


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _write_text(path: Path, text: str):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_wav(path: Path, pcm: np.ndarray):
    import soundfile as sf
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _mark_duplicates(items: list[Item], root: Path) -> list[Item]:
    """Byte-identical files (e.g. one recording shipped under two locale folders) are kept once."""
    import hashlib
    first, out = {}, []
    for it in items:
        if it.reject is None:
            digest = hashlib.sha1(Path(it.path).read_bytes()).hexdigest()
            if digest in first:
                it = Item(**{**asdict(it), "reject": f"duplicate of {first[digest]}"})
            else:
                first[digest] = it.source_path
        out.append(it)
    return out


def _build_package(source: Source, out_root: Path, state: Path, deb_dir: Path, pool, workers: int,
                   max_minutes: float | None, log, progress: bool) -> list[dict]:
    from ..progress import bar as progress_bar, write

    deb = _deb_for(source.package, deb_dir, log)
    with tempfile.TemporaryDirectory(prefix=f"vqcodec-real-{source.package}-") as tmp:
        root = Path(tmp) / "pkg"
        name, version = _unpack(deb, root)
        extra = {}
        for x in source.extra:
            try:
                extra[x] = Path(tmp) / x
                _unpack(_deb_for(x, deb_dir, log), extra[x])
            except PackageError as e:
                extra.pop(x, None)
                log(f"{source.package}: no transcripts/speaker table ({e})")
        items = source.finder(root, extra)
        if not items:
            raise PackageError(f"{source.package}: no speech files found in the package")
        seen: Counter = Counter()
        unique = []
        for it in items:   # keep (speaker, utt) unique, deterministically
            key = (it.speaker, it.utt)
            seen[key] += 1
            unique.append(it if seen[key] == 1 else Item(**{**asdict(it), "utt": f"{it.utt}~{seen[key]}"}))
        items = _mark_duplicates(unique, root)
        needs_ffmpeg = any(it.path.endswith((".g722", ".mp3")) for it in items)
        if needs_ffmpeg and shutil.which("ffmpeg") is None:
            raise PackageError(f"{source.package}: ffmpeg is needed to decode it and is not installed "
                               "(apt-get install ffmpeg)")
        copyright_text = _copyright(root, name)
        rows, kept_s, errors = [], 0.0, []
        limit = max_minutes * 60 if max_minutes else None
        batch = len(items) if limit is None else max(4 * workers, 8)
        # a tqdm bar on a terminal, a few plain lines in a log (no carriage returns)
        bar = progress_bar(total=len(items), desc=source.package[:28], unit="file", disable=not progress,
                           leave=False)
        done = False
        for b in range(0, len(items), batch):
            chunk = items[b:b + batch]
            results = pool.imap(process_item, chunk, chunksize=4) if pool else map(process_item, chunk)
            for it, res in zip(chunk, results):
                bar.update(1)
                lic = license_for(copyright_text, it.source_path, _license_key(name, it.source_path))
                base = {"package": name, "version": version, "license": lic, "source_path": it.source_path,
                        "speaker": it.speaker, "source_sr": res["sr"], "speaker_from": it.speaker_from}
                if res["error"]:
                    errors.append(f"{name}: {it.source_path}: {res['error']}")
                    write(f"vqcodec: {errors[-1]}")
                    rows.append({**base, "utt": "-", "seconds": "0", "transcript": "no", "status": "rejected",
                                 "reason": res["error"]})
                    continue
                for secs, why in res["rejects"]:
                    rows.append({**base, "utt": "-", "seconds": f"{secs:.3f}", "transcript": "no",
                                 "status": "rejected", "reason": why})
                single = len(res["clips"]) == 1 and not res["rejects"]
                for utt, pcm, secs in res["clips"]:
                    if done:
                        break
                    rel = Path(it.speaker) / f"{utt}.wav"
                    _write_wav(out_root / rel, pcm)
                    has_text = bool(it.transcript) and single
                    txt = (out_root / rel).with_suffix(".txt")
                    if has_text:
                        _write_text(txt, it.transcript.strip() + "\n")
                    elif txt.exists():
                        txt.unlink()
                    rows.append({**base, "utt": str(rel), "seconds": f"{secs:.3f}",
                                 "transcript": "yes" if has_text else "no", "status": "kept", "reason": ""})
                    kept_s += secs
                    if limit is not None and kept_s >= limit:
                        done = True
                if done:
                    break
            if done:
                break
        bar.close()
    _write_rows(state / f"{source.package}.tsv", rows)
    _write_text(state / f"{source.package}.done",
                json.dumps({"package": name, "version": version, "max_minutes": max_minutes,
                            "errors": errors}) + "\n")
    return rows


def _is_done(state: Path, package: str, max_minutes: float | None) -> bool:
    marker = state / f"{package}.done"
    if not marker.exists() or not (state / f"{package}.tsv").exists():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    return info.get("max_minutes") in (None, max_minutes) if max_minutes else info.get("max_minutes") is None


def build(out_dir: str | os.PathLike, packages: list[str] | None = None, *, eval_set: bool = False,
          max_minutes: float | None = None, workers: int | None = None, deb_dir: str | os.PathLike | None = None,
          progress: bool = True, similarity: bool = True, log=None) -> dict:
    """Build the corpus (see module docstring). Returns a summary dict with 'failures'.

    Packages already finished in OUT (a .done marker with the same --max-minutes) are skipped.
    Raises VqcodecError before doing anything for refused or unusable arguments.
    """
    log = log or (lambda msg: print(f"vqcodec: {msg}", file=sys.stderr))
    out = Path(out_dir)
    if eval_set:
        if packages and any(p not in EVAL_SOURCES for p in packages):
            raise VqcodecError(f"--eval builds only {', '.join(EVAL_SOURCES)}; leave out --packages")
        sources = [EVAL_SOURCES[p] for p in (packages or EVAL_PACKAGES)]
        out_root = out / EVAL_DIR
    else:
        packages = list(packages or DEFAULT_PACKAGES)
        bad = [p for p in packages if refused(p)]
        if bad:
            raise VqcodecError(f"refusing {', '.join(bad)}: asterisk-core-sounds-en*/es* is the held-out "
                               "evaluation voice, never training data (use --eval to build it as the test set)")
        sources = [SOURCES.get(p) or Source(p, generic_finder(p)) for p in packages]
        out_root = out
    if max_minutes is not None and max_minutes <= 0:
        raise VqcodecError("--max-minutes must be positive")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise VqcodecError("--workers must be at least 1")
    state = out / ".real"
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VqcodecError(f"cannot write {out}: {e.strerror or e}") from None
    remove_stale_temps(out)  # a killed build's half-written clips and bookkeeping

    failures, all_rows, built = [], [], 0
    with contextlib.ExitStack() as stack:
        if deb_dir is None:
            deb_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vqcodec-debs-")))
        else:
            deb_path = Path(deb_dir)
            deb_path.mkdir(parents=True, exist_ok=True)
        pool = None
        if workers > 1:
            import multiprocessing as mp
            pool = stack.enter_context(mp.get_context("spawn").Pool(workers))
        for src in sources:
            if _is_done(state, src.package, max_minutes):
                all_rows += read_rows(state / f"{src.package}.tsv")
                log(f"{src.package}: already built, skipped")
                continue
            try:
                rows = _build_package(src, out_root, state, deb_path, pool, workers, max_minutes, log, progress)
            except PackageError as e:
                failures.append(str(e))
                log(str(e))
                continue
            all_rows += rows
            built += 1
            kept = [r for r in rows if r["status"] == "kept"]
            log(f"{src.package}: {len(kept)} clips, {sum(float(r['seconds']) for r in kept) / 3600:.2f} h, "
                f"{len({r['speaker'] for r in kept})} voices, "
                f"{sum(r['status'] == 'rejected' for r in rows)} rejected")
        for src in sources:
            marker = state / f"{src.package}.done"
            if marker.exists():
                failures += json.loads(marker.read_text()).get("errors", [])

    sim = None
    sim_file = state / "speaker_check.json"
    if similarity and any(r["status"] == "kept" for r in all_rows):
        if not built and sim_file.exists():     # nothing changed: the check is minutes of CPU
            sim = json.loads(sim_file.read_text())
        else:
            try:
                sim = speaker_check(out_root, all_rows)
                _write_text(sim_file, json.dumps(sim) + "\n")
            except VqcodecError as e:
                log(f"speaker check skipped: {e}")
    _write_text(out / "README.md", corpus_readme(all_rows, sim, failures, eval_set=eval_set))
    _write_rows(out / "MANIFEST.tsv", all_rows)   # last: the corpus is complete
    kept = [r for r in all_rows if r["status"] == "kept"]
    return {"clips": len(kept), "seconds": sum(float(r["seconds"]) for r in kept),
            "speakers": sorted({r["speaker"] for r in kept}),
            "rejected": sum(r["status"] == "rejected" for r in all_rows), "failures": failures,
            "similarity": sim, "out": str(out_root)}


# --------------------------------------------------------------------------- reports
def speaker_check(root: str | os.PathLike, rows: list[dict], n_speakers: int = 16, per_speaker: int = 6,
                  seed: int = 0) -> dict:
    """Does folder = voice hold? resemblyzer embeddings of `per_speaker` clips (>= 1 s) of up to
    `n_speakers` folders: mean cosine within a folder vs between folders, and how often a clip's
    nearest folder centroid (leave-one-out) is its own."""
    from ..evaluation.metrics import speaker_embedding
    import soundfile as sf

    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for r in rows:
        if r["status"] == "kept" and float(r["seconds"]) >= 1.0:
            by_spk[r["speaker"]].append(r["utt"])
    spks = sorted(s for s, u in by_spk.items() if len(u) >= 3)
    if len(spks) < 2:
        return {"speakers": len(spks), "within": None, "between": None, "nearest_own": None}
    spks = sorted(rng.choice(spks, size=min(n_speakers, len(spks)), replace=False).tolist())
    emb, lab = [], []
    for s in spks:
        utts = sorted(by_spk[s])
        for u in sorted(rng.choice(utts, size=min(per_speaker, len(utts)), replace=False).tolist()):
            wav, sr = sf.read(str(Path(root) / u), dtype="float32")
            emb.append(speaker_embedding(wav, sr))
            lab.append(s)
    E, lab = np.stack(emb), np.array(lab)
    S = E @ E.T
    same = lab[:, None] == lab[None, :]
    off = ~np.eye(len(lab), dtype=bool)
    correct = 0
    for i in range(len(lab)):
        best, best_s = None, -2.0
        for s in spks:
            m = (lab == s)
            m[i] = False
            if m.sum() == 0:
                continue
            c = E[m].mean(0)
            v = float(E[i] @ c / max(np.linalg.norm(c), 1e-12))
            if v > best_s:
                best, best_s = s, v
        correct += best == lab[i]
    return {"speakers": len(spks), "clips": len(lab), "within": float(S[same & off].mean()),
            "between": float(S[~same].mean()), "nearest_own": correct / len(lab), "sampled": spks}


def corpus_readme(rows: list[dict], sim: dict | None, failures: list[str], eval_set: bool = False) -> str:
    kept = [r for r in rows if r["status"] == "kept"]
    hours = sum(float(r["seconds"]) for r in kept) / 3600
    f = io.StringIO()
    title = "Real-speech evaluation set (asterisk-core-sounds-en-g722)" if eval_set else "Real recorded voices"
    f.write(f"# {title}\n\nBuilt by `vqcodec corpus real{' --eval' if eval_set else ''}` from Debian packages on "
            "this machine. The recordings stay the user's download: recipes are shipped, recordings are not.\n\n")
    f.write(f"**{hours:.2f} h** in {len(kept)} clips, **{len({r['speaker'] for r in kept})} voices**, "
            f"{sum(r['transcript'] == 'yes' for r in kept)} clips with transcripts; "
            f"{sum(r['status'] == 'rejected' for r in rows)} files/pieces rejected.\n"
            "16 kHz mono PCM_16, silence trimmed, split at pauses to <= 15 s, clips < 0.5 s dropped, "
            "clips without energy above 5.5 kHz rejected. Every clip and rejection: MANIFEST.tsv.\n\n")
    f.write("## Per package\n\n| package | version | licence(s) | voices | clips | hours | rejected (why) |\n"
            "|---|---|---|---|---|---|---|\n")
    by_pkg = defaultdict(list)
    for r in rows:
        by_pkg[r["package"]].append(r)
    for pkg, rs in by_pkg.items():
        k = [r for r in rs if r["status"] == "kept"]
        why = Counter(re.sub(r" (\(|of ).*", "", r["reason"]) for r in rs if r["status"] == "rejected")
        lic = ", ".join(sorted({r["license"] for r in k} or {r["license"] for r in rs}))
        f.write(f"| {pkg} | {rs[0]['version']} | {lic} | {len({r['speaker'] for r in k})} | {len(k)} | "
                f"{sum(float(r['seconds']) for r in k) / 3600:.2f} | "
                f"{sum(why.values())} ({'; '.join(f'{n} {w}' for w, n in why.most_common())}) |\n")
    f.write("\n## Per speaker\n\n| speaker | package | clips | minutes | with text | speaker from |\n"
            "|---|---|---|---|---|---|\n")
    by_spk = defaultdict(list)
    for r in kept:
        by_spk[r["speaker"]].append(r)
    for spk, rs in sorted(by_spk.items()):
        f.write(f"| {spk} | {rs[0]['package']} | {len(rs)} | {sum(float(r['seconds']) for r in rs) / 60:.1f} | "
                f"{sum(r['transcript'] == 'yes' for r in rs)} | {Counter(r['speaker_from'] for r in rs).most_common(1)[0][0]} |\n")
    if sim and sim.get("within") is not None:
        f.write(f"\n## Folder = voice?\n\nresemblyzer embeddings of {sim['clips']} clips from {sim['speakers']} "
                f"sampled folders: mean cosine within a folder **{sim['within']:.3f}**, between folders "
                f"**{sim['between']:.3f}**; a clip's nearest folder centroid (leave-one-out) is its own folder "
                f"for **{100 * sim['nearest_own']:.0f}%** of clips.\n")
    if failures:
        f.write("\n## Failures\n\n" + "".join(f"- {x}\n" for x in failures))
    return f.getvalue()
