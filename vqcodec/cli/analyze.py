"""`vqcodec analyze ...`: how the tokens relate to phones and speakers."""
from __future__ import annotations

import click

from . import cli


@cli.group()
def analyze():
    """Analyse what the tokens encode (phones, speakers)."""


@analyze.command("phonemes")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "-m", default="default", show_default=True, help="Shipped model name or checkpoint path.")
@click.option("--alignments", "alignments_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of alignments (.TextGrid/.pho/.tsv/.ctm, same names as the audio, "
                   "optionally mirroring its folders). Default: next to each audio file.")
@click.option("--align", is_flag=True, help="Align with the built-in pocketsphinx aligner "
                                            "(needs a .txt transcript next to each audio file).")
@click.option("--split-seed", default=0, show_default=True, help="Seed of the utterance train/test split.")
@click.option("--test-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 0.9),
              help="Fraction of utterances held out to score the code->phone mapping.")
@click.option("--limit", type=click.IntRange(1), help="Use at most N utterances.")
@click.option("--no-baseline", is_flag=True, help="Skip the MFCC k-means baseline.")
@click.option("--no-ze-kmeans", is_flag=True,
              help="Skip the k-means on the encoder's continuous outputs z_e (same K and rate as the tokens).")
@click.option("--ignore-silence", is_flag=True, help="Drop silence frames before scoring.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Report folder: report.json, heatmap.png, confusion.png.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def phonemes(data_dir, model, alignments_dir, align, split_seed, test_fraction, limit, no_baseline,
             no_ze_kmeans, ignore_silence, out_dir, quiet):
    """Phone purity, cluster purity, PNMI and the paper's code->phone mapping accuracy.

    Side by side, scored the same way on the same frames and split: the model's tokens, k-means on
    MFCCs and k-means on the model's continuous encoder outputs z_e (both with the model's K, one
    frame per token, fitted on the training utterances), each with mapping accuracy, PNMI, purity
    and how well a classifier names the speaker from an utterance's token histogram (with chance).
    Works on v1 and v2 models. DATA_DIR/SPEAKER/*.wav with alignments next to the audio (the
    synthetic corpus writes exact ones), in --alignments DIR, or made with --align from .txt
    transcripts (real speech).

    \b
    Examples:
      vqcodec analyze phonemes data/synth_test --model default -o reports/phonemes
      vqcodec analyze phonemes data/synth/eval_text -m runs/real/codec/checkpoint.pt -o reports/ph_synth
      vqcodec analyze phonemes data/real_eval/eval_en --align -m MODEL -o reports/ph_real --limit 300
    """
    import vqcodec
    from ..analysis.report import format_summary, run_phoneme_analysis
    from ..errors import VqcodecError

    if align and alignments_dir:
        raise VqcodecError("use either --alignments DIR or --align, not both")
    from ..analysis.report import find_corpus

    if not find_corpus(data_dir):  # refused before the model loads
        raise VqcodecError(f"{data_dir}: no .wav or .flac files found")
    codec = vqcodec.load_model(model)
    report = run_phoneme_analysis(codec, data_dir, out_dir, alignments_dir=alignments_dir, align=align,
                                  split_seed=split_seed, test_fraction=test_fraction, limit=limit,
                                  baseline=not no_baseline, ignore_silence=ignore_silence, model_name=str(model),
                                  progress=not quiet, encoder_kmeans=not no_ze_kmeans)
    click.echo(format_summary(report))
    click.echo(f"\nwrote {out_dir}/report.json, heatmap.png, confusion.png")
