"""The codec people use: `vqcodec encode / decode / convert / speakers / info` on a tiny model, and
every kind of bad input (one stderr line, exit != 0, no output file, the rest of a batch done)."""
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from tiny import tiny_config, tone
from vqcodec import checkpoint
from vqcodec.api import Codec, load_model
from vqcodec.cli import cli
from vqcodec.models.vqvae import VQVAE

SPEAKERS = ["us1", "us2"]


def _varied(seconds: float, seed: int) -> np.ndarray:
    """Noise and tone whose loudness and colour change every few ms: a random-init tiny encoder
    maps it to many different codes (a steady tone gives one)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    env = np.repeat(rng.uniform(0.02, 0.6, n // 32 + 1), 32)[:n]
    noise = np.convolve(rng.standard_normal(n), rng.standard_normal(8) / 4, mode="same")
    return (np.clip(env * (noise + tone(seconds, 170 + 50 * seed, seed=seed)[:n]), -1, 1)).astype(np.float32)


def _tiny_model(codebook_size: int, seed: int) -> tuple:
    """A random-init tiny VQ-VAE whose codebook is seeded from encoder outputs, so that speech-like
    input uses many codes (a plain random codebook maps everything to one code)."""
    cfg = tiny_config()
    cfg.model.quantizer.codebook_size = codebook_size
    torch.manual_seed(seed)
    model = VQVAE(cfg.model, len(SPEAKERS)).eval()
    wav = _varied(3.0, seed + 10)
    with torch.no_grad():
        z = model.encoder(torch.from_numpy(wav[: len(wav) // 64 * 64]).view(1, -1))[0].T
        idx = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:codebook_size]  # distinct codes
        model.quantizer.codebook.data.copy_(z[idx])
    return cfg, model


def _save(path, cfg, model):
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": SPEAKERS},
                           "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"main": _save(root / "k512.pt", *_tiny_model(512, 0)),
            "other": _save(root / "other.pt", *_tiny_model(512, 1))}


@pytest.fixture
def run(models):
    def run(*args, model="main"):
        result = CliRunner().invoke(cli, [str(a) for a in args] + ["--model", models[model]])
        return result
    return run


def _wav(path, seconds=0.3, sr=16000, seed=0):
    sf.write(str(path), tone(seconds, 200 + 40 * seed, sr=sr, seed=seed), sr, subtype="PCM_16")
    return path


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("vqcodec: error:")]


def _leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


# ----------------------------------------------------------------------------- happy paths
def test_encode_decode_roundtrip_and_info(run, tmp_path):
    x = _wav(tmp_path / "x.wav", seconds=0.33)
    r = run("encode", x, "-o", tmp_path / "x.vqc")
    assert r.exit_code == 0, r.output
    r = run("decode", tmp_path / "x.vqc", "-o", tmp_path / "y.wav", "--speaker", "us2")
    assert r.exit_code == 0, r.output
    n_in, n_out = sf.info(str(x)).frames, sf.info(str(tmp_path / "y.wav"))
    assert n_out.samplerate == 16000 and abs(n_out.frames - n_in) < 64
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "x.vqc")])
    assert r.exit_code == 0 and "bits_per_token: 9" in r.output
    assert "tokens_bps: 22" in r.output and "file_bps:" in r.output  # ~2250 bit/s of 9-bit tokens


def test_speakers_lists_the_voices(run):
    r = run("speakers", "--names")
    assert r.exit_code == 0 and r.output.split() == SPEAKERS
    r = run("speakers")  # the table: one row per voice, then the English ones
    assert r.exit_code == 0 and [line.split()[0] for line in r.output.splitlines()[1:-1]] == SPEAKERS


def test_help_has_examples():
    for cmd in ("encode", "decode", "convert", "speakers", "info"):
        r = CliRunner().invoke(cli, [cmd, "--help"])
        assert r.exit_code == 0
    assert "Examples:" in CliRunner().invoke(cli, ["encode", "--help"]).output


def test_chunked_encode_equals_whole_file_encode(models, tmp_path, monkeypatch):
    from vqcodec import tokenizer

    monkeypatch.setattr(tokenizer, "BLOCK_SECONDS", 0.1)  # 25-token blocks: the 1.15 s spans 12 (4 s default)
    codec = load_model(models["main"])
    wav = _varied(1.15, 1)[:-37]  # not whole hops
    whole = codec.encode(wav, 16000, chunk_seconds=100)
    assert len(whole) == -(-len(wav) // 64) and len(np.unique(whole)) > 10
    for seconds in (0.05, 0.13, 0.4):  # many chunks, chunks not dividing the length
        assert np.array_equal(codec.encode(wav, 16000, chunk_seconds=seconds), whole)
    sf.write(str(tmp_path / "a.wav"), wav, 16000, subtype="FLOAT")
    assert np.array_equal(codec.encode_file(tmp_path / "a.wav", chunk_seconds=0.07), whole)  # streamed from disk
    r = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.wav"), "--chunk-seconds", "0.05",
                                 "--model", models["main"]])
    assert r.exit_code == 0, r.output
    from vqcodec import codes

    assert np.array_equal(codes.read(tmp_path / "a.vqc").tokens, whole)


def test_decode_is_deterministic_for_a_seed(run, tmp_path):
    _wav(tmp_path / "x.wav", seconds=0.5)
    assert run("encode", tmp_path / "x.wav").exit_code == 0
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        r = run("decode", tmp_path / "x.vqc", "-o", tmp_path / f"{name}.wav", "--seed", seed, "--batch", 4)
        assert r.exit_code == 0, r.output
    a, b, c = (sf.read(str(tmp_path / f"{n}.wav"))[0] for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_directories_mirror_and_files_batch_together(run, tmp_path):
    for i, rel in enumerate(["in/us1/a.wav", "in/us2/b.wav", "in/c.wav"]):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        _wav(tmp_path / rel, seconds=0.2 + 0.05 * i, seed=i)
    (tmp_path / "in/notes.txt").write_text("not audio, not matched")
    r = run("encode", tmp_path / "in", "-o", tmp_path / "tok")
    assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(tmp_path / "tok").as_posix() for p in (tmp_path / "tok").rglob("*.vqc")) == \
        ["c.vqc", "us1/a.vqc", "us2/b.vqc"]
    r = run("decode", tmp_path / "tok", "-o", tmp_path / "dec")
    assert r.exit_code == 0, r.output
    for rel, src in (("us1/a.wav", "in/us1/a.wav"), ("c.wav", "in/c.wav")):
        assert sf.info(str(tmp_path / "dec" / rel)).frames == sf.info(str(tmp_path / src)).frames


def test_refuses_to_overwrite_without_force(run, tmp_path):
    _wav(tmp_path / "x.wav")
    assert run("encode", tmp_path / "x.wav").exit_code == 0
    before = (tmp_path / "x.vqc").read_bytes()
    r = run("encode", tmp_path / "x.wav")
    assert r.exit_code != 0 and "exists (use -f/--force" in r.stderr
    assert (tmp_path / "x.vqc").read_bytes() == before
    assert run("encode", tmp_path / "x.wav", "-f").exit_code == 0


def test_resampling_note_is_printed_once(run, tmp_path):
    for i in range(3):
        _wav(tmp_path / f"s{i}.wav", sr=8000, seed=i)
    r = run("encode", *(tmp_path / f"s{i}.wav" for i in range(3)), "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("note: resampling 8000 Hz") == 1
    assert len(list((tmp_path / "out").glob("*.vqc"))) == 3


def test_convert_writes_the_target_voice(run, tmp_path):
    _wav(tmp_path / "x.wav", seconds=0.25)
    r = run("convert", tmp_path / "x.wav", "--speaker", "us2", "-o", tmp_path / "y.wav")
    assert r.exit_code == 0, r.output
    assert sf.info(str(tmp_path / "y.wav")).frames == sf.info(str(tmp_path / "x.wav")).frames


# ----------------------------------------------------------------------------- bad input
def _bad_inputs(tmp_path, run):
    """name -> (argv, expected message part, output that must not exist)."""
    good = _wav(tmp_path / "good.wav")
    assert run("encode", good, "-o", tmp_path / "good.vqc").exit_code == 0
    assert run("encode", good, "-o", tmp_path / "foreign.vqc", model="other").exit_code == 0
    (tmp_path / "text.wav").write_text("hello, I am not audio\n")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 16000)
    nan = tone(0.2)
    nan[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), nan, 16000, subtype="FLOAT")
    data = bytearray((tmp_path / "good.vqc").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "corrupt.vqc").write_bytes(bytes(data))
    (tmp_path / "regular").write_text("a file, not a folder")
    t = tmp_path
    return {
        "missing": (["encode", t / "missing.wav"], "no such file", t / "missing.vqc"),
        "not audio": (["encode", t / "text.wav"], "not a readable audio file", t / "text.vqc"),
        "empty": (["encode", t / "empty.wav"], "audio is empty", t / "empty.vqc"),
        "nan": (["encode", t / "nan.wav"], "NaN", t / "nan.vqc"),
        "other model": (["decode", t / "foreign.vqc"], "made by model", t / "foreign.decoded.wav"),
        "corrupt": (["decode", t / "corrupt.vqc"], "CRC mismatch", t / "corrupt.decoded.wav"),
        "missing vqc": (["decode", t / "nothere.vqc"], "no such token file", t / "nothere.decoded.wav"),
        "unknown speaker": (["decode", t / "good.vqc", "-s", "nobody", "-o", t / "spk.wav"], "unknown speaker 'nobody'",
                            t / "spk.wav"),
        "convert speaker": (["convert", good, "-s", "nobody", "-o", t / "conv.wav"], "unknown speaker", t / "conv.wav"),
        "unwritable dir": (["encode", good, "-o", t / "regular/sub/"], "not a directory", t / "regular/sub/good.vqc"),
        "unwritable file": (["decode", t / "good.vqc", "-o", t / "regular/y.wav"], "not a directory", None),
        "convert unwritable": (["convert", good, "-s", "us1", "-o", t / "regular/c.wav"], "not a directory", None),
    }


def test_every_bad_input_fails_cleanly(run, tmp_path):
    for name, (argv, message, output) in _bad_inputs(tmp_path, run).items():
        r = run(*argv)
        lines = _error_lines(r)
        assert r.exit_code != 0, name
        assert lines and message in lines[0], (name, r.stderr)
        assert "Traceback" not in r.output + r.stderr, name
        if output is not None:
            assert not output.exists(), name
    assert not _leftovers(tmp_path)


def test_a_batch_with_bad_files_still_does_the_good_ones(run, tmp_path):
    bad = _bad_inputs(tmp_path, run)
    _wav(tmp_path / "good2.wav", seed=3)
    r = run("encode", tmp_path / "good2.wav", tmp_path / "text.wav", tmp_path / "missing.wav",
            tmp_path / "nan.wav", tmp_path / "good.wav", "-o", tmp_path / "out", "-f")
    assert r.exit_code != 0
    assert (tmp_path / "out/good2.vqc").exists() and (tmp_path / "out/good.vqc").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.vqc", "good2.vqc"]
    last = _error_lines(r)[-1]
    assert "3 of 5" in last and "text.wav" in last and "nan.wav" in last and "missing.wav" in last
    r = run("decode", tmp_path / "out/good.vqc", tmp_path / "corrupt.vqc", tmp_path / "foreign.vqc",
            tmp_path / "out/good2.vqc", "-o", tmp_path / "dec")
    assert r.exit_code != 0
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["good.wav", "good2.wav"]
    assert "2 of 4" in _error_lines(r)[-1]
    assert not _leftovers(tmp_path)
    del bad


def test_skip_existing_resumes_a_corpus_encode(run, tmp_path):
    (tmp_path / "in" / "spk").mkdir(parents=True)
    for seed, name in enumerate(("a", "b")):
        _wav(tmp_path / "in" / "spk" / f"{name}.wav", seed=seed)
    out = tmp_path / "tokens"
    assert run("encode", tmp_path / "in" / "spk" / "a.wav", "-o", out / "spk" / "a.vqc").exit_code == 0
    before = (out / "spk" / "a.vqc").stat().st_mtime_ns
    result = run("encode", tmp_path / "in", "-o", out, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "skipping 1 file" in result.output
    assert (out / "spk" / "b.vqc").exists()
    assert (out / "spk" / "a.vqc").stat().st_mtime_ns == before  # left alone
    assert run("encode", tmp_path / "in", "-o", out, "--skip-existing", "-f").exit_code != 0


def test_encode_corpus_follows_the_training_config(models, tmp_path):
    """encode-corpus reads the corpus as training did: one VCTK microphone, no held-out speakers,
    no speakers the model lacks; every token file names its speaker in the header."""
    import tomli_w

    from vqcodec import codes
    from vqcodec.data.tokens import load_token_corpus

    root = tmp_path / "vctk" / "wav48_silence_trimmed"
    for spk in ("us1", "us2", "p999"):
        (root / spk).mkdir(parents=True)
        for i in range(2):
            for mic in ("mic1", "mic2"):
                sf.write(str(root / spk / f"{spk}_00{i}_{mic}.flac"), _varied(0.3, i + (mic == "mic2")), 16000)
    cfg = tiny_config().to_dict()
    cfg["data"].update(corpus="vctk", root=str(tmp_path / "vctk"), vctk_mic="mic1", holdout_speakers=["us2"],
                       valid_fraction=0.0, test_fraction=0.0)
    (tmp_path / "c.toml").write_text(tomli_w.dumps(cfg))
    out = tmp_path / "tokens"
    r = CliRunner().invoke(cli, ["encode-corpus", str(tmp_path / "c.toml"), "-o", str(out), "-m", models["main"]])
    assert r.exit_code == 0, r.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.vqc")) == ["us1/us1_000.vqc", "us1/us1_001.vqc"]
    codec = load_model(models["main"])
    for name in ("us1_000", "us1_001"):
        tf = codes.read(out / "us1" / f"{name}.vqc")
        assert tf.speaker == "us1"
        np.testing.assert_array_equal(tf.tokens, codec.encode_file(root / "us1" / f"{name}_mic1.flac"))
    assert [(u, s) for u, s, _ in load_token_corpus(out)] == [("us1/us1_000", "us1"), ("us1/us1_001", "us1")]
    r = CliRunner().invoke(cli, ["encode-corpus", str(tmp_path / "c.toml"), "-o", str(out), "-m", models["main"],
                                 "--skip-existing"])
    assert r.exit_code == 0 and "skipping 2 file" in r.output


def test_encode_corpus_max_per_speaker_spreads_the_picks(models, tmp_path):
    """--max-per-speaker N keeps at most N utterances per speaker, evenly spread (first and last kept)."""
    import tomli_w

    root = tmp_path / "corpus"
    for spk, n in (("us1", 5), ("us2", 2)):
        (root / spk).mkdir(parents=True)
        for i in range(n):
            sf.write(str(root / spk / f"u{i}.wav"), _varied(0.2, i), 16000)
    cfg = tiny_config().to_dict()
    cfg["data"].update(corpus="folders", root=str(root), valid_fraction=0.0, test_fraction=0.0)
    (tmp_path / "c.toml").write_text(tomli_w.dumps(cfg))
    out = tmp_path / "tokens"
    r = CliRunner().invoke(cli, ["encode-corpus", str(tmp_path / "c.toml"), "-o", str(out), "-m", models["main"],
                                 "--max-per-speaker", "3"])
    assert r.exit_code == 0, r.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.vqc")) == [
        "us1/u0.vqc", "us1/u2.vqc", "us1/u4.vqc", "us2/u0.vqc", "us2/u1.vqc"]
