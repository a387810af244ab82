"""`vqcodec encode / decode / convert / speakers / info`: the commands people run every day."""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from . import cli
from .. import audio, codes
from ..errors import VqcodecError

MODEL_OPTION = click.option("--model", "-m", "model_name", default="default", show_default=True,
                            help="Shipped model name or checkpoint path.")
FORCE_OPTION = click.option("--force", "-f", is_flag=True, help="Overwrite existing output files.")


def _load(model_name: str):
    from ..api import load_model

    return load_model(model_name)


def _expand(inputs: tuple[str, ...], extensions: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for files and directories (searched recursively)."""
    found = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions)
            if not files:
                raise VqcodecError(f"{p}: no {'/'.join(extensions)} files in this directory")
            found += [(f, f.relative_to(p)) for f in files]
        else:
            found.append((p, Path(p.name)))
    return found


def _outputs(pairs, output: str | None, suffix: str) -> list[tuple[Path, Path]]:
    """Map inputs to outputs: next to each input by default; with -o, a file for a single file
    input, else a directory that mirrors the input trees."""
    if output is None:
        return [(src, src.with_suffix(suffix)) for src, _ in pairs]
    out = Path(output)
    if len(pairs) == 1 and not out.is_dir() and out.suffix:
        return [(pairs[0][0], out)]
    return [(src, (out / rel).with_suffix(suffix)) for src, rel in pairs]


def _run_batch(jobs, work, desc: str) -> None:
    """Run work(src, dst) for each job; a failure is reported and the batch goes on; the command
    fails at the end if any job failed."""
    failures = []
    bar = tqdm(jobs, desc=desc, unit="file", disable=len(jobs) < 2, leave=False)
    for src, dst in bar:
        try:
            work(src, dst)
        except VqcodecError as e:
            failures.append((src, str(e)))
            tqdm.write(f"vqcodec: error: {e}", file=click.get_text_stream("stderr"))
    if failures:
        raise VqcodecError(f"{len(failures)} of {len(jobs)} file(s) failed: "
                           + ", ".join(str(src) for src, _ in failures))


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", help="Output .vqc file (one input) or directory (mirrors the input tree).")
@MODEL_OPTION
@FORCE_OPTION
@click.option("--chunk-seconds", default=30.0, show_default=True,
              help="Encode long files in chunks of this length (bounded memory, identical tokens).")
def encode(inputs, output, model_name, force, chunk_seconds):
    """Encode audio files (or directories of them) to .vqc token files.

    \b
    Examples:
      vqcodec encode talk.wav                  # writes talk.vqc next to it
      vqcodec encode talk.flac -o talk.vqc
      vqcodec encode corpus/ -o tokens/        # mirrors the tree
    """
    codec = _load(model_name)
    jobs = _outputs(_expand(inputs, audio.AUDIO_EXTENSIONS), output, ".vqc")
    told = set()

    def work(src: Path, dst: Path):
        if not force and dst.exists():
            raise VqcodecError(f"{dst} exists (use -f/--force to overwrite)")
        sr = audio.info(src).samplerate
        if sr != codec.sample_rate and sr not in told:
            told.add(sr)
            click.echo(f"note: resampling {sr} Hz input to {codec.sample_rate} Hz", err=True)
        wav = audio.load(src, codec.sample_rate)
        tokens = codec.encode(wav, codec.sample_rate, chunk_seconds=chunk_seconds)
        tf = codes.TokenFile(tokens=tokens, sample_rate=codec.sample_rate, num_samples=len(wav),
                             hop=codec.hop, codebook_size=codec.codebook_size,
                             model_id=codec.model_id, speaker=_speaker_of(src, codec))
        codes.write(dst, tf, force=force)
        if len(jobs) == 1:
            click.echo(f"{dst}: {len(tokens)} tokens, {tf.duration_s:.2f} s, {tf.bitrate:.0f} bit/s")

    _run_batch(jobs, work, "encoding")


def _speaker_of(path: Path, codec) -> str:
    """The source speaker, when the parent folder names a speaker the model knows."""
    return path.parent.name if path.parent.name in codec.speakers else ""


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", help="Output .wav file (one input) or directory.")
@click.option("--speaker", "-s", help="Voice to decode with (default: the source speaker if known, "
                                      "else the model's first speaker). See `vqcodec speakers`.")
@MODEL_OPTION
@click.option("--temperature", "-t", default=1.0, show_default=True, help="Sampling temperature (0 = argmax).")
@click.option("--seed", default=0, show_default=True, help="Random seed: same seed, same audio.")
@click.option("--batch", "max_batch", default=128, show_default=True,
              help="Segments decoded side by side (1 = one sequential stream per file).")
@FORCE_OPTION
def decode(inputs, output, speaker, model_name, temperature, seed, max_batch, force):
    """Decode .vqc token files to 16 kHz wav with the WaveNet decoder.

    \b
    Examples:
      vqcodec decode talk.vqc                    # writes talk.wav next to it
      vqcodec decode talk.vqc -o out.wav --speaker us2 --seed 3
      vqcodec decode tokens/ -o decoded/
    """
    codec = _load(model_name)
    if speaker is not None:
        codec.speaker_index(speaker)
    jobs = _outputs(_expand(inputs, (".vqc",)), output, ".wav")

    def work(src: Path, dst: Path):
        if not force and dst.exists():
            raise VqcodecError(f"{dst} exists (use -f/--force to overwrite)")
        tf = codes.read(src, expect_model_id=codec.model_id)
        voice = speaker or (tf.speaker if tf.speaker in codec.speakers else None)
        start = time.perf_counter()
        wav = codec.decode(tf.tokens, voice, temperature=temperature, seed=seed,
                           num_samples=tf.num_samples, progress=True, max_batch=max_batch)
        elapsed = time.perf_counter() - start
        audio.save(dst, wav, codec.sample_rate, force=force)
        if len(jobs) == 1:
            click.echo(f"{dst}: {len(wav) / codec.sample_rate:.2f} s as {voice or codec.speakers[0]}, "
                       f"real-time factor {elapsed / max(tf.duration_s, 1e-9):.2f}")

    _run_batch(jobs, work, "decoding")


@cli.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--speaker", "-s", required=True, help="Target voice (see `vqcodec speakers`).")
@click.option("--output", "-o", required=True, help="Output .wav file.")
@MODEL_OPTION
@click.option("--temperature", "-t", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@FORCE_OPTION
def convert(input_path, speaker, output, model_name, temperature, seed, force):
    """Voice conversion: encode INPUT, decode it with another speaker's identity.

    \b
    Example:
      vqcodec convert talk.wav --speaker us2 -o talk_as_us2.wav
    """
    codec = _load(model_name)
    codec.speaker_index(speaker)
    out = Path(output)
    if not force and out.exists():
        raise VqcodecError(f"{out} exists (use -f/--force to overwrite)")
    wav = audio.load(input_path, codec.sample_rate, verbose_resample=True)
    start = time.perf_counter()
    converted = codec.convert(wav, codec.sample_rate, speaker, temperature=temperature, seed=seed,
                              progress=True)
    elapsed = time.perf_counter() - start
    audio.save(out, converted, codec.sample_rate, force=force)
    click.echo(f"{out}: {len(converted) / codec.sample_rate:.2f} s as {speaker}, "
               f"real-time factor {elapsed / (len(wav) / codec.sample_rate):.2f}")


@cli.command()
@MODEL_OPTION
def speakers(model_name):
    """List the speakers (voices) a model can decode with."""
    codec = _load(model_name)
    for name in codec.speakers:
        click.echo(name)


@cli.command()
@click.argument("files", nargs=-1, required=True)
def info(files):
    """Print the header of .vqc token files: duration, tokens, bits per token, bitrate, model."""
    failures = 0
    for f in files:
        try:
            desc = codes.describe(codes.read(f))
        except VqcodecError as e:
            click.echo(f"vqcodec: error: {e}", err=True)
            failures += 1
            continue
        click.echo(f"{f}:")
        for key, value in desc.items():
            click.echo(f"  {key:>16}: {value}")
    if failures:
        raise SystemExit(1)


@cli.command()
@click.option("--output", "-o", required=True, help="Output .wav file.")
@click.option("--seconds", default=3.0, show_default=True, help="Length to sample.")
@click.option("--speaker", "-s", help="Voice for the prior and the decoder (default: first speaker).")
@click.option("--prior", "prior_name", default="default-prior", show_default=True,
              help="Shipped prior name or checkpoint path.")
@MODEL_OPTION
@click.option("--temperature", "-t", default=1.0, show_default=True, help="Prior sampling temperature.")
@click.option("--decoder-temperature", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--prompt", type=click.Path(dir_okay=False), help="Audio or .vqc file whose tokens start the stream.")
@click.option("--tokens-out", help="Also write the sampled tokens as a .vqc file.")
@FORCE_OPTION
def sample(output, seconds, speaker, prior_name, model_name, temperature, decoder_temperature, seed,
           prompt, tokens_out, force):
    """Sample new speech: the prior invents a token stream, the decoder voices it.

    \b
    Examples:
      vqcodec sample -o babble.wav --seconds 4 --speaker us2
      vqcodec sample -o more.wav --prompt talk.wav --seconds 6 --tokens-out more.vqc
    """
    from ..api import load_prior

    codec = _load(model_name)
    prior = load_prior(prior_name)
    prior.check_compatible(codec)
    codec.speaker_index(speaker)
    for path in (output, tokens_out):
        if path and not force and Path(path).exists():
            raise VqcodecError(f"{path} exists (use -f/--force to overwrite)")
    if seconds <= 0:
        raise VqcodecError("--seconds must be positive")
    prompt_tokens = None
    if prompt:
        if prompt.endswith(codes.SUFFIX):
            prompt_tokens = codes.read(prompt, expect_model_id=codec.model_id).tokens
        else:
            prompt_tokens = codec.encode(audio.load(prompt, codec.sample_rate, verbose_resample=True), codec.sample_rate)
    n = max(1, round(seconds * codec.sample_rate / codec.hop))
    tokens = prior.sample(n, speaker, temperature=temperature, seed=seed, prompt=prompt_tokens, progress=True)
    wav = codec.decode(tokens, speaker, temperature=decoder_temperature, seed=seed, progress=True)
    if tokens_out:
        codes.write(tokens_out, codes.TokenFile(tokens=tokens, sample_rate=codec.sample_rate,
                                                num_samples=len(wav), hop=codec.hop,
                                                codebook_size=codec.codebook_size,
                                                model_id=codec.model_id, speaker=speaker or ""), force=force)
    audio.save(output, wav, codec.sample_rate, force=force)
    click.echo(f"{output}: {len(wav) / codec.sample_rate:.2f} s of sampled speech"
               + (f" as {speaker}" if speaker else ""))
