"""`vqcodec eval` and `vqcodec eval-convert`: objective scores against classical codecs."""
from __future__ import annotations

from pathlib import Path

import click

from . import cli
from .codec import DECODER_OPTION, _error, check_folder
from ..audio import VOICE_MAX_SECONDS
from ..errors import VqcodecError


def _load_codec(model: str):
    import vqcodec

    return vqcodec.load_model(model)


def _require_speaker(codec, model: str, speaker: str) -> None:
    if speaker not in list(codec.speakers):
        raise VqcodecError(f"model {model!r} has no speaker {speaker!r} "
                           f"(it knows: {', '.join(codec.speakers) or 'none'})")


def _baseline_names(spec: str) -> list[str]:
    from ..evaluation import baselines

    if spec.strip().lower() in ("", "none"):
        return []
    return [baselines.canonical_name(n) for n in spec.split(",") if n.strip()]


def _listen_option(f):
    return click.option("--listen", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
                        help="Players and spectrograms for the first N files in OUT/index.html "
                             "(all files still count in the tables; 0: tables only).")(f)


@cli.command("eval")
@click.argument("data_dir", type=click.Path(exists=True, path_type=Path))
@click.option("-m", "--model", default="default", show_default=True,
              help="Shipped model name or checkpoint path.")
@click.option("--no-model", is_flag=True, help="Score only the baselines (no vqcodec row).")
@click.option("--baselines", "baseline_spec", default="codec2-3200,codec2-1200,opus-6k,opus-8k",
              show_default=True, metavar="NAMES",
              help="Comma-separated baselines, or 'none'. Known: codec2-3200, -2400, -1600, -1400, "
                   "-1300, -1200, -700C, -450; opus-6k, -8k, -10k, -12k, -16k, -24k.")
@click.option("--limit", type=int, default=0, metavar="N",
              help="Use at most N files, taken round-robin across speakers (0: all).")
@click.option("-o", "--output", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.json, report.csv, spectrograms.png and index.html.")
@click.option("--seed", type=int, default=0, show_default=True, help="Decoder sampling seed.")
@click.option("-t", "--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="WaveNet decoder sampling temperature (0 = argmax; below 1: less noise, flatter detail).")
@click.option("-s", "--speaker", "fallback_speaker", default=None, metavar="ID",
              help="Voice for files whose speaker the model does not know [default: its first speaker].")
@click.option("--decoder", type=click.Choice(["fast", "wavenet"]), default=None,
              help="v2 models: the decoder to score [default: fast].")
@click.option("--ladder", is_flag=True,
              help="A model with a bitrate ladder (residual codebooks): one row per step, k = 1..N codebooks, "
                   "named by its nominal kbps.")
@_listen_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_cmd(data_dir, model, no_model, baseline_spec, limit, out_dir, seed, temperature, fallback_speaker,
             decoder, ladder, listen, quiet):
    """Score vqcodec and classical codecs on DATA_DIR: PESQ-WB, STOI, mel distance, bitrate.

    Every file is encoded and decoded by each system and scored against the original; a classical
    codec's delay (measured once per codec on probe signals) is removed first, vqcodec's output is
    scored as it comes (lag 0; the table's `lag ms` column shows each system's); per-file and mean numbers go to OUT/report.json and report.csv, a spectrogram
    comparison of the first file to OUT/spectrograms.png, and a table to stdout. OUT/index.html
    is a listening page: the table, then players, scores and spectrograms of the original and
    every system for the first --listen files (wavs and PNGs in OUT/listen/, relative links).
    A v2 model decodes each file in its own voice (the voice vector of the file), or in --speaker's;
    a v1 model with the file's speaker when it knows it, else with --speaker or its first speaker
    (noted). --decoder wavenet scores v2's WaveNet decoder instead of the fast one.
    A baseline whose tool is missing (apt-get install codec2 / opus-tools) is skipped with a note.
    vqcodec's bitrate is what its .vqc streams store per second of each file (tokens, voice
    vector, gain, pitch stream: `vqcodec info`'s streams_bps), a baseline's what its encoder wrote.
    OUT is checked before any work. As in encode / decode, a file that cannot be read is reported
    (one line) and left out, the others are scored and reported, and the command then exits 1
    listing the failed files (report.json: failed_files).

    \b
    DATA_DIR holds DATA_DIR/SPEAKER/*.wav (the folder name is the speaker) or plain files.
    For voice conversion (speaker similarity), see `vqcodec eval-convert`.

    \b
    Examples:
      vqcodec eval data/test -o reports/default
      vqcodec eval --no-model data/test --baselines codec2-3200,opus-6k -o reports/baselines
      vqcodec eval -m runs/vqvae/last.pt data/test --limit 20 -o reports/run1
      vqcodec eval data/synth/eval_us3 --speaker us2 -t 0.8 -o reports/us3   # unseen voice
      vqcodec eval data/test --listen 3 -o reports/small && xdg-open reports/small/index.html
      vqcodec eval data/real_eval/eval_en --ladder --baselines codec2-1200,codec2-3200,opus-6k \\
          -o reports/ladder   # a row per step of the default model's ladder
    """
    from ..evaluation import baselines, html, report

    check_folder(out_dir)  # before any work
    names = _baseline_names(baseline_spec)
    if no_model and not names:
        raise VqcodecError("nothing to evaluate: --no-model and no baselines")
    if no_model and ladder:
        raise VqcodecError("--ladder scores a model's ladder steps: it cannot go with --no-model")
    files = report.collect_files(data_dir, limit)
    notes: list[str] = []
    systems = {}
    if not no_model:
        codec = _load_codec(model)
        if fallback_speaker is not None:
            _require_speaker(codec, model, fallback_speaker)
        if ladder and codec.codebooks < 2:
            raise VqcodecError(f"--ladder: model {model!r} has one codebook, no bitrate ladder")
        steps = list(enumerate(codec.ladder, 1)) if ladder else [(None, None)]
        for k, bps in steps:
            label = f"vqcodec ({model}{', ' + decoder if decoder else ''}"
            label += "" if k is None else f", {k} of {codec.codebooks} codebooks, {bps / 1000:g} kbps"
            label += ")" if temperature == 1.0 else f", T={temperature:g})"
            systems[label] = report.CodecSystem(
                codec, speaker_of={str(p): s for p, s in files}, notes=notes, seed=seed,
                temperature=temperature, fallback_speaker=fallback_speaker, codebooks=k)
            systems[label].decoder = decoder
    for n in names:
        systems[n] = baselines.get(n)
    click.echo(f"evaluating {len(systems)} system(s) on {len(files)} file(s) from {data_dir}", err=True)
    keep = [str(p) for p, _ in files[:listen]]
    systems = {name: html.Recorder(system, keep) for name, system in systems.items()}
    result = report.evaluate([p for p, _ in files], systems, out_dir, notes=notes, progress=not quiet,
                             echo=click.echo, on_failure=_error)
    html.write_eval_page(out_dir, result, systems, listen, result["sample_rate"], source=str(data_dir),
                         speakers={str(p): s for p, s in files})
    click.echo(f"wrote {out_dir / 'report.json'}, report.csv, spectrograms.png, index.html", err=True)
    failed = result["failed_files"]
    if failed:  # as encode / decode: the good files are reported, the command still fails
        raise VqcodecError(f"{len(failed)} of {len(files)} input(s) failed: " + ", ".join(f["file"] for f in failed))


@cli.command("eval-convert")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-m", "--model", default="convert", show_default=True,
              help="Shipped model name or checkpoint path ('convert': the model `vqcodec convert` uses).")
@click.option("--to", "target", default=None, metavar="SPEAKER",
              help="Target speaker (one of the model's speakers).")
@click.option("--like-refs", "like_refs", type=click.Path(path_type=Path), default=None, metavar="REF_DIR",
              help="Convert to every voice in REF_DIR/SPEAKER/*.wav (any speakers; v2 models), each from "
                   "a reference of its first clips; its other clips score the result.")
@click.option("--ref-seconds", type=click.FloatRange(min=0, min_open=True, max=VOICE_MAX_SECONDS), default=10.0,
              show_default=True,
              help="--like-refs: seconds of each voice's first clips concatenated into its reference "
                   f"(at most {VOICE_MAX_SECONDS}, what a voice vector is taken from).")
@click.option("--target-refs", type=click.Path(exists=True, path_type=Path), default=None,
              help="--to: real utterances of the target speaker [default: DATA_DIR/SPEAKER].")
@click.option("--limit", type=int, default=0, metavar="N",
              help="Convert at most N source files, round-robin across speakers (0: all).")
@click.option("--refs-per-speaker", type=int, default=10, show_default=True,
              help="Real utterances averaged into each speaker's reference embedding.")
@click.option("--no-align", is_flag=True,
              help="--like-refs: skip the intelligibility check (pocketsphinx forced alignment of sources "
                   "with a .txt transcript, before and after conversion).")
@click.option("-o", "--output", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for convert.json, convert.csv and index.html.")
@click.option("--seed", type=int, default=0, show_default=True, help="Decoder sampling seed.")
@click.option("-t", "--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="WaveNet decoder sampling temperature (0 = argmax).")
@DECODER_OPTION
@_listen_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_convert_cmd(data_dir, model, target, like_refs, ref_seconds, target_refs, limit, refs_per_speaker,
                     no_align, out_dir, seed, temperature, decoder, listen, quiet):
    """Voice conversion: is converted speech closer to the target voice than to the source?

    --to SPEAKER (a named voice): every file of a speaker other than SPEAKER in
    DATA_DIR/SPEAKER_X/*.wav is encoded and decoded as SPEAKER, and compared with SPEAKER's real
    utterances (--target-refs or DATA_DIR/SPEAKER), with the source speaker's, and (before
    conversion) the original with SPEAKER.

    --like-refs REF_DIR (v2 models, voices the model never heard): for every voice folder
    REF_DIR/VOICE/, its first clips (name order) up to --ref-seconds are concatenated into a
    reference, and every source file (or --limit N) is converted to the voice of that reference.
    Each (source, voice) pair is scored against the voice's OTHER clips (never the reference
    clips) and against the source speaker's other clips; reported: mean similarities, the
    fraction of pairs closer to the target than to the source, and the fraction with similarity
    to the target >= 0.80. Intelligibility: sources with a .txt transcript next to them are
    force-aligned (pocketsphinx) before and after conversion: how often each aligns, and how
    often the converted phone sequence equals the original's.

    Speaker similarity is the cosine of resemblyzer embeddings (needs
    `pip install webrtcvad-wheels && pip install resemblyzer --no-deps`). Writes
    OUT/convert.json, convert.csv and OUT/index.html, a listening page (source, the target's
    voice, converted) for the first --listen files or pairs.

    \b
    Examples:
      vqcodec eval-convert data/test --to us2 --limit 20 -o reports/convert_us2
      vqcodec eval-convert data/synth/eval_us3 --like-refs data/real_eval/eval_en -m MODEL \\
          --limit 10 -o reports/convert_like
      vqcodec eval-convert data/test --like-refs voices/ --ref-seconds 5 --no-align -o reports/x
    """
    import numpy as np

    from ..audio import load, resample
    from ..evaluation import html, report
    from ..evaluation.metrics import _voice_encoder

    if (target is None) == (like_refs is None):
        raise VqcodecError("give the target voice(s) with exactly one of --to SPEAKER or --like-refs REF_DIR")
    check_folder(out_dir)  # before any work
    if like_refs is not None:
        return _eval_convert_like(data_dir, model, like_refs, ref_seconds, limit, refs_per_speaker, no_align,
                                  out_dir, seed, temperature, decoder, listen, quiet)
    _voice_encoder()  # fail early with the install hint
    files = report.collect_files(data_dir)
    by_speaker: dict[str, list[Path]] = {}
    for p, s in files:
        if s is not None:
            by_speaker.setdefault(s, []).append(p)
    if target_refs is not None:
        refs = [p for p, _ in report.collect_files(target_refs)]
    else:
        refs = by_speaker.get(target, [])
    if not refs:
        raise VqcodecError(f"no real utterances of {target!r}: expected {data_dir / target}/*.wav "
                           f"or pass --target-refs")
    codec = _load_codec(model)
    _require_speaker(codec, model, target)
    sources = [(p, s) for p, s in files if s is not None and s != target]
    if limit and limit > 0:
        sources = sources[:limit]
    if not sources:
        raise VqcodecError(f"{data_dir}: no utterances of speakers other than {target!r} to convert")

    def convert(wav, sr, spk):
        tf = codec.encode_utterance(np.asarray(wav, dtype=np.float32), sr)
        out = codec.decode(tf.tokens, speaker=spk, temperature=temperature, seed=seed,
                           pitch=tf.pitch if tf.pitch_levels else None,
                           **({"decoder": decoder} if decoder else {}))
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        return resample(out, int(codec.sample_rate), sr)

    speaker_refs = {s: ps[:refs_per_speaker] for s, ps in by_speaker.items()}
    recorder = html.ConvertRecorder(convert, listen)
    result = report.evaluate_conversion(sources, recorder, target, refs[:refs_per_speaker], speaker_refs, out_dir,
                                        progress=not quiet, echo=click.echo)
    sr = report.SAMPLE_RATE
    html.write_convert_page(out_dir, result, recorder, load(refs[0], sr), sr, source=str(data_dir))
    click.echo(f"wrote {out_dir / 'convert.json'}, convert.csv, index.html", err=True)


def _eval_convert_like(data_dir, model, like_refs, ref_seconds, limit, refs_per_speaker, no_align, out_dir, seed,
                       temperature, decoder, listen, quiet):
    """eval-convert --like-refs: every source converted to every voice of REF_DIR (see the command)."""
    import numpy as np

    from ..audio import resample
    from ..errors import AudioError
    from ..evaluation import html, report
    from ..evaluation.metrics import _voice_encoder

    notes: list[str] = []
    targets = report.target_voices(like_refs, ref_seconds, max_other=refs_per_speaker, notes=notes)
    files = report.collect_files(data_dir)
    by_speaker: dict[str, list[Path]] = {}
    for p, s in files:
        if s is not None:
            by_speaker.setdefault(s, []).append(p)
    sources = report.collect_files(data_dir, limit)
    _voice_encoder()  # fail early with the install hint
    codec = _load_codec(model)
    if not getattr(codec, "has_voice", False):
        raise VqcodecError(f"model {model!r} has no voice encoder (a v1 model): --like-refs needs a v2 model; "
                           "use --to SPEAKER")
    voices, medians = {}, {}
    for t in list(targets):
        try:
            voices[t.name] = codec.voice_of(t.reference, report.SAMPLE_RATE)
            if getattr(codec, "has_pitch", False):
                medians[t.name] = codec.median_f0_of(t.reference, report.SAMPLE_RATE)
        except AudioError as e:
            notes.append(f"voice {t.name!r} skipped: {e}")
            targets.remove(t)
    if not targets:
        raise VqcodecError(f"{like_refs}: no usable reference voice ({'; '.join(notes)})")
    encoded: dict = {}

    def convert(wav, sr, voice_name):
        """voice_name None: the source decoded with its own voice (for the swap sensitivity)."""
        # each source is converted to every voice in a row: encode it once (keyed on the array object)
        if encoded.get("wav") is not wav:
            encoded.update(wav=wav, tf=codec.encode_utterance(np.asarray(wav, dtype=np.float32), sr))
        tf = encoded["tf"]
        if voice_name is None:
            out = codec.decode_file(tf, temperature=temperature, seed=seed, decoder=decoder)
        else:
            out = codec.decode_file(tf, voice=voices[voice_name], f0_median=medians.get(voice_name),
                                    temperature=temperature, seed=seed, decoder=decoder)
        return resample(np.asarray(out, dtype=np.float32).reshape(-1), int(codec.sample_rate), sr)

    speaker_refs = {s: ps[:refs_per_speaker + 1] for s, ps in by_speaker.items()}  # +1: the source is left out
    recorder = html.ConvertRecorder(convert, listen)
    click.echo(f"converting {len(sources)} file(s) from {data_dir} to {len(targets)} voice(s) from {like_refs}",
               err=True)
    result = report.evaluate_like_conversion(sources, recorder, targets, speaker_refs, out_dir, align=not no_align,
                                             notes=notes, progress=not quiet, echo=click.echo,
                                             source_label=str(like_refs),
                                             resynthesize=lambda wav, sr: convert(wav, sr, None))
    html.write_convert_page(out_dir, result, recorder, {t.name: t.reference for t in targets}, report.SAMPLE_RATE,
                            source=str(data_dir))
    click.echo(f"wrote {out_dir / 'convert.json'}, convert.csv, index.html", err=True)
