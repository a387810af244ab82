"""`vqcodec encode / decode / convert / speakers / info`: the commands people run every day.

Start-up matters here: torch is imported only once a model is loaded, and inputs and outputs are
checked before that (a text file named .wav is refused in well under a second).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import click
import numpy as np

from . import cli
from .. import audio, codes, progress
from ..errors import VqcodecError
from ..files import remove_stale_temps, walk
from ..pretrained import SHIPPED_PRIORS

MODEL_OPTION = click.option("--model", "-m", "model_name", default="default", show_default=True,
                            help="Shipped model name or checkpoint path.")
CONVERT_MODEL_OPTION = click.option(
    "--model", "-m", "model_name", default="convert", show_default=True,
    help="Shipped model name or checkpoint path. 'convert' is vqcodec-real-convert, trained for conversion "
         "(speaker-perturbed tokens, a pretrained speaker encoder for the voice); -m default converts with "
         "the default codec.")
FORCE_OPTION = click.option("--force", "-f", is_flag=True, help="Overwrite existing output files.")
SKIP_OPTION = click.option("--skip-existing", is_flag=True,
                           help="Leave outputs that already exist alone (resume an interrupted batch).")
DECODER_OPTION = click.option("--decoder", type=click.Choice(["fast", "wavenet"]), default=None,
                              help="v2 models: fast (default; deterministic, ~100x real time) or wavenet "
                                   "(the paper's autoregressive decoder, sampled, slow).")


def _load(model_name: str):
    from ..api import load_model

    return load_model(model_name)


def _expand(inputs: tuple[str, ...], extensions: tuple[str, ...]):
    """([(file, path relative to its input root, came from a directory)], [(input, message)]) for
    files and directories (searched recursively by `files.walk`: dot-files skipped). A directory
    without matching files is a failure of its own; the other inputs still go on."""
    found, failures = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = walk(p, extensions)
            if not files:
                failures.append((p, f"{p}: no {'/'.join(extensions)} files in this directory"))
            found += [(f, f.relative_to(p), True) for f in files]
        else:
            found.append((p, Path(p.name), False))
    return found, failures


def _with_suffix(path: Path, suffix: str) -> Path:
    """path with its last suffix replaced by `suffix`, which may hold dots ("talk.vqc" +
    ".decoded.wav" -> "talk.decoded.wav")."""
    return path.with_name(path.stem + suffix)


def _outputs(found, output: str | None, suffix: str, dir_suffix: str | None = None):
    """Map inputs to outputs: next to each input by default (name + `suffix`); with -o, a file when
    the only input is a file and -o has a suffix (and is not an existing directory nor ends with a
    slash), else a directory that mirrors the input trees (name + `dir_suffix`, default `suffix`).
    Returns (jobs, failures): two inputs mapped to one output are both failures rather than one
    silently overwriting the other, and so is an output that is one of the command's inputs (never
    overwritten, -f or not)."""
    if output is None:
        pairs = [(src, _with_suffix(src, suffix)) for src, _, _ in found]
    else:
        out = Path(output)
        as_file = (len(found) == 1 and not found[0][2] and not out.is_dir() and bool(out.suffix)
                   and not output.endswith(("/", "\\")))
        pairs = [(found[0][0], out)] if as_file else \
            [(src, _with_suffix(out / rel, dir_suffix or suffix)) for src, rel, _ in found]

    def key(p: Path) -> Path:
        return p.resolve() if p.parent.exists() else p

    # what a killed run of this command left in the output folders goes now
    remove_stale_temps({dst.parent for _, dst in pairs if dst.parent.is_dir()}, recursive=False)

    inputs = {key(src) for src, _, _ in found}
    seen: dict[Path, list[Path]] = {}
    for src, dst in pairs:
        seen.setdefault(key(dst), []).append(src)
    clash = {s for srcs in seen.values() if len(srcs) > 1 for s in srcs}
    own = {s for s, d in pairs if key(d) in inputs}
    jobs = [(s, d) for s, d in pairs if s not in clash and s not in own]
    failures = [(s, f"{s}: its output {d} is an input of this command; choose another name with -o"
                    + (" or --suffix" if output is None else "")) for s, d in pairs if s in own]
    failures += [(s, f"{s}: another input maps to the same output {d}; use separate -o directories")
                 for s, d in pairs if s in clash and s not in own]
    return jobs, failures


def _check_output(dst: Path, force: bool) -> None:
    """Refuse early (before the slow part) an output that exists or cannot be created."""
    if dst.is_dir():
        raise VqcodecError(f"cannot write {dst}: is a directory")
    if not force and dst.exists():
        raise VqcodecError(f"{dst} exists (use -f/--force to overwrite)")
    _check_writable(dst.parent, dst)


def check_folder(folder: Path) -> None:
    """Refuse early (before the slow part) an output folder that cannot be created or written."""
    _check_writable(Path(folder), Path(folder))


def _check_writable(folder: Path, what: Path) -> None:
    """`folder` is a writable folder, or can be made: its nearest existing ancestor is one."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise VqcodecError(f"cannot write {what}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VqcodecError(f"cannot write {what}: {parent} is not writable")


def _message(src: Path, e: Exception) -> str:
    text = str(e) if isinstance(e, VqcodecError) else f"{type(e).__name__}: {e}"
    return text if str(src) in text else f"{src}: {text}"


def _report(failures, total: int) -> None:
    """Print each failure (one line each) and fail the command if there were any."""
    if not failures:
        return
    raise VqcodecError(f"{len(failures)} of {total} input(s) failed: " + ", ".join(str(s) for s, _ in failures))


def _error(message: str) -> None:
    progress.write(f"vqcodec: error: {message}")


def _run_batch(jobs, work, desc: str, failures: list, done: str = "done") -> None:
    """Run work(src, dst) for each job; a failure is reported and the batch goes on; a batch ends
    with a summary line (`done`: its verb); the command fails at the end, listing the failed
    inputs, if any failed (including `failures` already found while collecting the inputs)."""
    for _, message in failures:
        _error(message)
    total = len(jobs) + len(failures)
    start, before = time.perf_counter(), len(failures)
    bar = progress.bar(jobs, desc=desc, unit="file", disable=len(jobs) < 2, leave=False)
    for src, dst in bar:
        try:
            work(src, dst)
        except Exception as e:  # one bad file must not stop the others; Ctrl-C still does
            failures.append((src, _message(src, e)))
            _error(failures[-1][1])
    if total > 1:
        _summary(done, len(jobs) - (len(failures) - before), total, time.perf_counter() - start)
    _report(failures, total)


def _summary(done: str, ok: int, total: int, seconds: float, audio_s: float | None = None) -> None:
    """The last line of a batch: how many files were done, of how many, in how long."""
    rate = f", {audio_s:.1f} s of audio (real-time factor {seconds / audio_s:.3f})" if audio_s else ""
    click.echo(f"{done} {ok} of {total} file(s) in {seconds:.1f} s{rate}"
               + (f"; {total - ok} failed" if ok < total else ""))


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", help="Output .vqc file (one input file) or directory (mirrors the input trees).")
@MODEL_OPTION
@FORCE_OPTION
@click.option("--chunk-seconds", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Encode long files in chunks of this length (bounded memory, identical tokens).")
@SKIP_OPTION
@click.option("--kbps", type=click.FloatRange(min=0, min_open=True), default=None, metavar="X",
              help="Models with a bitrate ladder (residual codebooks; the default model has 4): keep the "
                   "first k codebooks, the largest k whose rate (k x bits x frames/s, plus the pitch stream) "
                   "is at most X kbps (a step up to 2.5% above X counts: 0.56 / 1.1 / 1.7 name 0.5625 / "
                   "1.125 / 1.6875). The file records k; decode takes any. [default: all codebooks]")
@click.option("--entropy", is_flag=True,
              help="Entropy-code the tokens with the prior: same tokens, a smaller token stream (real English "
                   "with the shipped priors: 6.0 instead of 9 bits/token; `vqcodec info` shows a file's); "
                   "decoding needs that prior. A ladder step of several codebooks codes its first codebook "
                   "with the prior and packs the others (the prior models the first).")
@click.option("--prior", "prior_name", default=None,
              help="With --entropy: shipped prior name or checkpoint path [default: the shipped model's own "
                   "prior, e.g. default-prior].")
def encode(inputs, output, model_name, force, chunk_seconds, skip_existing, kbps, entropy, prior_name):
    """Encode audio files (or directories of them) to .vqc token files.

    Any format soundfile reads (wav, flac, ogg, ...); stereo is averaged, other sample rates are
    resampled to the model's 16 kHz. Existing outputs are kept unless -f is given; a failed file
    leaves no output, and the other files still get encoded.

    \b
    Examples:
      vqcodec encode talk.wav                  # writes talk.vqc next to it
      vqcodec encode talk.flac -o talk.vqc
      vqcodec encode a.wav b.wav -o tokens/    # tokens/a.vqc, tokens/b.vqc
      vqcodec encode corpus/ -o tokens/        # mirrors the tree: corpus/x/y.wav -> tokens/x/y.vqc
      vqcodec encode corpus/ -o tokens/ --skip-existing   # resume after an interruption
      vqcodec encode talk.wav --entropy        # entropy-coded with the shipped prior
      vqcodec encode talk.wav --entropy --prior runs/x/prior/checkpoint.pt
      vqcodec encode talk.wav -m vqcodec-real-lowrate --entropy   # with vqcodec-real-lowrate-prior
      vqcodec encode talk.wav --kbps 1.1       # the default is a ladder model: 2 of its 4 codebooks
    """
    found, failures = _expand(inputs, audio.AUDIO_EXTENSIONS)
    jobs, clashes = _outputs(found, output, codes.SUFFIX)
    failures += clashes
    jobs = _without_existing(jobs, skip_existing, force)
    jobs = _precheck(jobs, failures, lambda src, dst: (_check_output(dst, force), audio.info(src)))
    if not jobs:  # every input refused: no model loaded for nothing
        _run_batch([], None, "encoding", failures, "encoded")
        return
    codec = _load(model_name)
    codebooks = codec.codebooks_for_kbps(kbps) if kbps is not None else codec.codebooks
    if entropy and prior_name is None:
        from ..pretrained import prior_of

        prior_name = prior_of(model_name)
    coder = _entropy_coder(prior_name, codec) if entropy else None
    told = set()

    def work(src: Path, dst: Path):
        _check_output(dst, force)
        sr = audio.info(src).samplerate
        if sr != codec.sample_rate and sr not in told:
            told.add(sr)
            _note(f"note: resampling {sr} Hz input to {codec.sample_rate} Hz")
        tf = _encode_to(codec, src, dst, _speaker_of(src, codec), force, chunk_seconds, coder, codebooks)
        if len(jobs) == 1:
            rate = codes.rate_line(codes.describe(tf, data=dst.read_bytes()))
            books = f" x {tf.codebooks} of {codec.codebooks} codebooks" if codec.codebooks > 1 else ""
            click.echo(f"{dst}: {tf.num_tokens} tokens{books}, {tf.duration_s:.2f} s, {rate}")

    _run_batch(jobs, work, "encoding", failures, "encoded")


@cli.command("encode-corpus")
@click.argument("config_path", metavar="CONFIG")
@click.option("--output", "-o", required=True, help="Folder for the token tree: OUT/SPEAKER/UTT.vqc.")
@MODEL_OPTION
@SKIP_OPTION
@click.option("--max-per-speaker", type=click.IntRange(min=1), default=None,
              help="At most N utterances of each speaker, evenly spread over its sorted list "
                   "(a smaller, speaker-balanced token corpus for the prior).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a config value, e.g. --set data.root=/data/VCTK (repeatable).")
def encode_corpus(config_path, output, model_name, skip_existing, max_per_speaker, overrides):
    """Encode the corpus a VQ-VAE config trained on, for its prior.

    Reads CONFIG's [data] corpus the way training did (VCTK's chosen microphone only, held-out
    speakers and the test subset left out) and writes OUT/SPEAKER/UTT.vqc, each with its speaker
    in the header, which `vqcodec train prior` reads. Resumable with --skip-existing; failures
    are listed at the end.

    \b
    Examples:
      vqcodec encode-corpus recipes/synth/config.toml -m runs/synth/vqvae/checkpoint.pt -o data/synth/tokens
      vqcodec encode-corpus recipes/vctk/config.toml -m runs/vctk/vqvae/checkpoint.pt -o data/vctk/tokens --skip-existing
      vqcodec encode-corpus recipes/real/config.toml -m default -o data/real_tokens --max-per-speaker 80
    """
    from ..config import load_config
    from ..data.prepare import utterances_to_encode

    cfg = load_config(config_path, list(overrides))
    codec = _load(model_name)
    utts = [u for u in utterances_to_encode(cfg) if u.speaker in codec.speakers]
    if not utts:
        raise VqcodecError(f"{cfg.data.root}: no utterances of the model's speakers to encode")
    if max_per_speaker:
        utts = _spread_per_speaker(utts, max_per_speaker)
    jobs = [(u.path, Path(output) / u.speaker / f"{u.utt_id}{codes.SUFFIX}") for u in utts]
    speaker_of = {u.path: u.speaker for u in utts}
    jobs = _without_existing(jobs, skip_existing)

    def work(src: Path, dst: Path):
        _encode_to(codec, src, dst, speaker_of[src], force=True)

    click.echo(f"encoding {len(jobs)} utterance(s) of {len({u.speaker for u in utts})} speaker(s) -> {output}",
               err=True)
    _run_batch(jobs, work, "encoding", [], "encoded")


def _spread_per_speaker(utts: list, limit: int) -> list:
    """At most `limit` utterances per speaker, evenly spaced over each speaker's list sorted by
    path (deterministic; a speaker with fewer keeps all)."""
    import numpy as np

    by: dict[str, list] = {}
    for u in sorted(utts, key=lambda u: str(u.path)):
        by.setdefault(u.speaker, []).append(u)
    out = []
    for group in by.values():
        picks = np.unique(np.linspace(0, len(group) - 1, min(limit, len(group))).round().astype(int))
        out += [group[i] for i in picks]
    return out


def _precheck(jobs, failures: list, check) -> list:
    """The jobs for which check(src, dst) raises nothing; the others go to `failures`. Run before the
    model is loaded, so bad input is refused without waiting for it."""
    ok = []
    for src, dst in jobs:
        try:
            check(src, dst)
            ok.append((src, dst))
        except Exception as e:
            failures.append((src, _message(src, e)))
    return ok


def _check_tokens(src: Path) -> None:
    """A cheap pre-load check of a .vqc file (format, CRC). Entropy-coded files need a prior to
    read the tokens: they are checked in full after loading."""
    try:
        codes.read(src)
    except VqcodecError as e:
        if "entropy-coded" not in str(e):
            raise


def _lazy_coder_for(prior_names):
    """codes.read's coder_for, importing vqcodec.entropy (and with it torch) only when a file is
    entropy-coded, so `info` on plain files stays fast."""
    made = []

    def coder_for(prior_id: str):
        if not made:
            from ..api import coder_for_priors

            made.append(coder_for_priors(*prior_names))
        return made[0](prior_id)
    return coder_for


def _without_existing(jobs: list[tuple[Path, Path]], skip_existing: bool, force: bool = False
                      ) -> list[tuple[Path, Path]]:
    """--skip-existing: drop the jobs whose output is already there (saying how many)."""
    if force and skip_existing:
        raise VqcodecError("--force and --skip-existing contradict each other")
    if not skip_existing:
        return jobs
    todo = [(src, dst) for src, dst in jobs if not dst.exists()]
    if len(todo) < len(jobs):
        _note(f"note: skipping {len(jobs) - len(todo)} file(s) whose output exists")
    return todo


def _entropy_coder(prior_name: str, codec):
    """encode --entropy: the EntropyCoder of a prior trained on this codec's tokens."""
    from ..api import load_prior
    from ..entropy import EntropyCoder

    prior = load_prior(prior_name)
    prior.check_compatible(codec)
    coder = EntropyCoder.from_prior(prior)
    coder.progress = True
    return coder


def _encode_to(codec, src: Path, dst: Path, speaker: str, force: bool, chunk_seconds: float = 5.0,
               coder=None, codebooks: int | None = None):
    """Encode the audio file src into the .vqc file dst (atomically), entropy-coded with `coder`
    if given, keeping the first `codebooks` codebooks (default all); returns the TokenFile."""
    tf = codec.encode_file_utterance(src, chunk_seconds, speaker=speaker, codebooks=codebooks)  # tokens, gain, voice
    codes.write(dst, tf, force=force, coder=coder)
    return tf


def _note(text: str) -> None:
    progress.write(text)


def _speaker_of(path: Path, codec) -> str:
    """The source speaker, when the parent folder names a speaker the model knows."""
    return path.parent.name if path.parent.name in codec.speakers else ""


# Files decoded together in one batch of segments: about 21 minutes of audio, so the outputs held
# in memory at once stay ~100 MB however many files are given.
_DECODE_GROUP_TOKENS = 128 * 2500


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--output", "-o", help="Output .wav file (one input file) or directory (mirrors the input trees).")
@click.option("--speaker", "-s", help="Voice to decode with (default: the file's own voice vector; v1 models: "
                                      "the source speaker if known, else the model's first speaker). "
                                      "See `vqcodec speakers`.")
@click.option("--model", "-m", "model_name", default=None,
              help="Shipped model name or checkpoint path [default: the shipped model whose id the file "
                   "names (a .vqc names the model that encoded it)].")
@click.option("--temperature", "-t", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="WaveNet decoder sampling temperature (0 = argmax).")
@click.option("--seed", default=0, show_default=True,
              help="Random seed: a file decoded with the same seed, voice and --batch gives the same "
                   "audio, alone or among other files.")
@click.option("--batch", "max_batch", default=128, show_default=True, type=click.IntRange(min=1),
              help="Segments decoded side by side (1 = one sequential stream per file, slow).")
@click.option("--suffix", default=None, metavar="SUFFIX",
              help="Output name = input name without .vqc + SUFFIX [default: .decoded.wav next to the "
                   "input (talk.vqc -> talk.decoded.wav, never the talk.wav it came from), .wav under -o DIR].")
@FORCE_OPTION
@SKIP_OPTION
@click.option("--prior", "prior_names", multiple=True, default=SHIPPED_PRIORS, show_default=True,
              help="Prior(s) for entropy-coded files (shipped name or checkpoint path; repeatable).")
@DECODER_OPTION
def decode(inputs, output, speaker, model_name, temperature, seed, max_batch, suffix, force, skip_existing,
           prior_names, decoder):
    """Decode .vqc token files to 16 kHz wav.

    Each file is decoded by the model that encoded it: the shipped model with the id the file
    names (tried in order, each loaded only when needed), or the one given with -m.
    A file of a ladder model decodes from the codebooks it holds, however many (`vqcodec info`:
    codebooks). v2 models use the fast decoder by default (deterministic); --decoder wavenet (and v1 models)
    use the WaveNet decoder, which samples: each file is cut into segments generated side by side
    (with a short warm-up and a cross-fade at each seam), and --temperature / --seed apply.
    Several files are batched together. A failed file leaves no output, and the other files
    still get decoded.

    \b
    Examples:
      vqcodec decode talk.vqc                    # writes talk.decoded.wav next to it
      vqcodec decode talk.vqc -o out.wav --speaker us2 --seed 3
      vqcodec decode tokens/ -o decoded/         # mirrors the tree, files batched together
      vqcodec decode tokens/ --suffix .us2.wav -s us2   # next to each .vqc: x.us2.wav
      vqcodec decode tokens/ -o decoded/ --skip-existing   # resume after an interruption
      vqcodec decode talk.vqc --prior runs/x/prior/checkpoint.pt   # entropy-coded with that prior
      vqcodec decode talk.vqc -m runs/x/vqvae/checkpoint.pt        # a file of your own model
    """
    found, failures = _expand(inputs, (codes.SUFFIX,))
    if suffix is not None and not suffix.strip(". "):
        raise VqcodecError(f"--suffix {suffix!r}: give a suffix such as .decoded.wav")
    jobs, clashes = _outputs(found, output, suffix or ".decoded.wav", suffix or ".wav")
    failures += clashes
    jobs = _without_existing(jobs, skip_existing, force)
    total = len(jobs) + len(failures)
    jobs = _precheck(jobs, failures, lambda src, dst: (_check_output(dst, force), _check_tokens(src)))
    for _, message in failures:
        _error(message)
    if not jobs:  # every input refused or skipped: no model loaded for nothing
        _report(failures, total)
        return
    model_for = _model_lookup(model_name, speaker)
    coder_for = _lazy_coder_for(prior_names)
    ready = []  # (src, dst, TokenFile, codec), checked before any decoding
    for src, dst in jobs:
        try:
            _check_output(dst, force)
            codec = model_for(codes.read_model_id(src))  # from the header: the prior is not needed yet
            tf = codes.read(src, expect_model_id=codec.model_id, coder_for=coder_for)
            if tf.num_tokens == 0:
                raise VqcodecError(f"{src}: holds no tokens")
            ready.append((src, dst, tf, codec))
        except Exception as e:
            failures.append((src, _message(src, e)))
            _error(failures[-1][1])
    groups = []  # files of one model, about _DECODE_GROUP_TOKENS tokens a group
    for codec in dict.fromkeys(item[3] for item in ready):
        size = _DECODE_GROUP_TOKENS + 1
        for item in (item for item in ready if item[3] is codec):
            if size + item[2].num_tokens > _DECODE_GROUP_TOKENS:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += item[2].num_tokens
    # one progress over the whole batch, in seconds of audio (each group advances it)
    batch_s = sum(tf.num_tokens * tf.hop / tf.sample_rate for _, _, tf, _ in ready)
    bar = progress.bar(total=batch_s, desc="decoding", unit="s audio", leave=False,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")
    batch_start, written = time.perf_counter(), 0
    for group in groups:
        codec = group[0][3]
        voices = [speaker or _default_voice(codec, tf) for _, _, tf, _ in group]
        start = time.perf_counter()
        try:
            wavs = codec.decode_many([tf.tokens for _, _, tf, _ in group], voices, temperature=temperature,
                                     seed=seed, num_samples=[tf.num_samples for _, _, tf, _ in group],
                                     progress=bar, max_batch=max_batch, decoder=decoder,
                                     voices=[tf.voice for _, _, tf, _ in group],
                                     gains=[tf.gain for _, _, tf, _ in group],
                                     pitches=[tf.pitch if tf.pitch_levels else None for _, _, tf, _ in group],
                                     f0_medians=[tf.f0_median for _, _, tf, _ in group])
        except Exception as e:
            for src, _, _, _ in group:
                failures.append((src, _message(src, e)))
                _error(failures[-1][1])
            continue
        finally:
            if group is groups[-1]:
                bar.close()  # its last line comes before the results'
        elapsed = time.perf_counter() - start
        for (src, dst, tf, _), wav, voice in zip(group, wavs, voices):
            try:
                audio.save(dst, wav, codec.sample_rate, force=force)
            except Exception as e:
                failures.append((src, _message(src, e)))
                _error(failures[-1][1])
                continue
            written += 1
            if total == 1:
                shown = voice or "its own voice"
                click.echo(f"{dst}: {len(wav) / codec.sample_rate:.2f} s as {shown}, "
                           f"real-time factor {elapsed / max(tf.duration_s, 1e-9):.2f}"
                           + ("" if model_name else f" (model {model_for.name_of[codec.model_id]})"))
    bar.close()
    if total > 1:
        _summary("decoded", written, total, time.perf_counter() - batch_start, batch_s)
    _report(failures, total)


def _default_voice(codec, tf) -> str | None:
    """The named voice a file is decoded with when --speaker is not given: none for a v2 file with
    its own voice vector; else (v1) the file's source speaker when the model knows it; else the
    model's first named voice."""
    if codec.has_voice and tf.voice.size:
        return None
    if not codec.has_voice and tf.speaker in codec.speakers:
        return tf.speaker
    return codec.speakers[0] if codec.speakers else None


def _model_lookup(model_name: str | None, speaker: str | None):
    """decode's model for a file, given the model id the file names. Without -m: the shipped model
    with that id (`api.ModelsById`: loaded in order, on first need). With -m: that model, and a
    file of another model is refused, naming the shipped model that made it if one did.
    --speaker is checked against each model as it is first used."""
    from ..api import ModelsById
    from ..pretrained import shipped_models

    models = ModelsById(*([model_name] if model_name else []), *(n for n in shipped_models() if n != model_name))
    checked = set()

    def with_speaker(codec):
        if speaker is not None and codec.model_id not in checked:
            codec.speaker_index(speaker)
            checked.add(codec.model_id)
        return codec

    given = with_speaker(models.first()) if model_name else None  # a bad -m or --speaker fails before any file

    def model_for(model_id: str):
        if given is None:
            return with_speaker(models(model_id))
        if model_id != given.model_id:
            name = models.name_of[model_id] if models.find(model_id) is not None else None
            hint = (f"the shipped model {name}: use -m {name} or leave -m out" if name
                    else "decode it with the model that encoded it")
            raise VqcodecError(f"made by model {model_id} ({hint}), but the model given "
                               f"(-m {model_name}) is {given.model_id}")
        return given

    model_for.name_of = models.name_of
    return model_for


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--speaker", "-s", help="Target voice by name (see `vqcodec speakers`).")
@click.option("--like", "like_path", type=click.Path(), metavar="REF.wav",
              help="Target voice from a reference recording of anyone (v2 models; 3-10 s of speech).")
@click.option("--output", "-o", required=True, help="Output .wav file (one input) or directory.")
@CONVERT_MODEL_OPTION
@click.option("--temperature", "-t", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="WaveNet decoder sampling temperature (0 = argmax).")
@click.option("--seed", default=0, show_default=True, help="WaveNet decoder random seed (same seed, same audio).")
@DECODER_OPTION
@FORCE_OPTION
@SKIP_OPTION
def convert(inputs, speaker, like_path, output, model_name, temperature, seed, decoder, force, skip_existing):
    """Voice conversion: encode INPUT(s), decode the tokens in another voice, either a named one
    (--speaker) or the voice of any reference recording (--like, v2 models).

    \b
    Examples:
      vqcodec convert talk.wav --like alice.wav -o talk_as_alice.wav
      vqcodec convert talk.wav --speaker us2 -o talk_as_us2.wav
      vqcodec convert recordings/ --like alice.wav -o as_alice/     # mirrors the tree
      vqcodec convert recordings/ --like alice.wav -o as_alice/ --skip-existing   # resume
    """
    if (speaker is None) == (like_path is None):
        raise VqcodecError("give the target voice with exactly one of --speaker NAME or --like REF.wav")
    if like_path is not None:
        _check_reference(like_path)  # refused before the model loads
    found, failures = _expand(inputs, audio.AUDIO_EXTENSIONS)
    jobs, clashes = _outputs(found, output, ".wav")
    failures += clashes
    jobs = _without_existing(jobs, skip_existing, force)
    jobs = _precheck(jobs, failures, lambda src, dst: (_check_output(dst, force), audio.info(src)))
    if not jobs:  # every input refused: no model loaded for nothing
        _run_batch([], None, "converting", failures, "converted")
        return
    codec = _load(model_name)
    voice, median, shown = None, None, speaker
    if like_path is not None:
        voice, median = _reference_voice(codec, like_path)
        shown = f"the voice of {like_path}"
    else:
        codec.speaker_index(speaker)

    def work(src: Path, dst: Path):
        tf = codec.encode_file_utterance(src)
        start = time.perf_counter()
        wav = codec.decode_file(tf, speaker, voice=voice, f0_median=median, temperature=temperature, seed=seed,
                                progress=len(jobs) == 1, decoder=decoder)
        elapsed = time.perf_counter() - start
        audio.save(dst, wav, codec.sample_rate, force=force)
        if len(jobs) == 1:
            click.echo(f"{dst}: {len(wav) / codec.sample_rate:.2f} s as {shown}, "
                       f"decoding real-time factor {elapsed / max(tf.duration_s, 1e-9):.3f}")

    _run_batch(jobs, work, "converting", failures, "converted")


def _check_reference(path) -> None:
    """A reference recording's header checked before the model loads: readable audio at a sane
    rate, between MIN_REFERENCE_SECONDS and VOICE_MAX_SECONDS long. Errors name the file."""
    header = audio.info(path)
    audio.check_reference(header.frames, header.samplerate, str(path))


def _reference_voice(codec, path) -> tuple:
    """(voice vector, median F0 or None) of a reference recording; errors name the file."""
    ref = audio.load(path, codec.sample_rate, verbose_resample=True)
    try:
        voice = codec.voice_of(ref, codec.sample_rate)
        return voice, codec.median_f0_of(ref, codec.sample_rate) if codec.has_pitch else None
    except VqcodecError as e:
        raise VqcodecError(_message(Path(path), e)) from None


@cli.command()
@MODEL_OPTION
@click.option("--language", "-l", metavar="LANG",
              help="Only voices of this language (a tag or its start: en, en-GB, pt; see the table).")
@click.option("--names", "names_only", is_flag=True, help="Only the names, one a line (for scripts).")
def speakers(model_name, language, names_only):
    """List the named voices a model can decode with (`--speaker NAME`): language, source and sex.

    The language and source come from the corpus builders' naming rules (a Debian package, or a
    synthesizer voice); sex is shown where the source states it, else "-". The last line counts
    the voices and names the English ones.

    \b
    Examples:
      vqcodec speakers
      vqcodec speakers --language en             # the English voices only
      vqcodec speakers --names -m runs/synth/vqvae/checkpoint.pt
    """
    from ..checkpoint_meta import speakers as read_speakers
    from ..data.voices import describe
    from ..pretrained import resolve

    names = read_speakers(resolve(model_name))  # without torch: ~0.1 s instead of ~2 s
    voices = [describe(n) for n in (names if names is not None else _load(model_name).speakers)]
    if language:
        want = language.lower()
        voices = [v for v in voices if v.language and (v.language.lower() == want
                                                        or v.language.lower().startswith(want + "-"))]
        if not voices:
            raise VqcodecError(f"no voice of language {language!r} in this model")
    if names_only:
        for v in voices:
            click.echo(v.name)
        return
    width = max(len(v.name) for v in voices) + 2 if voices else 6
    lang_w = max([len(v.language or "-") + len(v.language_name) + 1 for v in voices] + [8]) + 2
    click.echo(f"{'name':<{width}}{'language':<{lang_w}}{'sex':<8}source")
    for v in voices:
        lang = f"{v.language} {v.language_name}" if v.language else "-"
        click.echo(f"{v.name:<{width}}{lang:<{lang_w}}{v.sex or '-':<8}{v.source or '-'}")
    english = [v.name for v in voices if v.english]
    click.echo(f"{len(voices)} voice(s), {len(english)} English" + (f": {', '.join(english)}" if english else ""))


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--prior", "prior_names", multiple=True, default=SHIPPED_PRIORS, show_default=True,
              help="Prior(s) for entropy-coded files (shipped name or checkpoint path; repeatable).")
def info(files, prior_names):
    """Print what .vqc token files hold: duration, model, streams, codebooks, bits per token, bitrates.

    `codebooks` is how many codebooks each frame holds: 1, or for a model with a bitrate ladder the
    first k of its N (`encode --kbps`); usage and entropy are counted per codebook.

    Bitrates are bits stored per second of the original audio (as `encode` prints them):
    tokens_bps the content stream (bit-packed or entropy-coded), streams_bps every stream
    (tokens, pitch, voice, gain), file_bps the whole file with its header and CRC. For an
    entropy-coded file (read with its prior): the bits per token actually stored and the saving
    against bit-packing the tokens.

    \b
    Examples:
      vqcodec info talk.vqc
      vqcodec info tokens/*.vqc --prior runs/x/prior/checkpoint.pt
    """
    coder_for = _lazy_coder_for(prior_names)
    failures = 0
    for f in files:
        try:
            desc = codes.describe(codes.read(f, coder_for=coder_for))
        except VqcodecError as e:
            click.echo(f"vqcodec: error: {e}", err=True)
            failures += 1
            continue
        click.echo(f"{f}:")
        width = max(map(len, desc))
        for key, value in desc.items():
            click.echo(f"  {key:>{width}}: {value}")
    if failures:
        raise SystemExit(1)


@cli.command()
@click.option("--output", "-o", required=True, help="Output .wav file.")
@click.option("--seconds", default=3.0, show_default=True, help="Length to sample.")
@click.option("--speaker", "-s", help="Voice for the prior and the decoder (default: first speaker).")
@click.option("--prior", "prior_name", default="default-prior", show_default=True,
              help="Shipped prior name or checkpoint path.")
@MODEL_OPTION
@click.option("--prior-temperature", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="The prior's sampling temperature: how adventurous the invented tokens are (0 = argmax).")
@click.option("--temperature", "-t", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="WaveNet decoder sampling temperature (0 = argmax), as in decode / convert.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the prior and the decoder.")
@click.option("--prompt", type=click.Path(dir_okay=False), help="Audio or .vqc file whose tokens start the stream.")
@click.option("--tokens-out", help="Also write the sampled tokens as a .vqc file.")
@click.option("--like", "like_path", type=click.Path(dir_okay=False), metavar="REF.wav",
              help="v2 models: voice the tokens like this recording (instead of a named voice).")
@DECODER_OPTION
@FORCE_OPTION
def sample(output, seconds, speaker, prior_name, model_name, prior_temperature, temperature, seed,
           prompt, tokens_out, like_path, decoder, force):
    """Sample new speech: the prior invents a token stream, the decoder voices it.

    --prior-temperature is the prior's (the tokens); -t / --temperature the WaveNet decoder's, as
    in every other command (the fast decoder is deterministic).

    \b
    Examples:
      vqcodec sample -o babble.wav --seconds 4 --speaker us2
      vqcodec sample -o more.wav --prompt talk.wav --seconds 6 --tokens-out more.vqc
      vqcodec sample -o alice_babble.wav --like alice.wav
      vqcodec sample -o calm.wav --prior-temperature 0.8 --decoder wavenet -t 0.9
    """
    if like_path is not None:
        _check_reference(like_path)
    from ..api import load_prior

    codec = _load(model_name)
    if codec.has_pitch:
        raise VqcodecError("this model decodes tokens with a pitch stream, which the prior does not sample: "
                           "`vqcodec sample` needs a model without [model.pitch] (e.g. the default)")
    prior = load_prior(prior_name)
    prior.check_compatible(codec)
    codec.speaker_index(speaker)
    voice = None
    if like_path is not None:
        voice = _reference_voice(codec, like_path)[0]
    for path in (output, tokens_out):
        if path and not force and Path(path).exists():
            raise VqcodecError(f"{path} exists (use -f/--force to overwrite)")
    if seconds <= 0:
        raise VqcodecError("--seconds must be positive")
    prompt_tokens = None
    if prompt:
        if prompt.endswith(codes.SUFFIX):
            from ..api import coder_for_priors

            prompt_tokens = codes.read(prompt, expect_model_id=codec.model_id,
                                       coder_for=coder_for_priors(prior_name)).tokens
        else:
            prompt_tokens = codec.encode(audio.load(prompt, codec.sample_rate, verbose_resample=True), codec.sample_rate)
    n = max(1, round(seconds * codec.sample_rate / codec.hop))
    tokens = prior.sample(n, speaker, temperature=prior_temperature, seed=seed, prompt=prompt_tokens, progress=True)
    named = speaker or (codec.speakers[0] if voice is None else None)  # --speaker's default: the first
    wav = codec.decode(tokens, named, temperature=temperature, seed=seed, progress=True,
                       voice=voice, decoder=decoder)
    if voice is None and codec.has_voice:
        voice = codec.voices[named]
    if tokens_out:
        codes.write(tokens_out, codes.TokenFile(tokens=tokens, sample_rate=codec.sample_rate,
                                                num_samples=len(wav), hop=codec.hop,
                                                codebook_size=codec.codebook_size,
                                                model_id=codec.model_id, speaker=speaker or "",
                                                voice=voice if voice is not None else np.zeros(0, np.uint8)),
                    force=force)
    audio.save(output, wav, codec.sample_rate, force=force)
    click.echo(f"{output}: {len(wav) / codec.sample_rate:.2f} s of sampled speech"
               + (f" as {speaker}" if speaker else ""))
