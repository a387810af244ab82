"""The offline multi-speaker corpus: mbrola diphone speech with exact phone alignments.

Pipeline per utterance: ``espeak-ng -v mb-VOICE -q -s SPEED -p PITCH --pho TEXT`` gives a .pho
file (phone, duration in ms, pitch points); ``mbrola -e [-f F] [-l RATE] DB a.pho a.wav`` renders
it. The phone boundaries are the cumulative .pho durations, so alignments are exact by
construction (the last interval is stretched to the wav length, a <=8 ms fix).

Speakers. Only three English mbrola voices are installed for training (us1 female US, us2 male US,
en1 male British; us3 is held out for evaluation and is never in the defaults). More speakers are
made from them, keeping exact alignments, by changing
  * speaking rate and pitch (espeak-ng ``-s`` / ``-p``, which rewrite the .pho durations and
    pitch points, so prosody changes naturally), plus mbrola's ``-f`` pitch ratio, and
  * vocal-tract length: mbrola ``-l RATE`` reinterprets the diphone database as recorded at RATE
    Hz, shifting every formant by RATE/16000 while keeping the .pho timing in milliseconds; the
    result is resampled back to 16 kHz.
espeak-ng's own (formant) voices (``ESPEAK_VOICES``, not in the defaults) report no phone timing
through ``--pho``; `vqcodec.data.espeak` gets it from libespeak-ng's phoneme events instead.

Text: sentences from Debian's fortune files, the KJV bible (``bible``), WordNet glosses' example
sentences and The Devil's Dictionary, cleaned to ASCII words and simple punctuation, 4-25 words.
About 2% of the sentences (chosen by a fixed hash of the text) are held out from training text so
an evaluation set can use sentences no training voice ever spoke (``text="heldout"``).

Everything is deterministic for a seed: two runs write byte-identical files.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..analysis.alignments import Interval, write_textgrid
from ..analysis.phones import mbrola_map, normalize
from ..audio import resample
from ..errors import MissingToolError, VqcodecError
from ..files import remove_stale_temps

SAMPLE_RATE = 16000
MBROLA_DIR = Path("/usr/share/mbrola")
LEAD_SILENCE_MS = 100  # a short pause before the first phone


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an mbrola voice plus prosody and vocal-tract settings, or (engine
    "espeak") one of espeak-ng's own formant voices."""
    name: str
    voice: str               # mbrola voice: us1 | us2 | en1 | us3; espeak: e.g. "en-us+m3"
    speed: int = 175         # espeak-ng -s (words per minute)
    pitch: int = 50          # espeak-ng -p (0-99)
    freq_ratio: float = 1.0  # mbrola -f (multiplies all pitch points)
    vtl_ratio: float = 1.0   # mbrola -l = 16000 * vtl_ratio: formants scale by this
    engine: str = "mbrola"   # "mbrola" | "espeak"


SPEAKERS: dict[str, Speaker] = {s.name: s for s in [
    Speaker("us1", "us1"),
    Speaker("us2", "us2"),
    Speaker("en1", "en1"),
    Speaker("us1_low", "us1", speed=150, pitch=35, freq_ratio=0.85, vtl_ratio=0.90),
    Speaker("us1_high", "us1", speed=205, pitch=65, freq_ratio=1.15, vtl_ratio=1.10),
    Speaker("us2_high", "us2", speed=195, pitch=70, freq_ratio=1.35, vtl_ratio=1.14),
    Speaker("us2_low", "us2", speed=145, pitch=30, freq_ratio=0.85, vtl_ratio=0.92),
    Speaker("en1_high", "en1", speed=160, pitch=65, freq_ratio=1.25, vtl_ratio=1.10),
    # espeak-ng's own formant voices (not in the defaults: the shipped model never heard them).
    Speaker("esp_m3", "en-us+m3", engine="espeak"),
    Speaker("esp_f2", "en-us+f2", speed=165, pitch=60, engine="espeak"),
    Speaker("esp_gb_m7", "en+m7", speed=160, pitch=35, engine="espeak"),
    # Held out for evaluation: never part of DEFAULT_VOICES.
    Speaker("us3", "us3"),
]}
DEFAULT_VOICES: tuple[str, ...] = ("us1", "us2", "en1", "us1_low", "us1_high", "us2_high",
                                    "us2_low", "en1_high")
HELDOUT_VOICES: tuple[str, ...] = ("us3",)
ESPEAK_VOICES: tuple[str, ...] = ("esp_m3", "esp_f2", "esp_gb_m7")


# ----------------------------------------------------------------------------------- tools

def check_tools(voices: list[str] | tuple[str, ...] = DEFAULT_VOICES) -> None:
    """Raise MissingToolError (naming the Debian package) when anything needed is absent."""
    speakers = [get_speaker(name) for name in voices]
    if shutil.which("espeak-ng") is None:
        raise MissingToolError("espeak-ng not found: apt-get install espeak-ng")
    if any(s.engine == "mbrola" for s in speakers) and shutil.which("mbrola") is None:
        raise MissingToolError("mbrola not found: apt-get install mbrola (Debian contrib)")
    for spk in speakers:
        if spk.engine == "espeak":
            from . import espeak

            if not espeak.has_voice(spk.voice):
                raise MissingToolError(f"espeak-ng voice {spk.voice} not found: apt-get install espeak-ng-data")
        elif not _voice_db(spk.voice).exists():
            raise MissingToolError(f"mbrola voice {spk.voice} not found ({_voice_db(spk.voice)}): "
                                   f"apt-get install mbrola-{spk.voice} (Debian non-free)")


def get_speaker(name: str) -> Speaker:
    if name not in SPEAKERS:
        raise VqcodecError(f"unknown synthetic speaker {name!r} (known: {', '.join(SPEAKERS)})")
    return SPEAKERS[name]


def _voice_db(voice: str) -> Path:
    return MBROLA_DIR / voice / voice


# ------------------------------------------------------------------------------------ text

_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,;:'?!.\-]*$")
_SPLIT = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")


def clean_sentence(text: str) -> str | None:
    """ASCII letters and simple punctuation, 4-25 words; None when unusable."""
    text = text.replace("_", " ").replace('"', " ").replace("`", "'").replace("--", ", ")
    text = re.sub(r"\s+", " ", text).strip().strip("'").strip()
    if not text or not _ALLOWED.match(text) or ".." in text or re.search(r"[,;:]\s*[.?!]|[.?!]\s*[,;:]", text):
        return None
    if re.search(r"[A-Z]{2,}", text.replace("I ", "")) and not text.isupper():
        # acronyms and shouting are read letter by letter; keep the text speakable
        return None
    if text.isupper():
        return None
    words = [w for w in re.split(r"[ \-]+", text) if re.search(r"[A-Za-z]", w)]
    if not 4 <= len(words) <= 25:
        return None
    text = text[0].upper() + text[1:]
    if text[-1] not in ".?!":
        text = text.rstrip(",;:-' ") + "."
    return text


def _split(block: str) -> list[str]:
    block = re.sub(r"\s+", " ", block).strip()
    return _SPLIT.split(block) if block else []


def _fortunes() -> list[str]:
    out = []
    root = Path("/usr/share/games/fortunes")
    if not root.is_dir():
        return out
    for f in sorted(root.iterdir()):
        if f.suffix in (".dat", ".u8") or f.is_symlink() or not f.is_file():
            continue
        text = f.read_bytes().decode("latin-1")
        for block in text.split("\n%\n"):
            # attribution lines ("-- Author") are not part of the sentence
            lines = [ln for ln in block.splitlines() if not ln.strip().startswith("--")]
            out += _split(" ".join(lines))
    return out


def _bible() -> list[str]:
    if shutil.which("bible") is None:
        return []
    try:
        res = subprocess.run(["bible", "-l10000", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    for line in res.stdout.decode("latin-1").splitlines():
        m = re.match(r"^\s*\d+\s+(.*)$", line)
        if m:
            out += _split(m.group(1))
    return out


def _wordnet() -> list[str]:
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        f = Path(f"/usr/share/wordnet/data.{pos}")
        if f.exists():
            out += re.findall(r'"([^"]+)"', f.read_bytes().decode("latin-1"))
    return out


def _devil() -> list[str]:
    f = Path("/usr/share/dictd/devil.dict.dz")
    if not f.exists():
        return []
    try:
        text = gzip.decompress(f.read_bytes()).decode("latin-1")
    except (OSError, EOFError):
        return []
    out = []
    for para in re.split(r"\n\s*\n", text):
        out += _split(para)
    return out


@lru_cache(maxsize=None)
def all_sentences() -> tuple[str, ...]:
    """Every cleaned distinct sentence from the installed Debian text packages, sorted."""
    seen = set()
    for raw in _fortunes() + _bible() + _wordnet() + _devil():
        s = clean_sentence(raw)
        if s:
            seen.add(s)
    if not seen:
        raise MissingToolError("no text found for synthesis: apt-get install fortune-mod fortunes "
                               "bible-kjv wordnet-base dict-devil")
    return tuple(sorted(seen))


def is_heldout_text(sentence: str) -> bool:
    """A fixed ~2% of sentences never used for training voices (independent of the seed)."""
    return hashlib.sha1(sentence.encode()).digest()[0] < 5


def sentences(seed: int = 0, text: str = "train", salt: str = "") -> list[str]:
    """The sentences of one text split ("train" | "heldout"), shuffled deterministically."""
    if text not in ("train", "heldout"):
        raise VqcodecError(f"text must be 'train' or 'heldout', not {text!r}")
    pool = [s for s in all_sentences() if is_heldout_text(s) == (text == "heldout")]
    random.Random(f"{seed}:{salt}").shuffle(pool)
    return pool


# ------------------------------------------------------------------------------- synthesis

def pho(speaker: Speaker, text: str) -> list[tuple[str, float, str]]:
    """espeak-ng's .pho for `text`: (phone, duration_ms, rest-of-line pitch points). For an
    espeak-engine speaker, the same rows from the library's phoneme events (no pitch points)."""
    if speaker.engine == "espeak":
        from . import espeak

        _, _, rows = espeak.synthesize(speaker.voice, text, speaker.speed, speaker.pitch)
        return [("_", float(LEAD_SILENCE_MS), "")] + [(p, d, "") for p, d in rows]
    cmd = ["espeak-ng", "-v", f"mb-{speaker.voice}", "-q", "-s", str(speaker.speed),
           "-p", str(speaker.pitch), "--pho", text]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MissingToolError("espeak-ng not found: apt-get install espeak-ng") from None
    rows = []
    for line in res.stdout.decode("ascii", "replace").splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and not line.startswith(";"):
            rows.append((parts[0], float(parts[1]), parts[2] if len(parts) > 2 else ""))
    if not rows:
        raise VqcodecError(f"espeak-ng produced no phones for voice mb-{speaker.voice} "
                           f"({res.stderr.decode(errors='replace').strip()[:120]})")
    return [("_", float(LEAD_SILENCE_MS), "")] + rows


def render(speaker: Speaker, rows: list[tuple[str, float, str]], text: str = "") -> np.ndarray:
    """Run mbrola on .pho rows (an espeak-engine speaker synthesizes `text` again; each
    synthesis runs in a fresh process, so the audio is the one its rows were read from);
    float32 mono at 16 kHz."""
    import soundfile as sf

    if speaker.engine == "espeak":
        from . import espeak

        audio, sr, _ = espeak.synthesize(speaker.voice, text, speaker.speed, speaker.pitch)
        lead = np.zeros(int(round(LEAD_SILENCE_MS * sr / 1000)), np.float32)
        wav = np.concatenate([lead, audio.astype(np.float32) / 32768.0])
        return np.ascontiguousarray(resample(wav, sr, SAMPLE_RATE))

    text = "".join(f"{p}\t{d:g}\t{rest}\n" for p, d, rest in rows)
    with tempfile.TemporaryDirectory(prefix="vqsynth") as tmp:
        phof, wavf = Path(tmp) / "a.pho", Path(tmp) / "a.wav"
        phof.write_text(text)
        cmd = ["mbrola", "-e"]
        if speaker.freq_ratio != 1.0:
            cmd += ["-f", f"{speaker.freq_ratio:g}"]
        rate = int(round(SAMPLE_RATE * speaker.vtl_ratio))
        if rate != SAMPLE_RATE:
            cmd += ["-l", str(rate)]
        cmd += [str(_voice_db(speaker.voice)), str(phof), str(wavf)]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise MissingToolError("mbrola not found: apt-get install mbrola (Debian contrib)") from None
        if res.returncode != 0 or not wavf.exists():
            raise VqcodecError(f"mbrola failed for {speaker.name}: "
                               f"{res.stderr.decode(errors='replace').strip()[:160]}")
        wav, sr = sf.read(str(wavf), dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    return np.ascontiguousarray(resample(wav, sr, SAMPLE_RATE), dtype=np.float32)


def phone_intervals(speaker: Speaker, rows: list[tuple[str, float, str]], num_samples: int,
                    mapping: dict[str, str] | None = None) -> list[Interval]:
    """Phone tier from .pho rows: labels in the shared inventory, adjacent silences merged,
    last interval stretched (or trimmed) to end exactly at the wav length."""
    if mapping is None:
        from .espeak import ESPEAK_EN

        mapping = ESPEAK_EN if speaker.engine == "espeak" else mbrola_map(speaker.voice)
    end_total = num_samples / SAMPLE_RATE
    out: list[list] = []
    t = 0.0
    for p, d, _ in rows:
        if d <= 0:
            continue
        label = normalize(p, mapping, strict=True)
        start, t = t, t + d / 1000.0
        if out and label == "sil" and out[-1][2] == "sil":
            out[-1][1] = t
        else:
            out.append([start, t, label])
    # drop intervals that start after the audio ended, then pin the last end to the length
    while len(out) > 1 and out[-1][0] >= end_total - 1e-4:
        out.pop()
    out[-1][1] = end_total
    return [Interval(round(s, 6), round(e, 6), lab) for s, e, lab in out]


@dataclass(frozen=True)
class Job:
    out_dir: str
    speaker: str
    utt_id: str
    text: str
    rows: tuple = ()  # the .pho rows, when already computed by plan()


def _synth_one(job: Job) -> tuple[str, float]:
    """Write OUT/SPEAKER/UTT.{wav,TextGrid,txt}; returns (utt_id, seconds)."""
    import soundfile as sf

    from ..files import atomic_path

    spk = get_speaker(job.speaker)
    folder = Path(job.out_dir) / job.speaker
    wav_path, tg_path = folder / f"{job.utt_id}.wav", folder / f"{job.utt_id}.TextGrid"
    txt_path = folder / f"{job.utt_id}.txt"
    if wav_path.exists() and tg_path.exists() and txt_path.exists():
        return job.utt_id, sf.info(str(wav_path)).frames / SAMPLE_RATE
    rows = list(job.rows) if job.rows else pho(spk, job.text)
    wav = render(spk, rows, job.text)
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 0.99:
        wav = wav * (0.99 / peak)
    tiers = {"phones": phone_intervals(spk, rows, len(wav))}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(txt_path) as tmp:
        tmp.write_text(job.text + "\n")
    write_textgrid(tg_path, tiers, xmax=len(wav) / SAMPLE_RATE)
    with atomic_path(wav_path) as tmp:  # the wav last: its presence marks a finished utterance
        sf.write(str(tmp), np.clip(wav, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return job.utt_id, len(wav) / SAMPLE_RATE


def _pho_rows(args: tuple[str, str]) -> tuple:
    name, text = args
    return tuple(pho(get_speaker(name), text))


def plan(hours: float, voices: list[str] | tuple[str, ...] = DEFAULT_VOICES, seed: int = 0,
         text: str = "train", pool: ProcessPoolExecutor | None = None, progress: bool = False
         ) -> list[tuple[Job, float]]:
    """Choose each speaker's sentences until it has hours/len(voices) of (.pho) duration.

    Durations come from espeak-ng's .pho (cheap), so the plan is exact and deterministic.
    Returns (job, seconds) with job.out_dir left empty.
    """
    from ..progress import bar as progress_bar

    target = hours * 3600.0 / max(1, len(voices))
    jobs: list[tuple[Job, float]] = []
    tag = "h" if text == "heldout" else ""  # held-out-text utterances never share a training id
    for name in progress_bar(voices, desc="plan", unit="spk", disable=not progress, leave=False):
        spk = get_speaker(name)
        pool_text = sentences(seed, text, salt=spk.name)
        total, i = 0.0, 0
        workers = getattr(pool, "_max_workers", 1) if pool else 1
        while total < target and i < len(pool_text):
            # about as many sentences as still needed (~2.5 s each), so tiny corpora stay fast
            batch = min(64, max(workers, int((target - total) / 2.5) + 1))
            chunk = pool_text[i:i + batch]
            args = [(spk.name, s) for s in chunk]
            phos = list(pool.map(_pho_rows, args)) if pool else [_pho_rows(a) for a in args]
            for s, rows in zip(chunk, phos):
                if total >= target:
                    break
                sec = sum(d for _, d, _ in rows) / 1000.0
                jobs.append((Job("", spk.name, f"{spk.name}_{tag}{i:05d}", s, rows), sec))
                total += sec
                i += 1
        if total < target:
            raise VqcodecError(f"not enough sentences for {hours} h with speaker {name}")
    return jobs


def plan_parallel(count: int, voices: list[str] | tuple[str, ...], seed: int = 0, text: str = "heldout",
                  pool: ProcessPoolExecutor | None = None) -> list[tuple[Job, float]]:
    """Every voice reads the same `count` sentences, each under the same utterance name in every
    voice's folder (p00000, p00001, ...): a parallel set, for scoring voice conversion against the
    target voice's own reading of the same sentence."""
    chosen = sentences(seed, text, salt="parallel")[:count]
    if len(chosen) < count:
        raise VqcodecError(f"only {len(chosen)} {text} sentences for a parallel set of {count}")
    jobs: list[tuple[Job, float]] = []
    for name in voices:
        args = [(get_speaker(name).name, s) for s in chosen]
        phos = list(pool.map(_pho_rows, args)) if pool else [_pho_rows(a) for a in args]
        for i, (s, rows) in enumerate(zip(chosen, phos)):
            jobs.append((Job("", name, f"p{i:05d}", s, rows), sum(d for _, d, _ in rows) / 1000.0))
    return jobs


def synthesize(out_dir: str | os.PathLike, hours: float = 1.0,
               voices: list[str] | tuple[str, ...] | None = None, seed: int = 0,
               jobs: int | None = None, text: str = "train", progress: bool = True,
               parallel: int = 0) -> dict:
    """Make the corpus under out_dir (OUT/SPEAKER/UTT.wav + .TextGrid + .txt).

    parallel > 0: instead of `hours`, every voice reads the same `parallel` sentences under the
    same names (plan_parallel). Resumable (finished utterances are skipped) and deterministic for a
    seed. Returns a summary dict: speakers, utterances, seconds.
    """
    from ..progress import bar as progress_bar

    voices = tuple(dict.fromkeys(voices)) if voices else DEFAULT_VOICES
    if hours <= 0 or parallel < 0:
        raise VqcodecError("--hours must be positive and --parallel not negative")
    check_tools(voices)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)  # a killed build's half-written utterances
    n_jobs = max(1, jobs or os.cpu_count() or 1)
    with ProcessPoolExecutor(n_jobs) as ex:
        planned = (plan_parallel(parallel, voices, seed, text, pool=ex) if parallel
                   else plan(hours, voices, seed, text, pool=ex, progress=progress))
        work = [Job(str(out_dir), j.speaker, j.utt_id, j.text, j.rows) for j, _ in planned]
        seconds = 0.0
        bar = progress_bar(total=len(work), unit="utt", disable=not progress, desc="synth")
        for _utt, sec in ex.map(_synth_one, work, chunksize=4):
            seconds += sec
            bar.update(1)
        bar.close()
    return {"speakers": list(voices), "utterances": len(work), "seconds": seconds,
            "out_dir": str(out_dir), "seed": seed, "text": text}


__all__ = ["Speaker", "SPEAKERS", "DEFAULT_VOICES", "HELDOUT_VOICES", "ESPEAK_VOICES", "check_tools",
           "get_speaker", "clean_sentence", "all_sentences", "sentences", "is_heldout_text", "pho", "render",
           "phone_intervals", "plan", "plan_parallel", "synthesize"]
