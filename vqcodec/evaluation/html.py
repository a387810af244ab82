"""The listening report: one self-contained HTML page to hear and see every system side by side.

`vqcodec eval -o DIR` and `vqcodec eval-convert -o DIR` write DIR/index.html and DIR/listen/:
the summary table at the top, then one block per listened file with an `<audio>` player, the
per-file scores and a spectrogram for the original and each system. Players and images use
relative links into DIR/listen/, so the folder can be zipped, copied or served as it is; the page
loads nothing from the network (inline CSS, a few lines of inline JS).

Spectrograms are the log-mel of `metrics.log_mel` written pixel for pixel (`pyplot.imsave`: one
column per 16 ms frame, SPEC_ROW_PX rows per mel band: 160 px tall), with a frequency axis in kHz
beside each (`metrics.mel_axis`: where 0.5-8 kHz fall on the mel scale), all on one colour
scale for the whole page, and each
system's output is shifted by the lag eval scored it with and cut to the original's length, so the
images of one file line up in time. Their widths are proportional to duration.

The decoded audio comes from `Recorder`, a wrapper the CLI puts around each evaluation system: it
keeps the output of the files chosen for listening (`--listen N`, the first N) in memory, so
nothing is decoded twice. The folder is built under a temporary name and swapped in at the end:
a failed run leaves the previous report untouched. matplotlib (the analysis extra) is imported
only here, when a page with spectrograms is written.
"""
from __future__ import annotations

import html
import inspect
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

import numpy as np

from ..errors import VqcodecError
from ..files import atomic_path, remove_stale_temps, temp_dir

PAGE = "index.html"
LISTEN_DIR = "listen"
SPEC_ROW_PX = 2  # pixel rows per mel band: 80 bands -> 160 px, tall enough to read formants


# --------------------------------------------------------------------------- capturing the audio
class Recorder:
    """An evaluation system that also keeps its output for the files in `keep` (paths as str).

    Behaves like the wrapped system for `report.evaluate` (same call, `source` passed through only
    if the system takes it; other attributes are forwarded). `outputs[file]` is the decoded wav,
    `inputs[file]` the input it was given (the original at the evaluation rate).
    """

    def __init__(self, system: Callable, keep: Sequence[str]):
        self.system = system
        self.keep = {str(k) for k in keep}
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        try:
            params = inspect.signature(system).parameters
            self._takes_source = "source" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            self._takes_source = False

    def __call__(self, wav, sr, source=None):
        out = self.system(wav, sr, source=source) if self._takes_source else self.system(wav, sr)
        if source is not None and str(source) in self.keep:
            self.inputs[str(source)] = np.asarray(wav, dtype=np.float32).reshape(-1).copy()
            self.outputs[str(source)] = np.asarray(out[0], dtype=np.float32).reshape(-1).copy()
        return out

    def __getattr__(self, name):
        if name == "system":  # not set yet (e.g. during copy): no recursion
            raise AttributeError(name)
        return getattr(self.system, name)


# --------------------------------------------------------------------------- page model
@dataclass
class Clip:
    """One player + spectrogram row: `wav` is what the player plays, `view` (default: `wav`) what
    the spectrogram shows, already time-aligned to the block's first clip. Clips with the same
    `share` key are written once and linked from every block."""
    label: str
    wav: np.ndarray
    scores: dict[str, str] = field(default_factory=dict)
    view: np.ndarray | None = None
    share: str | None = None


@dataclass
class Block:
    title: str
    columns: list[str]  # score columns, in order (keys of Clip.scores)
    clips: list[Clip]


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()
    return s[:60] or "x"


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


# --------------------------------------------------------------------------- assets
def _colour_scale(wavs: Sequence[np.ndarray], sr: int) -> tuple[float, float]:
    """One log10-mel range for the whole page: top = the loudest original (rounded up to 0.5),
    4.5 decades (90 dB) below it, never under the 1e-5 floor of `log_mel`."""
    from . import metrics

    top = max([float(metrics.log_mel(w, sr).max()) for w in wavs if len(w)] + [-4.0])
    vmax = math.ceil(top * 2) / 2
    return max(math.log10(metrics.MEL_FLOOR), vmax - 4.5), vmax


def _spectrogram(path: Path, wav: np.ndarray, sr: int, vmin: float, vmax: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import metrics

    plt.imsave(path, np.repeat(metrics.log_mel(wav, sr), SPEC_ROW_PX, axis=0), cmap="magma", vmin=vmin,
               vmax=vmax, origin="lower", format="png")


def _frequency_axis(sr: int) -> str:
    """The kHz labels beside a spectrogram, placed where each frequency falls on the mel scale."""
    from . import metrics

    spans = "".join(f"<span style='bottom:{100 * frac:.1f}%'>{metrics.khz_label(hz)}</span>"
                    for hz, frac in metrics.mel_axis(sr))
    return f"<div class='ax'>{spans}</div>"


def _legend(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, np.linspace(0, 1, 256)[None, :].repeat(8, 0), cmap="magma", vmin=0, vmax=1,
               format="png")


def _write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1, 1), sr,
             subtype="PCM_16", format="WAV")


# --------------------------------------------------------------------------- the page
CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1280px;
 padding:0 1em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.15em;margin:1.6em 0 .4em}
h3{font-size:1em;margin:1.4em 0 .3em;font-family:ui-monospace,monospace}
.meta,.note{color:#555;font-size:.9em} .note{margin:.1em 0}
table{border-collapse:collapse} th,td{padding:.25em .6em;text-align:right;vertical-align:middle}
td.ax{padding:2px 0 2px .3em;width:3.8em}
div.ax{position:relative;height:160px;font-size:.75em;color:#555;border-right:1px solid #999}
div.ax span{position:absolute;right:5px;transform:translateY(50%);white-space:nowrap;line-height:1}
div.ax span:after{content:"";position:absolute;right:-5px;top:50%;width:4px;border-top:1px solid #999}
th{background:#f0f0f3;font-weight:600;white-space:nowrap} tr+tr td{border-top:1px solid #e4e4e8}
td.name,th.name{text-align:left;white-space:nowrap} td.best{font-weight:700}
table.listen{width:100%} table.listen td.spec{width:55%;text-align:left;padding:2px .6em}
td.spec img{display:block;height:160px}
audio{height:32px;width:240px;vertical-align:middle}
.legend{display:inline-flex;gap:.4em;align-items:center}
.legend img{width:160px;height:10px}
"""

# Pause the other players when one starts; mark each player's load state (data-state), which the
# browser test reads back from the DOM.
JS = """
document.querySelectorAll('audio').forEach(function(a){
  a.addEventListener('play',function(){document.querySelectorAll('audio').forEach(function(b){
    if(b!==a)b.pause();});});
  a.addEventListener('loadedmetadata',function(){a.dataset.state='loaded';});
  a.addEventListener('error',function(){a.dataset.state='error';});
  if(a.readyState>0)a.dataset.state='loaded';
});
"""


def _summary_table(header: list[str], rows: list[list[str]], best: dict[int, int] | None = None) -> str:
    """rows: cell texts (already escaped or plain); best: column index -> row index to bold."""
    best = best or {}
    out = ["<table class='summary'><tr>"]
    out += [f"<th class='name'>{html.escape(h)}</th>" if i == 0 else f"<th>{html.escape(h)}</th>"
            for i, h in enumerate(header)]
    out.append("</tr>")
    for r, row in enumerate(rows):
        cells = []
        for c, text in enumerate(row):
            cls = "name" if c == 0 else ("best" if best.get(c) == r else "")
            cells.append(f"<td class='{cls}'>{text}</td>" if cls else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _best_rows(rows: list[list[float | None]], better: list[int]) -> dict[int, int]:
    """For columns with better=+1 (higher) or -1 (lower): the row index of the best value."""
    best = {}
    for c, sign in enumerate(better):
        if not sign:
            continue
        vals = [(sign * r[c], i) for i, r in enumerate(rows) if r[c] is not None and not math.isnan(r[c])]
        if len(vals) > 1:
            best[c] = max(vals)[1]
    return best


def write_page(out_dir: str | os.PathLike, title: str, intro_html: str, summary_html: str,
               blocks: Sequence[Block], sample_rate: int, view_note: str = "") -> Path:
    """Write out_dir/index.html and the clips of `blocks` under out_dir/listen/ (wav + png each);
    `view_note` ends the sentence that explains the spectrograms.

    Built in a temporary folder and swapped in, so a failure leaves no half-written report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, recursive=False)  # a killed run's half-built folders
    tmp = temp_dir(out_dir, LISTEN_DIR)
    try:
        body = _render_blocks(tmp, blocks, sample_rate, view_note)
        page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<link rel='icon' href='data:,'>"  # no favicon request
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
                f"<h1>{html.escape(title)}</h1>\n{intro_html}\n{summary_html}\n{body}\n"
                f"<script>{JS}</script>\n</body></html>\n")
        old, backup = out_dir / LISTEN_DIR, None
        with atomic_path(out_dir / PAGE) as p:  # the page is renamed into place last
            p.write_text(page, encoding="utf-8")
            if old.exists():
                backup = temp_dir(out_dir, LISTEN_DIR + ".old")
                os.replace(old, backup / LISTEN_DIR)
            os.replace(tmp, old)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise VqcodecError(f"cannot write the listening report in {out_dir}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / PAGE


def _render_blocks(folder: Path, blocks: Sequence[Block], sr: int, view_note: str) -> str:
    if not any(b.clips for b in blocks):
        return ""
    vmin, vmax = _colour_scale([b.clips[0].wav for b in blocks if b.clips], sr)
    _legend(folder / "scale.png")
    axis = _frequency_axis(sr)
    parts = [f"<h2>Listen</h2>\n<p class='meta'>Spectrograms: log<sub>10</sub> mel magnitude "
             f"(80 bands on a kHz axis, 16 ms frames), one colour scale for the page "
             f"<span class='legend'>{vmin:g} <img src='{LISTEN_DIR}/scale.png' alt='colour scale'> "
             f"{vmax:g}</span>; widths to one time scale{view_note}.</p>"]
    shared: dict[str, str] = {}
    taken: set[str] = set()
    longest = max(len(c.view if c.view is not None else c.wav) for b in blocks for c in b.clips) or 1
    for n, block in enumerate(blocks, 1):
        sub = _unique(f"{n:02d}-{_slug(Path(block.title).stem)}", taken)
        (folder / sub).mkdir()
        rows = []
        names: set[str] = set()
        for clip in block.clips:
            view = clip.view if clip.view is not None else clip.wav
            if clip.share and clip.share in shared:
                rel = shared[clip.share]
            else:
                rel = f"{sub}/{_unique(_slug(clip.label), names)}"
                _write_wav(folder / f"{rel}.wav", clip.wav, sr)
                _spectrogram(folder / f"{rel}.png", view, sr, vmin, vmax)
                if clip.share:
                    shared[clip.share] = rel
            href = quote(f"{LISTEN_DIR}/{rel}")
            width = 100.0 * len(view) / longest
            scores = "".join(f"<td>{html.escape(clip.scores.get(c, ''))}</td>" for c in block.columns)
            rows.append(f"<tr><td class='name'>{html.escape(clip.label)}</td>"
                        f"<td><audio controls preload='metadata' src='{href}.wav'></audio></td>{scores}"
                        f"<td class='ax'>{axis}</td><td class='spec'><img src='{href}.png' style='width:{width:.1f}%' "
                        f"alt='spectrogram: {html.escape(clip.label, quote=True)}'></td></tr>")
        seconds = len(block.clips[0].wav) / sr
        head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
        parts.append(f"<h3>{html.escape(block.title)} <span class='meta'>({seconds:.1f} s)</span></h3>\n"
                     f"<table class='listen'><tr><th class='name'></th><th>listen</th>{head}"
                     f"<th>kHz</th><th class='name'>spectrogram</th></tr>\n" + "\n".join(rows) + "\n</table>")
    return "\n".join(parts)


def _notes_html(notes: Sequence[str]) -> str:
    return "\n".join(f"<p class='note'>note: {html.escape(n)}</p>" for n in notes)


# --------------------------------------------------------------------------- eval
# (report key, column label, format, +1 higher is better / -1 lower / 0 neither, scale)
EVAL_COLUMNS = [("pesq_wb", "PESQ-WB", ".2f", 1, 1.0), ("stoi", "STOI", ".3f", 1, 1.0),
                ("mel_distance", "mel dist", ".3f", -1, 1.0),
                ("speaker_similarity", "speaker sim", ".3f", 1, 1.0),
                ("harmonicity", "harmonicity 1.5-4 kHz", ".2f", 1, 1.0),
                ("harmonicity_original", "(original's)", ".2f", 0, 1.0),
                ("bitrate_bps", "kbps", ".2f", 0, 1e-3), ("lag_ms", "lag ms", ".1f", 0, 1.0)]


def _system_value(s: dict, key: str):
    """A system's summary value: its mean, else its own field (e.g. a per-system lag), else the
    mean over its per-file rows."""
    v = (s.get("mean") or {}).get(key)
    if v is None:
        v = s.get(key)
    if v is None:
        vals = [r[key] for r in s.get("per_file", []) if r.get(key) is not None]
        v = float(np.mean(vals)) if vals else None
    return v


def _lag_samples(s: dict, row: dict, sr: int) -> int:
    lag = row.get("lag_ms", s.get("lag_ms"))
    return int(round(float(lag) * sr / 1000)) if lag is not None else 0


def write_eval_page(out_dir: str | os.PathLike, report: dict, recorders: dict[str, Recorder],
                    listen: int, sample_rate: int, title: str = "vqcodec listening report",
                    source: str = "", speakers: dict[str, str | None] | None = None) -> Path:
    """The eval page: `report` is what `report.evaluate` returned; `recorders` the Recorder around
    each system (name -> Recorder); the first `listen` files of the report get players;
    `speakers` (file -> speaker) titles each file block."""
    from . import metrics

    systems = report["systems"]
    cols = [c for c in EVAL_COLUMNS
            if any(_system_value(s, c[0]) is not None for s in systems.values() if not s.get("skipped"))]
    header = ["system", "files"] + [c[1] for c in cols]
    rows, values = [], []
    for name, s in systems.items():
        if s.get("skipped"):
            rows.append([html.escape(name), "0", f"skipped: {html.escape(str(s['skipped']))}"]
                        + [""] * (len(cols) - 1))
            values.append([None] * (len(cols) + 2))
            continue
        vals = [_system_value(s, c[0]) for c in cols]
        vals = [None if v is None else v * c[4] for v, c in zip(vals, cols)]
        rows.append([html.escape(name), str(s.get("num_files", ""))] + [_fmt(v, c[2]) for v, c in zip(vals, cols)])
        values.append([None, None] + vals)
    best = _best_rows(values, [0, 0] + [c[3] for c in cols])
    higher = ", ".join(c[1] for c in cols if c[3] > 0)
    lower = ", ".join(c[1] for c in cols if c[3] < 0)
    summary = (f"<h2>Means over {report['num_files']} file(s)</h2>\n"
               + _summary_table(header, rows, best)
               + f"\n<p class='meta'>{higher}: higher is better; {lower}: lower is better; best in bold. "
                 "kbps: the bitrate actually written; lag: the delay removed before scoring.</p>\n"
               + _notes_html(report.get("notes", [])))
    n_listen = max(0, min(listen, report["num_files"]))
    intro = (f"<p class='meta'>{html.escape(source)}{' · ' if source else ''}{report['num_files']} file(s), "
             f"{len(systems)} system(s); players and spectrograms for the first {n_listen}. "
             f"Scores and per-file numbers: report.json, report.csv.</p>")

    blocks = []
    file_cols = [c for c in cols if c[0] != "bitrate_bps"]
    for f in report["files"][:n_listen]:
        originals = [r.inputs[f] for r in recorders.values() if f in r.inputs]
        if not originals:
            continue  # every system failed on it: nothing to hear
        ref = originals[0]
        clips = [Clip("original", ref)]
        for name, rec in recorders.items():
            s = systems.get(name, {})
            row = next((r for r in s.get("per_file", []) if r.get("file") == f), None)
            if f not in rec.outputs or row is None:
                continue
            out = rec.outputs[f]
            view = metrics.shift(out, _lag_samples(s, row, sample_rate), length=len(ref))
            scores = {c[1]: _fmt(row.get(c[0]), c[2]) for c in file_cols}
            clips.append(Clip(name, out, scores, view=view))
        spk = (speakers or {}).get(f)
        blocks.append(Block(f"{spk}/{Path(f).name}" if spk else Path(f).name, [c[1] for c in file_cols], clips))
    return write_page(out_dir, title, intro, summary, blocks, sample_rate,
                      view_note="; each system's output time-aligned to the original by the lag it was "
                                "scored with")


# --------------------------------------------------------------------------- eval-convert
class ConvertRecorder:
    """Wraps eval-convert's `convert(wav, sr, speaker)`; keeps the first `keep` (input, output)
    pairs, in call order (evaluate_conversion converts its sources in order)."""

    def __init__(self, convert: Callable, keep: int):
        self.convert = convert
        self.keep = keep
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, wav, sr, speaker):
        out = self.convert(wav, sr, speaker)
        if len(self.pairs) < self.keep:
            self.pairs.append((np.asarray(wav, dtype=np.float32).reshape(-1).copy(),
                               np.asarray(out, dtype=np.float32).reshape(-1).copy()))
        return out


def write_convert_page(out_dir: str | os.PathLike, report: dict, recorder: ConvertRecorder,
                       reference: np.ndarray | dict[str, np.ndarray], sample_rate: int, title: str | None = None,
                       source: str = "") -> Path:
    """The eval-convert page: per listened file (or source/target pair) the source, the target's
    voice (`reference`: one real utterance of the target, or, for `--like-refs`, a dict of each
    target voice's reference recording by name, the row's "target"; each written once and linked
    from every block that uses it) and the converted speech."""
    from . import metrics

    target = report["target"]
    title = title or f"vqcodec voice conversion to {target}: listening report"
    mean = report["mean"]
    rows = [[html.escape(k), _fmt(mean.get(v), ".3f")] for k, v in
            (("converted vs target (sim_target)", "sim_target"),
             ("converted vs source (sim_source)", "sim_source"),
             ("original vs target, before conversion (sim_original_target)", "sim_original_target"))]
    rows.append(["closer to target than to source", _fmt(report.get("fraction_closer_to_target"), ".0%")])
    if report.get("fraction_target_reached") is not None:
        rows.append([html.escape(f"sim_target >= {report.get('sim_target_goal', 0.8):.2f}"),
                     _fmt(report["fraction_target_reached"], ".0%")])
    intel = report.get("intelligibility") or {}
    for label, key in (("forced alignment succeeds: originals", "original_aligned"),
                       ("forced alignment succeeds: converted", "converted_aligned"),
                       ("converted phone sequence = original's", "phone_sequence_match"),
                       ("phone error rate, converted vs original", "phone_error_rate"),
                       ("same phone per 10 ms frame", "phone_frame_agreement")):
        if key in intel:
            rows.append([html.escape(label), _fmt(intel[key], ".0%")])
    # the checks that use no speaker encoder (evaluation/conversion.py), where the report has them
    for label, value, spec in (
            ("parallel data: closer to the target's own reading (DTW MCD)", report.get("parallel_win_rate"), ".0%"),
            ("MCD to the target's reading, dB", mean.get("mcd_target"), ".2f"),
            ("MCD to the source, dB", mean.get("mcd_source"), ".2f"),
            ("MFCC speaker classifier names the target", report.get("classifier_target_rate"), ".0%"),
            ("MFCC speaker classifier names the source", report.get("classifier_source_rate"), ".0%"),
            ("swap sensitivity (output change / reconstruction error)", mean.get("swap_sensitivity"), ".2f"),
            ("median F0 within 1 semitone of the target's", report.get("f0_within_1_semitone"), ".0%")):
        if value is not None:
            rows.append([html.escape(label), _fmt(value, spec)])
    summary = (f"<h2>Means over {report['num_files']} file(s)</h2>\n"
               + _summary_table(["speaker similarity (" + report.get("metric", "cosine") + ")", "mean"], rows)
               + "\n<p class='meta'>Conversion works when converted speech is closer to the target than "
                 "to its source speaker. Per-file numbers: convert.json, convert.csv.</p>")
    n_listen = min(len(recorder.pairs), len(report["per_file"]))
    what = (f"{report.get('num_sources')} file(s) x {report.get('num_targets')} voice(s) = {report['num_files']} pair(s)"
            if report.get("mode") == "like" else f"{report['num_files']} file(s)")
    intro = (f"<p class='meta'>{html.escape(source)}{' · ' if source else ''}{what} "
             f"converted to {html.escape(target)}; players and spectrograms for the first {n_listen}.</p>")
    cols = ["sim target", "sim source", "MCD tgt", "MCD src", "classifier"]
    blocks = []
    for row, (wav, out) in zip(report["per_file"][:n_listen], recorder.pairs):
        voice = row.get("target", target)
        ref = reference[voice] if isinstance(reference, dict) else reference
        clips = [Clip(f"source ({row.get('source_speaker')})", wav,
                      {"sim target": _fmt(row.get("sim_original_target"), ".3f")}),
                 Clip(f"reference voice ({voice})", ref, share=f"reference {voice}"),
                 Clip(f"converted to {voice}", out,
                      {"sim target": _fmt(row.get("sim_target"), ".3f"),
                       "sim source": _fmt(row.get("sim_source"), ".3f"),
                       "MCD tgt": _fmt(row.get("mcd_target"), ".2f"), "MCD src": _fmt(row.get("mcd_source"), ".2f"),
                       "classifier": str(row.get("classifier_voice") or "–")},
                      view=metrics.shift(out, 0, length=len(wav)))]
        name = f"{row.get('source_speaker')}/{Path(row['file']).name}"
        blocks.append(Block(f"{name} -> {voice}" if "target" in row else name, cols, clips))
    return write_page(out_dir, title, intro, summary, blocks, sample_rate)


__all__ = ["Recorder", "ConvertRecorder", "write_eval_page", "write_convert_page", "write_page", "Clip",
           "Block", "PAGE", "LISTEN_DIR"]
