"""`vqcodec corpus ...`: make and inspect training corpora."""
from __future__ import annotations

import os

import click

from . import cli


@cli.group()
def corpus():
    """Make and inspect speech corpora."""


@corpus.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False), required=False)
@click.option("--hours", type=float, default=1.0, show_default=True,
              help="Total audio to make, split evenly over the voices.")
@click.option("--voices", default=None,
              help="Comma-separated synthetic speakers (default: the 8 mbrola-based training "
                   "speakers; espeak-ng formant voices esp_m3, esp_f2, esp_gb_m7 and the held-out us3 "
                   "only when named; see --list-voices).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sentence choice.")
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes [default: cores].")
@click.option("--text", type=click.Choice(["train", "heldout"]), default="train", show_default=True,
              help="Sentence pool: training sentences, or the ~2% never used for training.")
@click.option("--parallel", type=click.IntRange(min=0), default=0, metavar="N",
              help="A parallel set instead of --hours: every voice reads the same N sentences, saved "
                   "under the same names (VOICE/p00000.wav ...), for `eval-convert --like-refs`.")
@click.option("--list-voices", is_flag=True, help="Print the known speakers and exit.")
def synth_cmd(out_dir, hours, voices, seed, jobs, text, parallel, list_voices):
    """Synthesize an offline multi-speaker corpus with exact phone alignments.

    Writes OUT_DIR/SPEAKER/UTT.wav (16 kHz), UTT.TextGrid (tier "phones", ARPAbet-39 + sil)
    and UTT.txt. Resumable: finished utterances are skipped. Deterministic for a seed.

    \b
    Examples:
      vqcodec corpus synth data/synth --hours 1
      vqcodec corpus synth data/eval_us3 --hours 0.1 --voices us3 --text heldout
      vqcodec corpus synth data/more --hours 0.5 --voices us1,us2,en1,esp_m3,esp_f2,esp_gb_m7
      vqcodec corpus synth data/parallel --parallel 12 --text heldout --voices us3,esp_m3,esp_f2,esp_gb_m7
    """
    from ..data import synth

    if list_voices:
        for name, spk in synth.SPEAKERS.items():
            tag = ("default" if name in synth.DEFAULT_VOICES else
                   "held out" if name in synth.HELDOUT_VOICES else "optional")
            click.echo(f"{name:10s} {spk.engine:6s} voice={spk.voice} speed={spk.speed} pitch={spk.pitch} "
                       f"f={spk.freq_ratio:g} vtl={spk.vtl_ratio:g} ({tag})")
        return
    if not out_dir:
        raise click.UsageError("missing argument OUT_DIR")
    names = [v.strip() for v in voices.split(",") if v.strip()] if voices else None
    summary = synth.synthesize(out_dir, hours=hours, voices=names, seed=seed, jobs=jobs, text=text,
                               parallel=parallel)
    click.echo(f"{summary['utterances']} utterances, {summary['seconds'] / 3600:.2f} h, "
               f"speakers: {', '.join(summary['speakers'])} -> {out_dir}")


@corpus.command("info")
@click.argument("root", type=click.Path())
@click.option("--kind", type=click.Choice(["folders", "vctk", "librispeech"]), default="folders",
              show_default=True, help="Corpus layout: ROOT/SPEAKER/** folders, VCTK or LibriSpeech.")
@click.option("--mic", default="mic1", show_default=True, help="VCTK 0.92 microphone.")
def info_cmd(root, kind, mic):
    """Count the speakers, utterances and transcripts of a corpus.

    \b
    Examples:
      vqcodec corpus info data/synth/train
      vqcodec corpus info /data/VCTK-Corpus-0.92 --kind vctk --mic mic2
    """
    from collections import Counter

    from ..data.corpora import load_corpus

    utts = load_corpus(kind, root, **({"mic": mic} if kind == "vctk" else {}))
    per = Counter(u.speaker for u in utts)
    with_text = sum(u.transcript is not None for u in utts)
    click.echo(f"{os.fspath(root)}: {len(utts)} utterances, {len(per)} speakers, "
               f"{with_text} with transcripts")
    for spk, n in sorted(per.items()):
        click.echo(f"  {spk}: {n}")


@corpus.command("real")
@click.argument("out_dir", type=click.Path(file_okay=False), required=False)
@click.option("--packages", default=None,
              help="Comma-separated Debian packages [default: the 11 packages of the default set]. "
                   "asterisk-core-sounds-en*/es* are refused (the evaluation voice).")
@click.option("--eval", "eval_set", is_flag=True,
              help="Write only the evaluation set (asterisk-core-sounds-en-g722) as OUT_DIR/eval_en/.")
@click.option("--max-minutes", type=float, default=None, help="At most this much kept audio per package.")
@click.option("--jobs", "--workers", "-j", "workers", type=int, default=None, help="Worker processes [default: cores].")
@click.option("--deb-dir", type=click.Path(file_okay=False), default=None,
              help="Reuse .deb files found here and download missing ones here [default: a temporary folder].")
@click.option("--no-speaker-check", is_flag=True, help="Skip the resemblyzer folder = voice check.")
@click.option("--list", "list_sources", is_flag=True, help="Print the default packages and exit.")
def real_cmd(out_dir, packages, eval_set, max_minutes, workers, deb_dir, no_speaker_check, list_sources):
    """Build a corpus of real recorded voices from Debian packages (the 11 default packages give
    9.5 h of 127 voices: 15,804 clips, measured in recipes/real/README.md).

    Fetches each package with `apt-get download`, unpacks it with dpkg-deb, and writes
    OUT_DIR/SPEAKER/UTT.wav (16 kHz mono, silence trimmed, <= 15 s) + UTT.txt where the package
    has a transcript, OUT_DIR/MANIFEST.tsv (every clip and rejection, with licence) and
    OUT_DIR/README.md (totals per package and speaker). MANIFEST.tsv is written last. Resumable:
    finished packages are skipped. A package that fails is reported and the rest is built.

    \b
    Examples:
      vqcodec corpus real data/real --deb-dir data/debs
      vqcodec corpus real /tmp/r --packages asterisk-core-sounds-it-g722 --max-minutes 2
      vqcodec corpus real data/real_eval --eval --deb-dir data/debs
    """
    from ..data import real

    if list_sources:
        for name in real.DEFAULT_PACKAGES:
            extra = real.SOURCES[name].extra
            click.echo(name + (f"  (+ {', '.join(extra)} for transcripts/speakers)" if extra else ""))
        click.echo(f"evaluation only (--eval): {', '.join(real.EVAL_PACKAGES)}")
        return
    if not out_dir:
        raise click.UsageError("missing argument OUT_DIR")
    names = [p.strip() for p in packages.split(",") if p.strip()] if packages else None
    summary = real.build(out_dir, names, eval_set=eval_set, max_minutes=max_minutes, workers=workers,
                         deb_dir=deb_dir, similarity=not no_speaker_check)
    click.echo(f"{summary['clips']} clips, {summary['seconds'] / 3600:.2f} h, {len(summary['speakers'])} voices, "
               f"{summary['rejected']} rejected -> {summary['out']}")
    sim = summary["similarity"]
    if sim and sim.get("within") is not None:
        click.echo(f"speaker check: within-folder cosine {sim['within']:.3f}, between {sim['between']:.3f}, "
                   f"nearest centroid = own folder {100 * sim['nearest_own']:.0f}%")
    if summary["failures"]:
        click.echo(f"{len(summary['failures'])} failure(s):", err=True)
        for f in summary["failures"]:
            click.echo(f"  {f}", err=True)
        raise SystemExit(1)
