"""Score codecs on a set of files: PESQ-WB, STOI, mel distance and bitrate, per file and mean.

A *system* is any callable `(wav, sr) -> (decoded_wav_16k, bits_per_second)`. A system may also
accept a keyword argument `source` (the file's Path), e.g. to pick the decoding speaker from the
file's folder. A system may declare `delay_samples` (the delay of its output, e.g. a classical
codec's, measured once per system: `baselines.Baseline`); exactly that delay is removed before
scoring, and it is the `lag_ms` reported for the system. A system that declares none (vqcodec
keeps time) is scored at lag 0: no per-file cross-correlation, which for a codec that synthesises
its waveform finds meaningless lags and wrecks STOI. A system whose tool is missing (MissingToolError) is skipped with a note; a
VqcodecError on one file skips that file for that system with a note. The run never stops for
either.

Writes report.json, report.csv and spectrograms.png (first file: reference + each system).
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..audio import SAMPLE_RATE, load
from ..errors import MissingToolError, VqcodecError
from ..files import atomic_path, walk
from . import conversion, metrics

METRICS = ("pesq_wb", "stoi", "mel_distance", "speaker_similarity", "harmonicity")
COLUMNS = ("pesq_wb", "stoi", "mel_distance", "speaker_similarity", "harmonicity", "harmonicity_original",
           "bitrate_bps")


def _accepts_source(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "source" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _nanmean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def delay_of(system) -> int:
    """The delay (samples) a system declares for its output; 0 when it declares none."""
    return int(getattr(system, "delay_samples", 0) or 0)


def score(ref: np.ndarray, deg: np.ndarray, sr: int = SAMPLE_RATE, notes: list[str] | None = None,
          lag: int = 0) -> dict:
    """Remove `lag` samples of delay from `deg` (see `metrics.shift`), cut both to the reference's
    length, then PESQ-WB, STOI, mel distance, speaker similarity (resemblyzer cosine of the output
    to the original: does the voice come back?) and harmonicity 1.5-4 kHz (metrics.harmonicity),
    the original's own beside it. A metric whose package is missing is None (and noted once in
    `notes`)."""
    ref_a = np.asarray(ref, dtype=np.float32).reshape(-1)
    deg_a = metrics.shift(deg, lag, length=len(ref_a))
    out: dict = {"lag_ms": round(1000.0 * lag / sr, 2)}
    funcs = {"pesq_wb": metrics.pesq_wb, "stoi": metrics.stoi, "mel_distance": metrics.mel_distance,
             "speaker_similarity": metrics.speaker_similarity}
    for name, fn in funcs.items():
        try:
            out[name] = _clean(float(fn(ref_a, deg_a, sr)))
        except MissingToolError as e:
            out[name] = None
            if notes is not None and str(e) not in notes:
                notes.append(str(e))
    out["harmonicity"] = _clean(metrics.harmonicity(ref_a, deg_a, sr))
    out["harmonicity_original"] = _clean(metrics.harmonicity(ref_a, ref_a, sr))
    return out


def evaluate(files: Sequence[str | os.PathLike], systems: dict[str, Callable], out_dir: str | os.PathLike,
             sample_rate: int = SAMPLE_RATE, notes: list[str] | None = None, progress: bool = True,
             echo: Callable[[str], None] = print, spectrogram: bool = True,
             on_failure: Callable[[str], None] | None = None) -> dict:
    """Run every system on every file and write report.json, report.csv and spectrograms.png
    into `out_dir`. Returns the report dict (also what report.json holds).

    `notes`: a list of lines carried into the report, appended to in place (skips, missing
    metrics; pass the same list to a CodecSystem so its speaker notes land here too).
    A file that cannot be read (not audio, empty, NaN...) is left out and the run goes on, as in
    encode / decode: it is listed in the report's `failed_files` (file, error) and passed to
    `on_failure(message)` as it happens; `files` / `num_files` are the files scored. Raises
    VqcodecError when no file could be read.
    """
    from ..progress import bar as tqdm  # plain lines when stderr is not a terminal

    files = [Path(f) for f in files]
    if not files:
        raise VqcodecError("no audio files to evaluate")
    out_dir = Path(out_dir)
    notes = notes if notes is not None else []
    rows: dict[str, list[dict]] = {name: [] for name in systems}
    skipped: dict[str, str] = {}
    first_outputs: dict[str, np.ndarray] = {}
    first_ref = None
    scored: list[Path] = []
    failed: list[dict] = []

    for path in tqdm(files, desc="evaluating", unit="file", disable=not progress):
        try:
            ref = load(path, sample_rate)
        except VqcodecError as e:
            failed.append({"file": str(path), "error": str(e)})
            if on_failure is not None:
                on_failure(str(e))
            continue
        i = len(scored)
        scored.append(path)
        if i == 0:
            first_ref = ref
        for name, system in systems.items():
            if name in skipped:
                continue
            try:
                if _accepts_source(system):
                    deg, bps = system(ref, sample_rate, source=path)
                else:
                    deg, bps = system(ref, sample_rate)
            except MissingToolError as e:
                skipped[name] = str(e)
                notes.append(f"skipped {name}: {e}")
                continue
            except VqcodecError as e:
                notes.append(f"{name} failed on {path.name}: {e}")
                continue
            deg = np.asarray(deg, dtype=np.float32).reshape(-1)
            lag = delay_of(system)
            row = {"file": str(path), **score(ref, deg, sample_rate, notes, lag=lag), "bitrate_bps": float(bps)}
            rows[name].append(row)
            if i == 0:
                first_outputs[name] = metrics.shift(deg, lag, length=len(ref))

    if not scored:
        raise VqcodecError(f"none of the {len(files)} file(s) could be read: nothing to evaluate")
    report = {
        "sample_rate": sample_rate,
        "num_files": len(scored),
        "files": [str(f) for f in scored],
        "failed_files": failed,
        "mel_distance_definition": "mean |log10 mel(ref) - log10 mel(deg)|, 80 bands, n_fft 1024, "
                                   "hop 256, magnitude, floor 1e-5 (vqcodec.evaluation.metrics)",
        "systems": {},
        "notes": notes,
    }
    for name in systems:
        mean = {c: _nanmean(r.get(c) for r in rows[name]) for c in COLUMNS}
        lag_ms = rows[name][0]["lag_ms"] if rows[name] else None
        report["systems"][name] = {"skipped": skipped.get(name), "num_files": len(rows[name]),
                                   "lag_ms": lag_ms, "mean": mean, "per_file": rows[name]}

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, allow_nan=False, default=_json_default) + "\n")
    _write_csv(out_dir / "report.csv", report)
    if spectrogram and first_ref is not None:
        try:
            plot_spectrograms(out_dir / "spectrograms.png", first_ref, first_outputs, sample_rate,
                              title=scored[0].name)
            report["spectrogram_png"] = str(out_dir / "spectrograms.png")
        except ImportError:
            notes.append("spectrogram plot skipped: pip install matplotlib")
    echo(format_table(report))
    return report


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)


def _clean(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _write_csv(path: Path, report: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["system", "file", *COLUMNS, "lag_ms"])
        for name, s in report["systems"].items():
            for r in s["per_file"]:
                w.writerow([name, r["file"], *[_fmt_csv(r.get(c)) for c in COLUMNS], r.get("lag_ms", "")])
            if s["per_file"]:
                w.writerow([name, "MEAN", *[_fmt_csv(s["mean"][c]) for c in COLUMNS], ""])


def _fmt_csv(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def format_table(report: dict) -> str:
    """One plain-text table: a row per system with mean metrics, then the notes."""
    w = max([22] + [len(n) + 2 for n in report["systems"]])
    header = (f"{'system':<{w}}{'files':>6}{'PESQ-WB':>9}{'STOI':>8}{'mel dist':>10}{'spk sim':>9}{'harm.':>7}"
              f"{'orig.':>7}{'kbps':>8}{'lag ms':>8}")
    lines = [f"means over {report['num_files']} file(s) "
             f"(PESQ-WB, STOI, speaker similarity to the original: higher is better; mel distance: "
             f"lower is better; lag ms: the delay removed before scoring, measured once per classical "
             f"codec on probe signals; vqcodec keeps time and is scored at lag 0)", header,
             "-" * len(header)]
    for name, s in report["systems"].items():
        if s["skipped"]:
            lines.append(f"{name:<{w}}  skipped ({s['skipped']})")
            continue
        m = s["mean"]

        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"
        kbps = m["bitrate_bps"] / 1000 if m["bitrate_bps"] is not None else None
        lines.append(f"{name:<{w}}{s['num_files']:>6}{f(m['pesq_wb'], '9.2f')}{f(m['stoi'], '8.3f')}"
                     f"{f(m['mel_distance'], '10.3f')}{f(m.get('speaker_similarity'), '9.3f')}"
                     f"{f(m.get('harmonicity'), '7.2f')}{f(m.get('harmonicity_original'), '7.2f')}{f(kbps, '8.2f')}"
                     f"{f(s.get('lag_ms'), '8.1f')}")
    lines.append("(harm.: harmonicity 1.5-4 kHz, the normalised autocorrelation at the original's pitch period in "
                 "its voiced frames; orig.: the original's own, on the same files)")
    for n in report["notes"]:
        lines.append(f"note: {n}")
    if report.get("failed_files"):
        lines.append(f"note: {len(report['failed_files'])} file(s) could not be read and are left out "
                     "(report.json: failed_files)")
    return "\n".join(lines)


def plot_spectrograms(path: str | os.PathLike, ref: np.ndarray, outputs: dict[str, np.ndarray],
                      sr: int = SAMPLE_RATE, title: str = "") -> Path:
    """Log-mel spectrograms of the reference and each system's output, stacked, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("reference", ref), *outputs.items()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.9 * len(panels) + 0.4), sharex=True,
                             squeeze=False)
    for ax, (name, wav) in zip(axes[:, 0], panels):
        mel = metrics.log_mel(wav, sr)
        dur = len(wav) / sr
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=float(max(mel.max(), -4)),
                  extent=(0, dur, 0, mel.shape[0]))
        ticks = metrics.mel_axis(sr, mel.shape[0])
        ax.set_yticks([frac * mel.shape[0] for _, frac in ticks], [f"{hz / 1000:g}" for hz, _ in ticks])
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- data and the model row
def collect_files(data_dir: str | os.PathLike, limit: int = 0) -> list[tuple[Path, str | None]]:
    """Audio files under `data_dir` as (path, speaker) pairs.

    Layout DATA_DIR/SPEAKER/**/*.wav: the speaker is the first folder below DATA_DIR; files
    directly in DATA_DIR (or DATA_DIR being one file) have speaker None. With `limit`, files are
    taken round-robin across speakers so that a small limit still covers several voices.
    """
    from ..audio import AUDIO_EXTENSIONS

    root = Path(data_dir)
    if root.is_file():
        return [(root, None)]
    if not root.is_dir():
        raise VqcodecError(f"{root}: no such folder")
    by_speaker: dict[str | None, list[Path]] = {}
    for p in walk(root, AUDIO_EXTENSIONS):
        rel = p.relative_to(root)
        spk = rel.parts[0] if len(rel.parts) > 1 else None
        by_speaker.setdefault(spk, []).append(p)
    if not by_speaker:
        raise VqcodecError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    out: list[tuple[Path, str | None]] = []
    queues = [[(p, spk) for p in ps] for spk, ps in by_speaker.items()]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out[:limit] if limit and limit > 0 else out


class CodecSystem:
    """Wrap a codec (vqcodec.load_model(...) or anything with encode/decode/speakers/bitrate/
    sample_rate) as an evaluation system: encode, decode with the file's own speaker when the
    model knows it (else `fallback_speaker` or the model's first speaker, noted once per unknown
    speaker), resample to the evaluation rate. The bitrate is vqcodec's one convention
    (`codes.describe`): the bits its streams store per second of the file (tokens, and the voice
    vector, gain and pitch stream a .vqc carries; the container's header left out, as the
    baselines leave out Opus's header pages); a codec without `encode_utterance` reports its
    `bitrate`. Declares the codec's `delay_samples` (0 when the codec has none: vqcodec's decoder
    output is time-aligned with its input). `codebooks`: a ladder model scored at one step, the
    first k of its codebooks (`vqcodec eval --ladder`: one system per step)."""

    def __init__(self, codec, speaker_of: dict | None = None, notes: list[str] | None = None,
                 temperature: float = 1.0, seed: int = 0, fallback_speaker: str | None = None,
                 codebooks: int | None = None):
        self.codec = codec
        self.codebooks = codebooks  # a ladder model's step: the first k codebooks (None: all)
        self.speaker_of = {str(k): v for k, v in (speaker_of or {}).items()}
        self.fallback_speaker = fallback_speaker
        self.notes = notes if notes is not None else []
        self.temperature = temperature
        self.seed = seed
        self.delay_samples = int(getattr(codec, "delay_samples", 0) or 0)
        self._noted: set = set()

    def speaker_for(self, source) -> str | None:
        known = list(getattr(self.codec, "speakers", []) or [])
        spk = self.speaker_of.get(str(source)) if source is not None else None
        if spk is not None and spk in known:
            return spk
        if not known:
            return None
        voice = self.fallback_speaker or known[0]
        if spk not in self._noted:
            self._noted.add(spk)
            what = f"source speaker {spk!r} is unknown to the model" if spk else "source speaker unknown"
            how = "the chosen voice" if self.fallback_speaker else "the model's first speaker"
            self.notes.append(f"{what}: decoded with {how} {voice!r}")
        return voice

    def __call__(self, wav: np.ndarray, sr: int, source=None):
        from ..audio import resample
        from ..codes import describe

        wav = np.asarray(wav, dtype=np.float32)
        opts = dict(temperature=self.temperature, seed=self.seed)
        if hasattr(self.codec, "encode_utterance"):
            # what a .vqc holds; v2: the file's own voice vector and gain, unless a voice was chosen
            tf = (self.codec.encode_utterance(wav, sr) if self.codebooks is None
                  else self.codec.encode_utterance(wav, sr, codebooks=self.codebooks))
            speaker = self.fallback_speaker if getattr(self.codec, "has_voice", False) else self.speaker_for(source)
            out = self.codec.decode_file(tf, speaker=speaker, decoder=getattr(self, "decoder", None), **opts)
            bitrate = describe(tf)["streams_bps"]
        else:
            out = self.codec.decode(self.codec.encode(wav, sr), speaker=self.speaker_for(source), **opts)
            bitrate = float(self.codec.bitrate)
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        return resample(out, int(self.codec.sample_rate), sr), bitrate


# --------------------------------------------------------------------------- voice conversion
def evaluate_conversion(sources: Sequence[tuple[str | os.PathLike, str]], convert: Callable,
                        target: str, target_refs: Sequence[str | os.PathLike],
                        speaker_refs: dict[str, Sequence[str | os.PathLike]], out_dir: str | os.PathLike,
                        sample_rate: int = SAMPLE_RATE, progress: bool = True,
                        echo: Callable[[str], None] = print) -> dict:
    """Speaker similarity of converted speech (resemblyzer cosine).

    sources: (path, source speaker) pairs; convert(wav, sr, target) -> wav at `sample_rate`.
    For each file: sim_target = cos(converted, target's real utterances), sim_source =
    cos(converted, source speaker's real utterances), and sim_original_target =
    cos(original, target) as the floor. Conversion works when sim_target > sim_source.
    Writes convert.json and convert.csv into out_dir.
    """
    from ..progress import bar as tqdm  # plain lines when stderr is not a terminal

    if not target_refs:
        raise VqcodecError(f"no real utterances of target speaker {target!r} to compare with")
    emb_cache: dict[str, np.ndarray] = {}

    def speaker_emb(spk, paths):
        if spk not in emb_cache:
            emb_cache[spk] = metrics.speaker_embedding([load(p, sample_rate) for p in paths], sample_rate)
        return emb_cache[spk]

    target_emb = speaker_emb(target, target_refs)
    rows = []
    for path, spk in tqdm(list(sources), desc=f"converting to {target}", unit="file", disable=not progress):
        wav = load(path, sample_rate)
        out = np.asarray(convert(wav, sample_rate, target), dtype=np.float32).reshape(-1)
        e_conv = metrics.speaker_embedding(out, sample_rate)
        e_orig = metrics.speaker_embedding(wav, sample_rate)
        row: dict = {"file": str(path), "source_speaker": spk,
               "sim_target": float(e_conv @ target_emb),
               "sim_original_target": float(e_orig @ target_emb),
               "sim_source": None}
        if speaker_refs.get(spk):
            row["sim_source"] = float(e_conv @ speaker_emb(spk, speaker_refs[spk]))
        row["closer_to_target"] = None if row["sim_source"] is None else row["sim_target"] > row["sim_source"]
        rows.append(row)
    if not rows:
        raise VqcodecError(f"no source utterances from speakers other than {target!r}")
    mean = {k: _nanmean(r[k] for r in rows) for k in ("sim_target", "sim_source", "sim_original_target")}
    judged = [r["closer_to_target"] for r in rows if r["closer_to_target"] is not None]
    report = {"target": target, "num_files": len(rows), "mean": mean,
              "fraction_closer_to_target": (sum(judged) / len(judged)) if judged else None,
              "per_file": rows, "metric": "resemblyzer GE2E cosine similarity"}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "convert.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(out_dir / "convert.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "source_speaker", "sim_target", "sim_source", "sim_original_target"])
        for r in rows:
            w.writerow([r["file"], r["source_speaker"], _fmt_csv(r["sim_target"]), _fmt_csv(r["sim_source"]),
                        _fmt_csv(r["sim_original_target"])])

    def f(v):
        return "-" if v is None else f"{v:.3f}"
    echo(f"conversion to {target} over {len(rows)} file(s), resemblyzer cosine similarity:\n"
         f"  converted vs target   {f(mean['sim_target'])}\n"
         f"  converted vs source   {f(mean['sim_source'])}\n"
         f"  original  vs target   {f(mean['sim_original_target'])}  (before conversion)\n"
         f"  closer to target than to source: {f(report['fraction_closer_to_target'])}")
    return report



# --------------------------------------------------------------------------- conversion to any voice
SIM_TARGET_GOAL = 0.80  # issue 14's target: similarity to the target voice at least this


@dataclass
class TargetVoice:
    """A target voice of `eval-convert --like-refs`: `reference` (its first clips concatenated) is
    what the voice vector is taken from; `other_clips` are what converted speech is compared with,
    so similarity is never measured against the audio the voice was copied from."""
    name: str
    reference: np.ndarray
    reference_clips: list[Path]
    other_clips: list[Path]

    @property
    def reference_seconds(self) -> float:
        return len(self.reference) / SAMPLE_RATE


def target_voices(ref_dir: str | os.PathLike, ref_seconds: float = 10.0, max_other: int = 10,
                  notes: list[str] | None = None) -> list[TargetVoice]:
    """One TargetVoice per REF_DIR/SPEAKER folder: its clips in name order are taken into the
    reference until it holds `ref_seconds` (at least one clip); the next `max_other` clips are
    kept for scoring. A voice with no clip left over is skipped (noted). Raises VqcodecError, one
    line, for a folder that is missing, holds no SPEAKER/ folders with audio, or has no voice with
    clips beyond its reference."""
    root = Path(ref_dir)
    if not root.is_dir():
        raise VqcodecError(f"{root}: reference voices must be a folder REF_DIR/SPEAKER/*.wav (not found or not a folder)")
    notes = notes if notes is not None else []
    try:
        files = collect_files(root)
    except VqcodecError as e:
        raise VqcodecError(f"reference voices: {e}") from None
    by_voice: dict[str, list[Path]] = {}
    for p, spk in sorted(files, key=lambda ps: str(ps[0])):
        if spk is not None:
            by_voice.setdefault(spk, []).append(p)
    loose = [p for p, spk in files if spk is None]
    if not by_voice:
        raise VqcodecError(f"{root}: no target voices: expected one folder per voice, REF_DIR/SPEAKER/*.wav "
                           f"(found only {len(loose)} loose file(s))")
    if loose:
        notes.append(f"{len(loose)} file(s) directly in {root} ignored (voices are REF_DIR/SPEAKER/*.wav)")
    out = []
    for name, clips in by_voice.items():
        parts, used = [], []
        for p in clips:
            if used and sum(map(len, parts)) >= ref_seconds * SAMPLE_RATE:
                break
            try:
                parts.append(load(p, SAMPLE_RATE))
            except VqcodecError as e:
                raise VqcodecError(f"reference voice {name!r}: {e}") from None
            used.append(p)
        rest = clips[len(used):][:max_other]
        if not rest:
            notes.append(f"voice {name!r} skipped: all its {len(clips)} clip(s) went into its reference "
                         f"(--ref-seconds {ref_seconds:g}); it needs more to be scored against")
            continue
        out.append(TargetVoice(name, np.concatenate(parts), used, rest))
    if not out:
        raise VqcodecError(f"{root}: no voice has clips beyond its {ref_seconds:g} s reference to score "
                           "converted speech against (lower --ref-seconds or add clips)")
    return out


def _mean_direction(embs: Sequence[np.ndarray]) -> np.ndarray:
    """Unit mean of unit embeddings: what resemblyzer's embed_speaker does with utterances."""
    e = np.mean(np.stack(embs), axis=0)
    return e / max(float(np.linalg.norm(e)), 1e-12)


def _phone_tier(alignment: dict) -> tuple[list[str], list]:
    ivs = alignment["phones"]
    return [iv.label for iv in ivs if iv.label != "sil"], ivs


def _phone_error_rate(ref: list[str], hyp: list[str]) -> float:
    """Levenshtein distance between two phone sequences over the length of `ref` (pronunciation
    variants the aligner picks, e.g. "or" as F AO R or F ER, count as substitutions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(len(ref), 1)


def _frame_agreement(a: list, b: list) -> float:
    """Fraction of 10 ms frames (over the shorter alignment) given the same phone label."""
    from ..analysis.metrics import labels_at

    end = min(a[-1].end, b[-1].end)
    t = np.arange(0.005, end, 0.01)
    if not len(t):
        return 0.0
    return float(np.mean(labels_at(a, t) == labels_at(b, t)))


def evaluate_like_conversion(sources: Sequence[tuple[str | os.PathLike, str | None]], convert: Callable,
                             targets: Sequence[TargetVoice],
                             speaker_refs: dict[str, Sequence[str | os.PathLike]], out_dir: str | os.PathLike,
                             sample_rate: int = SAMPLE_RATE, align: bool = True, notes: list[str] | None = None,
                             progress: bool = True, echo: Callable[[str], None] = print,
                             source_label: str = "", resynthesize: Callable | None = None) -> dict:
    """Conversion of every source to every target voice, scored by resemblyzer cosine and by checks
    that use no speaker encoder (evaluation/conversion.py).

    convert(wav, sr, target_name) -> wav at `sample_rate` (called source by source, each source
    once per target in `targets` order, the same `wav` object for all targets of a source).
    Per (source, target) pair: sim_target = cos(converted, target's other clips), sim_source =
    cos(converted, the source speaker's clips in `speaker_refs` other than the source file),
    sim_original_target = cos(original, target's other clips), the floor before conversion.
    Intelligibility (sources with a .txt transcript next to them, pocketsphinx installed, `align`):
    the built-in forced aligner on the original and on each conversion; reported are how often
    each aligns, how often the converted phone sequence (pauses dropped) equals the original's,
    and the fraction of 10 ms frames with the same phone. Writes convert.json and convert.csv.

    Independent of resemblyzer: (1) parallel data: when the target's folder holds a clip with the
    source file's name (the same sentence; `corpus synth --parallel`) that is not in its reference,
    the DTW mel-cepstral distance of the converted speech to that reading and to the source
    ("parallel_win": closer to the target); (2) an MFCC speaker classifier trained on the clips of
    every target and source voice names the converted file's voice; (3) median F0 of converted
    speech vs the target's (semitones); (4) with `resynthesize(wav, sr)` (the source decoded with
    its own voice), the swap sensitivity of each conversion.
    """
    from ..progress import bar as tqdm

    notes = notes if notes is not None else []
    targets = list(targets)
    if not targets:
        raise VqcodecError("no target voices to convert to")
    sources = [(Path(p), s) for p, s in sources]
    clip_cache: dict[str, np.ndarray] = {}

    def clip_emb(path) -> np.ndarray:
        key = str(path)
        if key not in clip_cache:
            clip_cache[key] = metrics.speaker_embedding(load(path, sample_rate), sample_rate)
        return clip_cache[key]

    target_emb = {t.name: _mean_direction([clip_emb(p) for p in t.other_clips]) for t in targets}
    target_info = {t.name: {"reference_clips": [str(p) for p in t.reference_clips],
                            "reference_seconds": round(t.reference_seconds, 2),
                            "scored_against": [str(p) for p in t.other_clips],
                            # how alike the reference and the other clips are: the ceiling for sim_target
                            "reference_vs_others": float(metrics.speaker_embedding(t.reference, sample_rate)
                                                         @ target_emb[t.name])}
                   for t in targets}

    aligner, why_not = None, None
    have_text = [p for p, _ in sources if p.with_suffix(".txt").is_file()]
    if not align:
        why_not = "not asked for (--no-align)"
    elif not have_text:
        why_not = "no source has a .txt transcript next to it"
    else:
        from ..analysis.aligner import ForcedAligner
        from ..errors import MissingToolError as _Missing
        try:
            aligner = ForcedAligner()
        except _Missing as e:
            why_not = str(e)

    def align_one(wav, text):
        try:
            return _phone_tier(aligner.align(wav, text))
        except VqcodecError:
            return None

    target_f0 = {t.name: conversion.median_f0(np.concatenate([load(p, sample_rate) for p in t.other_clips]),
                                              sample_rate) for t in targets}
    for t in targets:
        target_info[t.name]["median_f0"] = target_f0[t.name]
    classifier = _voice_classifier(targets, speaker_refs, sample_rate, notes, resynthesize)

    rows = []
    pairs = [(p, s, t) for p, s in sources for t in targets if s != t.name]
    if len(pairs) < len(sources) * len(targets):
        notes.append(f"{len(sources) * len(targets) - len(pairs)} pair(s) whose source speaker has the target "
                     "voice's name were left out")
    if not pairs:
        raise VqcodecError("no (source, target voice) pairs to convert")
    bar = tqdm(total=len(pairs), desc="converting", unit="pair", disable=not progress)
    for path, spk in sources:
        todo = [t for t in targets if spk != t.name]
        if not todo:
            continue
        wav = load(path, sample_rate)
        e_orig = metrics.speaker_embedding(wav, sample_rate)
        own = [q for q in (speaker_refs.get(spk) or []) if Path(q) != path] if spk is not None else []
        source_emb = _mean_direction([clip_emb(q) for q in own]) if own else None
        text = path.with_suffix(".txt").read_text(encoding="utf-8", errors="replace").strip() \
            if aligner is not None and path.with_suffix(".txt").is_file() else None
        orig_al = align_one(wav, text) if text else None
        own_voice = (np.asarray(resynthesize(wav, sample_rate), dtype=np.float32).reshape(-1)
                     if resynthesize is not None else None)
        for t in todo:
            out = np.asarray(convert(wav, sample_rate, t.name), dtype=np.float32).reshape(-1)
            e_conv = metrics.speaker_embedding(out, sample_rate)
            row: dict = {"file": str(path), "source_speaker": spk, "target": t.name,
                         "sim_target": float(e_conv @ target_emb[t.name]),
                         "sim_source": None if source_emb is None else float(e_conv @ source_emb),
                         "sim_original_target": float(e_orig @ target_emb[t.name])}
            row["closer_to_target"] = None if row["sim_source"] is None else row["sim_target"] > row["sim_source"]
            row["target_reached"] = row["sim_target"] >= SIM_TARGET_GOAL
            row.update(_independent_scores(path, wav, out, own_voice, t, target_f0[t.name], classifier, spk,
                                           sample_rate))
            if text:
                conv_al = align_one(out, text)
                row["original_aligned"], row["converted_aligned"] = orig_al is not None, conv_al is not None
                if orig_al is not None and conv_al is not None:
                    row["phones_match"] = conv_al[0] == orig_al[0]
                    row["phone_error_rate"] = _phone_error_rate(orig_al[0], conv_al[0])
                    row["phone_frame_agreement"] = _frame_agreement(orig_al[1], conv_al[1])
            rows.append(row)
            bar.update(1)
    bar.close()

    def summarise(rs: list[dict]) -> dict:
        judged = [r["closer_to_target"] for r in rs if r["closer_to_target"] is not None]
        return {"pairs": len(rs),
                "mean": {k: _nanmean(r.get(k) for r in rs) for k in (
                    "sim_target", "sim_source", "sim_original_target", "mcd_target", "mcd_source",
                    "mcd_original_target", "swap_sensitivity", "f0_error_semitones")},
                "fraction_closer_to_target": (sum(judged) / len(judged)) if judged else None,
                "fraction_target_reached": sum(r["target_reached"] for r in rs) / len(rs) if rs else None,
                **_independent_summary(rs)}

    per_target = {t.name: {**summarise([r for r in rows if r["target"] == t.name]), **target_info[t.name]}
                  for t in targets}
    intel: dict = {"skipped": why_not} if why_not else {}
    if not why_not:
        with_text = [r for r in rows if "converted_aligned" in r]
        seen, orig_ok = set(), []
        for r in with_text:
            if r["file"] not in seen:
                seen.add(r["file"])
                orig_ok.append(r["original_aligned"])
        both = [r for r in with_text if "phones_match" in r]
        intel = {"aligner": "pocketsphinx (vqcodec.analysis.aligner)",
                 "sources_with_transcript": len(seen), "pairs_with_transcript": len(with_text),
                 "original_aligned": sum(orig_ok) / len(orig_ok) if orig_ok else None,
                 "converted_aligned": (sum(r["converted_aligned"] for r in with_text) / len(with_text)
                                       if with_text else None),
                 "pairs_compared": len(both),
                 "phone_sequence_match": sum(r["phones_match"] for r in both) / len(both) if both else None,
                 "phone_error_rate": _nanmean(r["phone_error_rate"] for r in both),
                 "phone_frame_agreement": _nanmean(r["phone_frame_agreement"] for r in both)}
    summary = summarise(rows)
    report = {"mode": "like", "target": f"{len(targets)} voice(s) from {source_label}" if source_label
              else f"{len(targets)} voice(s)",
              "num_files": len(rows), "num_pairs": len(rows), "num_sources": len({r["file"] for r in rows}),
              "num_targets": len(targets), **{k: v for k, v in summary.items() if k != "pairs"},
              "classifier": None if classifier is None else {
                  "voices": classifier.voices, "clips": classifier.num_clips,
                  "training_accuracy": classifier.training_accuracy,
                  "features": "means and stds of MFCC c1..c24 and stds of their deltas; logistic regression"},
              "sim_target_goal": SIM_TARGET_GOAL, "targets": per_target, "intelligibility": intel,
              "per_file": rows, "notes": notes,
              "metric": "resemblyzer GE2E cosine similarity",
              "definitions": {
                  "sim_target": "cos(converted, mean of the target voice's clips not used in its reference)",
                  "sim_source": "cos(converted, mean of the source speaker's other clips)",
                  "sim_original_target": "cos(original source, the same target clips): before conversion",
                  "fraction_target_reached": f"pairs with sim_target >= {SIM_TARGET_GOAL:.2f}",
                  "phone_sequence_match": "pairs whose converted forced alignment has the original's "
                                          "phone sequence (pauses dropped), of pairs where both aligned",
                  "phone_error_rate": "mean Levenshtein distance of the converted alignment's phone sequence "
                                      "to the original's, over the original's length",
                  "phone_frame_agreement": "mean fraction of 10 ms frames with the same phone in both alignments",
                  "mcd_target": "DTW mel-cepstral distance (dB, c1..c24) of the converted speech to the target "
                                "voice's own reading of the same sentence (parallel data only)",
                  "mcd_source": "the same distance to the source recording",
                  "mcd_original_target": "the same distance from the source recording to the target's reading: "
                                         "before conversion",
                  "parallel_win_rate": "pairs with mcd_target < mcd_source",
                  "classifier_target_rate": "pairs whose converted file the MFCC speaker classifier names as "
                                            "the target voice",
                  "classifier_source_rate": "pairs whose converted file it names as the source voice",
                  "swap_sensitivity": "mean |log-mel(converted) - log-mel(source decoded with its own voice)| / "
                                      "mean |log-mel(that decode) - log-mel(original)|",
                  "f0_error_semitones": "|converted median F0 - target's median F0| in semitones (YIN)",
                  "f0_within_1_semitone": "pairs with f0_error_semitones <= 1"}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "convert.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    cols = ["file", "source_speaker", "target", "sim_target", "sim_source", "sim_original_target",
            "original_aligned", "converted_aligned", "phones_match", "phone_error_rate", "phone_frame_agreement",
            "mcd_target", "mcd_source", "mcd_original_target", "parallel_win", "classifier_voice",
            "swap_sensitivity", "f0_converted", "f0_error_semitones"]
    with atomic_path(out_dir / "convert.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([_fmt_csv(r.get(c)) if isinstance(r.get(c), float) else
                        ("" if r.get(c) is None else r.get(c)) for c in cols])
    echo(format_like_conversion(report))
    return report


def _voice_classifier(targets, speaker_refs, sample_rate: int, notes: list[str], resynthesize=None):
    """The MFCC speaker classifier over every target voice's clips and every source speaker's
    clips, each also as `resynthesize` gives it back (None, noted, when scikit-learn is missing or
    there are fewer than two voices)."""
    clips: dict[str, list[np.ndarray]] = {}
    for t in targets:
        clips.setdefault(t.name, []).extend(load(p, sample_rate) for p in t.reference_clips + t.other_clips)
    for spk, paths in (speaker_refs or {}).items():
        if spk is not None and spk not in clips:
            clips[spk] = [load(p, sample_rate) for p in paths]
    if resynthesize is not None:
        clips = {v: cs + [np.asarray(resynthesize(c, sample_rate), dtype=np.float32).reshape(-1) for c in cs]
                 for v, cs in clips.items()}
    try:
        return conversion.SpeakerClassifier(clips, sample_rate)
    except ImportError:
        notes.append("speaker classifier skipped: scikit-learn is not installed (pip install scikit-learn)")
    except ValueError as e:
        notes.append(f"speaker classifier skipped: {e}")
    return None


def _independent_scores(path: Path, wav, out, own_voice, target, target_f0, classifier, spk,
                        sample_rate: int) -> dict:
    """One pair's scores that use no speaker encoder (see evaluate_like_conversion)."""
    row: dict = {}
    reading = target.reference_clips[0].parent / path.name  # the target's reading of the same sentence
    if reading.is_file() and reading not in target.reference_clips and reading.resolve() != path.resolve():
        theirs = load(reading, sample_rate)
        row["mcd_target"] = conversion.dtw_mcd(out, theirs, sample_rate)
        row["mcd_source"] = conversion.dtw_mcd(out, wav, sample_rate)
        row["mcd_original_target"] = conversion.dtw_mcd(wav, theirs, sample_rate)
        row["parallel_win"] = row["mcd_target"] < row["mcd_source"]
    if classifier is not None:
        named = classifier.name(out)
        row["classifier_voice"] = named
        row["classifier_names_target"] = named == target.name
        row["classifier_names_source"] = named == spk
    if own_voice is not None:
        row["swap_sensitivity"] = conversion.swap_sensitivity(out, own_voice, wav, sample_rate)
    row["f0_converted"] = conversion.median_f0(out, sample_rate)
    row["f0_error_semitones"] = conversion.semitones(row["f0_converted"], target_f0)
    return row


def _independent_summary(rs: list[dict]) -> dict:
    """Rates over the pairs that have each score (None where none has it)."""
    def rate(key, rows=rs):
        got = [r[key] for r in rows if r.get(key) is not None]
        return sum(got) / len(got) if got else None
    f0 = [r for r in rs if r.get("f0_error_semitones") is not None]
    return {"parallel_pairs": sum("parallel_win" in r for r in rs), "parallel_win_rate": rate("parallel_win"),
            "classifier_target_rate": rate("classifier_names_target"),
            "classifier_source_rate": rate("classifier_names_source"),
            "f0_within_1_semitone": (sum(r["f0_error_semitones"] <= 1 for r in f0) / len(f0)) if f0 else None}


def format_like_conversion(report: dict) -> str:
    """The plain-text summary of `evaluate_like_conversion`: one row per target voice, then all."""
    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)
    goal = report["sim_target_goal"]
    w = max([12] + [len(n) + 2 for n in report["targets"]])
    head = (f"{'target voice':<{w}}{'pairs':>6}{'ref s':>7}{'sim tgt':>9}{'sim src':>9}{'before':>8}"
            f"{'tgt>src':>9}{f'tgt>={goal:.2f}':>10}{'ref~own':>9}")
    lines = [f"conversion of {report['num_sources']} source file(s) to {report['num_targets']} voice(s), "
             f"{report['num_pairs']} pair(s); {report['metric']}", head, "-" * len(head)]

    def line(name, d, ref_s="", ceiling=None):
        m = d["mean"]
        lines.append(f"{name:<{w}}{d['pairs']:>6}{ref_s:>7}{f(m['sim_target']):>9}{f(m['sim_source']):>9}"
                     f"{f(m['sim_original_target']):>8}{f(d['fraction_closer_to_target'], '.0%'):>9}"
                     f"{f(d['fraction_target_reached'], '.0%'):>10}{f(ceiling):>9}")
    for name, d in report["targets"].items():
        line(name, d, f"{d['reference_seconds']:.1f}", d["reference_vs_others"])
    line("all", {"pairs": report["num_pairs"], **report})
    lines.append("(sim tgt: converted vs the target's clips not in its reference; sim src: vs the source "
                 "speaker's other clips; before: original vs target; ref~own: the reference vs those clips)")
    head2 = (f"{'target voice':<{w}}{'par.':>6}{'win':>6}{'mcd tgt':>9}{'mcd src':>9}{'before':>8}"
             f"{'clf tgt':>9}{'clf src':>9}{'swap':>7}{'F0 err':>8}{'<=1 st':>8}")
    lines += ["checks without a speaker encoder", head2, "-" * len(head2)]

    def line2(name, d):
        m = d["mean"]
        lines.append(f"{name:<{w}}{d.get('parallel_pairs', 0):>6}{f(d.get('parallel_win_rate'), '.0%'):>6}"
                     f"{f(m.get('mcd_target'), '.2f'):>9}{f(m.get('mcd_source'), '.2f'):>9}"
                     f"{f(m.get('mcd_original_target'), '.2f'):>8}{f(d.get('classifier_target_rate'), '.0%'):>9}"
                     f"{f(d.get('classifier_source_rate'), '.0%'):>9}{f(m.get('swap_sensitivity'), '.2f'):>7}"
                     f"{f(m.get('f0_error_semitones'), '.2f'):>8}{f(d.get('f0_within_1_semitone'), '.0%'):>8}")
    for name, d in report["targets"].items():
        line2(name, d)
    line2("all", report)
    clf = report.get("classifier")
    lines.append("(par.: pairs with the target's own reading of the sentence; win: converted closer to it than to "
                 "the source, DTW mel-cepstral distance in dB; clf: an MFCC speaker classifier names the target / "
                 "the source" + (f", trained on {clf['clips']} clips of {len(clf['voices'])} voices" if clf else "")
                 + "; swap: output change from another voice vector / reconstruction error; F0 err: semitones)")
    it = report["intelligibility"]
    if "skipped" in it:
        lines.append(f"intelligibility: skipped ({it['skipped']})")
    else:
        lines.append(f"intelligibility ({it['sources_with_transcript']} source(s) with transcripts, forced "
                     f"alignment): aligned {f(it['original_aligned'], '.0%')} of originals, "
                     f"{f(it['converted_aligned'], '.0%')} of conversions; converted phone sequence = "
                     f"original's in {f(it['phone_sequence_match'], '.0%')} of {it['pairs_compared']} pair(s) "
                     f"(phone error rate {f(it['phone_error_rate'], '.1%')}), same phone in "
                     f"{f(it['phone_frame_agreement'], '.0%')} of 10 ms frames")
    for n in report.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)


__all__ = ["evaluate", "score", "delay_of", "collect_files", "CodecSystem", "format_table", "plot_spectrograms", "evaluate_conversion",
           "evaluate_like_conversion", "format_like_conversion", "target_voices", "TargetVoice",
           "METRICS", "COLUMNS"]
