"""`vqcodec analyze phonemes`: tokens of a corpus vs its phone alignments, next to an MFCC k-means
baseline, a k-means on the model's continuous encoder outputs z_e (same K, same rate) and the
paper's numbers; writes report.json, heatmap.png and confusion.png.

The codec is anything with `encode(wav, sample_rate) -> int tokens`, `hop`, `sample_rate` and
`codebook_size` (a `vqcodec.api.Codec`, or a fake in tests). A bitrate-ladder model's tokens
(frames, N) are analysed by their first codebook: the coarse code of each frame, which alone
decodes (the others refine what it left).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VqcodecError
from ..files import atomic_path, walk
from .alignments import find_alignment, read_alignment
from .metrics import SILENCE, TokenizedUtterance, analyze_tokens, speaker_independence, split_utterances

PAPER = {"mapping_accuracy": 0.493, "majority_baseline": 0.072, "codebook_size": 128, "phones": 41,
         "source": "van den Oord et al. 2017, Neural Discrete Representation Learning, section 4.3"}
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass
class Utterance:
    audio: Path
    speaker: str
    alignment: Path | None
    transcript: str | None


def find_corpus(data_dir: str | os.PathLike, alignments_dir: str | os.PathLike | None = None) -> list[Utterance]:
    """Audio files (wav/flac, recursively, sorted) under data_dir; speaker = first folder level
    below data_dir; alignment via `find_alignment`; transcript = same-stem .txt next to the audio."""
    root = Path(data_dir)
    if not root.is_dir():
        raise VqcodecError(f"{root}: not a directory")
    out = []
    for p in walk(root, AUDIO_SUFFIXES):
        rel = p.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else "(none)"
        txt = p.with_suffix(".txt")
        transcript = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else None
        out.append(Utterance(p, speaker, find_alignment(p, alignments_dir), transcript))
    return out


def run_phoneme_analysis(codec: Any, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                         alignments_dir: str | os.PathLike | None = None, align: bool = False,
                         split_seed: int = 0, test_fraction: float = 0.2, limit: int | None = None,
                         baseline: bool = True, ignore_silence: bool = False, progress: bool = True,
                         model_name: str = "", encoder_kmeans: bool = True) -> dict:
    """Encode every aligned utterance of data_dir, compute all metrics for the model, for the
    MFCC k-means baseline and (`encoder_kmeans`, codecs with an encoder) for k-means on the
    encoder's continuous outputs z_e (both at the model's K, hop and split), write report.json,
    heatmap.png, confusion.png (and baseline_heatmap.png) into out_dir. report["side_by_side"]
    puts the headline numbers of the three in one table. Returns the report dict."""
    from ..audio import load
    from ..progress import bar as tqdm  # plain lines when stderr is not a terminal
    from . import plots

    out_dir = Path(out_dir)
    hop, sr, K = int(codec.hop), int(codec.sample_rate), int(codec.codebook_size)
    utts = find_corpus(data_dir)
    if not utts:
        raise VqcodecError(f"{data_dir}: no .wav or .flac files found")
    notes = []
    if align:
        from .aligner import align_corpus
        todo = [u for u in utts if u.transcript]
        if limit:
            todo = todo[:limit]
        if len(todo) < len(utts) and not limit:
            notes.append(f"{len(utts) - len(todo)} file(s) have no .txt transcript: not aligned")
        aligned_dir = out_dir / "alignments"
        rep = align_corpus([(u.audio, u.transcript) for u in todo], aligned_dir, root=data_dir, progress=progress)
        for path, reason in rep.skipped.items():
            notes.append(f"not aligned: {path}: {reason}")
        for u in utts:
            u.alignment = find_alignment(u.audio, aligned_dir) if u.transcript else None
    elif alignments_dir is not None:
        for u in utts:
            u.alignment = find_alignment(u.audio, alignments_dir)
    without = [u for u in utts if u.alignment is None]
    utts = [u for u in utts if u.alignment is not None]
    if without:
        notes.append(f"{len(without)} audio file(s) without an alignment were skipped "
                     f"(e.g. {without[0].audio})")
    if limit:
        utts = utts[:limit]
    if not utts:
        raise VqcodecError(f"{data_dir}: no audio file has an alignment (.TextGrid/.pho/.tsv/.ctm with the "
                           "same name; pass --alignments DIR or --align)")

    from .baseline import encoder_frames, has_encoder

    with_ze = encoder_kmeans and has_encoder(codec)
    if encoder_kmeans and not with_ze:
        notes.append("z_e k-means skipped: the codec exposes no encoder")
    wavs, items, ze = [], [], []
    for u in tqdm(utts, desc="encoding", unit="file", disable=not progress):
        wav = load(u.audio, sr)
        codes = np.asarray(codec.encode(wav, sr), dtype=np.int64)
        codes = codes[:, 0] if codes.ndim == 2 else codes.reshape(-1)  # a ladder model: its first codebook
        intervals = read_alignment(u.alignment)
        wavs.append(wav)
        items.append(TokenizedUtterance(codes, intervals, u.speaker, u.transcript))
        if with_ze:
            ze.append(encoder_frames(codec, wav, sr, num_frames=len(codes)))
    is_test = split_utterances(len(items), test_fraction, split_seed)
    ignore = (SILENCE,) if ignore_silence else ()

    def analyse(tok_items):
        res = analyze_tokens([(t.codes, t.intervals) for t in tok_items], hop, sr, codebook_size=K,
                             is_test=is_test, ignore=ignore)
        d = res.to_dict()
        d["speaker_independence"] = speaker_independence(tok_items, hop, sr, K, is_test, split_seed)
        return res, d

    model_res, model_dict = analyse(items)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.code_phone_heatmap(model_res.counts, model_res.phones, out_dir / "heatmap.png",
                             title=f"P(phone | code), {model_name or 'model'} (K={K})")
    plots.confusion_plot(model_res.confusion, model_res.phones, out_dir / "confusion.png")

    report: dict[str, Any] = {
        "model": {"name": model_name, "hop": hop, "sample_rate": sr, "codebook_size": K},
        "data": {"dir": str(data_dir), "utterances": len(items), "speakers": sorted({u.speaker for u in utts}),
                 "alignments": "pocketsphinx (--align)" if align else str(alignments_dir or "next to audio"),
                 "silence_ignored": ignore_silence},
        "split": {"seed": split_seed, "test_fraction": test_fraction, "by": "utterance"},
        "paper": PAPER,
        "tokens": model_dict,
    }
    if baseline:
        from .baseline import fit_mfcc_kmeans, mfcc_frames
        feats = [mfcc_frames(w, sr, hop, num_frames=len(t.codes))  # once per utterance: fit and encode
                 for w, t in tqdm(list(zip(wavs, items)), desc="MFCC", unit="file", disable=not progress)]
        train = [f for f, t in zip(feats, is_test) if not t] or feats
        km = fit_mfcc_kmeans([], sr, hop, K, seed=split_seed, feats=np.concatenate(train))
        base_items = [TokenizedUtterance(km.encode_features(f), t.intervals, t.speaker, t.transcript)
                      for f, t in zip(feats, items)]
        base_res, base_dict = analyse(base_items)
        base_dict["method"] = (f"k-means (K={km.codebook_size}) on 13 MFCC + deltas + delta-deltas, "
                               f"one frame per {hop} samples, fitted on the training utterances")
        report["mfcc_kmeans"] = base_dict
        plots.code_phone_heatmap(base_res.counts, base_res.phones, out_dir / "baseline_heatmap.png",
                                 title=f"P(phone | code), MFCC k-means (K={km.codebook_size})")
    if with_ze:
        from .baseline import assign, fit_kmeans
        train = [z for z, t in zip(ze, is_test) if not t] or ze
        cents = fit_kmeans(np.concatenate(train), K, seed=split_seed)
        ze_items = [TokenizedUtterance(assign(z, cents), t.intervals, t.speaker, t.transcript)
                    for z, t in zip(ze, items)]
        _, ze_dict = analyse(ze_items)
        ze_dict["method"] = (f"k-means (K={len(cents)}) on the encoder's continuous outputs z_e "
                             f"({ze[0].shape[1]} dims, before the quantizer, not normalised), one frame per "
                             f"token, fitted on the training utterances")
        report["ze_kmeans"] = ze_dict
    report["side_by_side"] = side_by_side(report)
    report["notes"] = notes
    with atomic_path(out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _pct(x) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


SYSTEMS = (("tokens", "model"), ("mfcc_kmeans", "MFCC k-means"), ("ze_kmeans", "z_e k-means"))


def _speaker_numbers(d: dict) -> tuple:
    """(accuracy, chance) of the speaker-from-token-histogram classifier; Nones when skipped."""
    cl = d.get("speaker_independence", {}).get("speaker_classifier", {})
    return cl.get("accuracy"), cl.get("chance")


def side_by_side(report: dict) -> dict:
    """The headline numbers of the model's tokens, MFCC k-means and z_e k-means (those present),
    metric -> system -> value: what issue 14 compares (same K, rate, split and scoring)."""
    present = [(k, label) for k, label in SYSTEMS if report.get(k)]
    out: dict[str, Any] = {"systems": {k: label for k, label in present}}
    for metric, get in (("mapping_accuracy_test", lambda d: d["mapping_accuracy"]["test"]),
                        ("majority_baseline_test", lambda d: d["majority_baseline"]["test"]),
                        ("pnmi", lambda d: d["pnmi"]), ("phone_purity", lambda d: d["phone_purity"]),
                        ("cluster_purity", lambda d: d["cluster_purity"]),
                        ("codes_used", lambda d: d["codes_used"]),
                        ("speaker_from_histogram", lambda d: _speaker_numbers(d)[0]),
                        ("speaker_chance", lambda d: _speaker_numbers(d)[1])):
        out[metric] = {k: get(report[k]) for k, _ in present}
    return out


def format_summary(report: dict) -> str:
    """A readable, fixed-width summary of a report dict."""
    t = report["tokens"]
    b = report.get("mfcc_kmeans")
    z = report.get("ze_kmeans")
    p = report["paper"]
    K = report["model"]["codebook_size"]
    lines = [f"Phoneme analysis of {report['data']['utterances']} utterances "
             f"({t['num_utterances']['train']} train / {t['num_utterances']['test']} test), "
             f"{len(report['data']['speakers'])} speaker(s), {len(t['phones'])} phones, "
             f"{t['num_frames']['train'] + (t['num_frames']['test'] if t['num_utterances']['test'] else 0)} frames",
             "",
             f"{'':28}{'model':>12}{'MFCC k-means':>15}{('z_e k-means' if z else ''):>14}{'paper':>10}",
             f"{'':28}{f'(K={K})':>12}{(f'(K={K})' if b else ''):>15}{(f'(K={K})' if z else ''):>14}{'(K=128)':>10}"]

    def row(name, key, sub=None, paper=None, fmt=_pct, get=None):
        def value(d):
            if d is None:
                return None
            if get is not None:
                return get(d)
            v = d[key]
            return v[sub] if sub else v
        lines.append(f"{name:28}{fmt(value(t)):>12}{(fmt(value(b)) if b else ''):>15}"
                     f"{(fmt(value(z)) if z else ''):>14}{(fmt(paper) if paper is not None else ''):>10}")

    row("mapping accuracy (test)", "mapping_accuracy", "test", p["mapping_accuracy"])
    row("mapping accuracy (train)", "mapping_accuracy", "train")
    row("majority baseline (test)", "majority_baseline", "test", p["majority_baseline"])
    row("phone purity", "phone_purity")
    row("cluster purity", "cluster_purity")
    row("PNMI", "pnmi", fmt=lambda x: "   -  " if x is None else f"{x:6.3f}")
    row("codes used", "codes_used", fmt=str)
    row("code perplexity", "code_perplexity", fmt=lambda x: f"{x:.1f}")
    row("speaker from histogram", "", get=lambda d: _speaker_numbers(d)[0])
    row("  chance (majority speaker)", "", get=lambda d: _speaker_numbers(d)[1])
    lines.append(f"(majority phone: {t['majority_phone']}; mapping accuracy = each code -> its most frequent "
                 "phone on train, scored on test)")

    def codes(lst):
        return ", ".join(f"{c['code']}:{c['phone']} {100 * c['purity']:.0f}% (n={c['count']})" for c in lst[:5])

    lines += ["", f"most phonetic codes:  {codes(t['most_phonetic_codes'])}",
              f"least phonetic codes: {codes(t['least_phonetic_codes'])}"]
    rec = sorted(t["phone_recall"].items(), key=lambda kv: -kv[1]["recall"])
    def recall(lst):
        return ", ".join(f"{k} {100 * v['recall']:.0f}%" for k, v in lst)

    if len(rec) <= 12:
        lines.append("phone recall (test):   " + recall(rec))
    else:
        lines.append("best recalled phones:  " + recall(rec[:6]))
        lines.append("worst recalled phones: " + recall(rec[-6:]))
    lines += ["", "speaker independence:"]
    for label, d in (("model", t), ("MFCC k-means", b), ("z_e k-means", z)):
        if d is None:
            continue
        si = d["speaker_independence"]
        if "skipped" in si:
            lines.append(f"  {label}: skipped ({si['skipped']})")
            continue
        ag, cl = si["token_agreement"], si["speaker_classifier"]
        a = (f"same text, two speakers: {_pct(ag['agreement']).strip()} of tokens agree at phone centres "
             f"(chance {_pct(ag['chance']).strip()}, {ag['phones_compared']} phones, {ag['utterance_pairs']} pairs)"
             if "skipped" not in ag else f"token agreement skipped ({ag['skipped']})")
        c = (f"speaker from token histogram: {_pct(cl['accuracy']).strip()} (chance {_pct(cl['chance']).strip()}, "
             f"{cl['speakers']} speakers, {cl['test_utterances']} test utts)"
             if "skipped" not in cl else f"speaker classifier skipped ({cl['skipped']})")
        lines += [f"  {label}: {a}", f"  {'':{len(label)}}  {c}"]
    for n in report.get("notes", []) + t.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)
