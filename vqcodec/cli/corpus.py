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
@click.option("--list-voices", is_flag=True, help="Print the known speakers and exit.")
def synth_cmd(out_dir, hours, voices, seed, jobs, text, list_voices):
    """Synthesize an offline multi-speaker corpus with exact phone alignments.

    Writes OUT_DIR/SPEAKER/UTT.wav (16 kHz), UTT.TextGrid (tier "phones", ARPAbet-39 + sil)
    and UTT.txt. Resumable: finished utterances are skipped. Deterministic for a seed.

    \b
    Examples:
      vqcodec corpus synth data/synth --hours 1
      vqcodec corpus synth data/eval_us3 --hours 0.1 --voices us3 --text heldout
      vqcodec corpus synth data/more --hours 0.5 --voices us1,us2,en1,esp_m3,esp_f2,esp_gb_m7
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
    summary = synth.synthesize(out_dir, hours=hours, voices=names, seed=seed, jobs=jobs, text=text)
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
