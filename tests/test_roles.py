"""Issue 21 items 9, 13, 16 and the eval bitrate of item 10: the tokenizer and decoder roles behind a
thin `Codec`, the API's decode / convert refusing what they used to guess, a .vqc finding its model
by the id it names, and eval counting the bits a .vqc stores."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from test_v2 import SPEAKERS, make_model, varied
from tiny import tiny_config, tone
from vqcodec import checkpoint, codes
from vqcodec.api import Codec, load_model
from vqcodec.cli import cli
from vqcodec.decoders import Decoder, FastDecoder, NamedVoices, WaveNetDecoder
from vqcodec.errors import VqcodecError
from vqcodec.models.vqvae import VQVAE
from vqcodec.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
VOICES = {"us1": [10, 200, 30, 128], "us2": [250, 5, 128, 60]}


def _save(path, cfg, model, voices=VOICES):
    meta = {"speakers": SPEAKERS, **({"voices": voices} if voices else {})}
    checkpoint.save(path, {"kind": "vqvae", "config": cfg.to_dict(), "meta": meta, "model": model.state_dict()})
    return str(path)


@pytest.fixture(scope="module")
def v2():
    cfg, model = make_model()
    return Codec(model, cfg, SPEAKERS, voices=VOICES)


@pytest.fixture(scope="module")
def v1():
    cfg = tiny_config()
    torch.manual_seed(0)
    return Codec(VQVAE(cfg.model, 2).eval(), cfg, SPEAKERS)


# --------------------------------------------------------------------------- item 16: the roles
def test_codec_wires_a_tokenizer_to_its_decoders(v2, v1):
    assert isinstance(v2.tokenizer, Tokenizer) and v2.tokenizer.model_id == v2.model_id
    assert type(v2.decoder()) is FastDecoder and type(v2.decoder("wavenet")) is WaveNetDecoder
    assert type(v1.decoder()) is WaveNetDecoder and v1.decoders == ["wavenet"]
    assert all(isinstance(d, Decoder) for d in (v2.decoder(), v2.decoder("wavenet")))
    with pytest.raises(VqcodecError, match="no 'fast' decoder"):
        v1.decoder("fast")


def test_the_roles_alone_give_what_the_codec_gives():
    """A tokenizer and a decoder built from the model, without a Codec: the same streams and audio."""
    cfg, model = make_model()
    codec = Codec(model, cfg, SPEAKERS, voices=VOICES)
    wav = varied(1.3, 3)
    tf = Tokenizer(model, cfg).encode_utterance(wav, SR, chunk_seconds=0.3)
    assert tf == codec.encode_utterance(wav, SR)
    fast = FastDecoder(model, cfg, NamedVoices(model, cfg, SPEAKERS, VOICES))
    out = fast.decode_many([tf.tokens], [None], voices=[tf.voice], gains=[tf.gain], num_samples=[tf.num_samples])[0]
    np.testing.assert_array_equal(out, codec.decode_file(tf))


def test_level_gain_is_the_tokenizers():
    import vqcodec.tasks
    import vqcodec.tokenizer

    assert vqcodec.tasks.level_gain is vqcodec.tokenizer.level_gain  # training scales crops as the codec does
    assert "def level_gain" not in (ROOT / "vqcodec" / "tasks.py").read_text()


def _imports(path: Path) -> set[str]:
    """The vqcodec modules a file imports (absolute names)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_nothing_below_the_api_imports_it():
    """The facade is on top: only the package's entry point and the CLI import vqcodec.api; the
    roles import neither the API nor the training code."""
    above = {"vqcodec/__init__.py"}
    for path in sorted((ROOT / "vqcodec").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in above or rel.startswith("vqcodec/cli/") or rel == "vqcodec/api.py":
            continue
        assert "vqcodec.api" not in _imports(path), rel
    for role in ("tokenizer.py", "decoders.py"):
        found = _imports(ROOT / "vqcodec" / role)
        assert not {"vqcodec.api", "vqcodec.tasks", "vqcodec.train"} & found, role


# --------------------------------------------------------------------------- item 13: the API
def test_decode_file_takes_a_path(v2, tmp_path):
    tf = v2.encode_utterance(varied(0.8, 4), SR)
    path = codes.write(tmp_path / "talk.vqc", tf)
    expected = v2.decode_file(tf)
    np.testing.assert_array_equal(v2.decode_file(str(path)), expected)
    np.testing.assert_array_equal(v2.decode_file(path), expected)
    with pytest.raises(VqcodecError, match="a .vqc path or a codes.TokenFile.*decode\\(tokens"):
        v2.decode_file(tf.tokens)
    with pytest.raises(VqcodecError, match="no such token file"):
        v2.decode_file(tmp_path / "missing.vqc")
    cfg, model = make_model(seed=1)
    other = Codec(model, cfg, SPEAKERS, voices=VOICES)
    with pytest.raises(VqcodecError, match=f"made by model {v2.model_id}"):
        other.decode_file(tf)
    with pytest.raises(VqcodecError, match=f"made by model {v2.model_id}"):
        other.decode_file(path)


def test_decode_without_a_voice_is_refused(v2, v1):
    tokens = v2.encode(varied(0.5, 5), SR)
    with pytest.raises(VqcodecError, match="no voice given: pass speaker=NAME .*us1.*voice="):
        v2.decode(tokens)
    with pytest.raises(VqcodecError, match="no voice given"):
        v2.decode_many([tokens, tokens], ["us1", None])
    assert v2.decode(tokens, "us1").shape == (len(tokens) * v2.hop,)
    t1 = v1.encode(tone(0.2), SR)
    with pytest.raises(VqcodecError, match="no voice given: name one of this model's speakers"):
        v1.decode(t1)
    assert v1.decode(t1[:8], "us2", max_batch=2).shape == (8 * v1.hop,)


def test_convert_like_needs_the_references_rate(v2):
    src, ref = varied(0.5, 6), varied(2.5, 7)
    with pytest.raises(VqcodecError, match="like_rate"):
        v2.convert(src, SR, like=ref)
    out = v2.convert(src, SR, like=ref, like_rate=SR)
    # a reference at another rate is read at its own rate
    ref8k = ref[::2].copy()
    np.testing.assert_array_equal(v2.convert(src, SR, like=ref8k, like_rate=8000).shape, out.shape)


def test_readme_python_block_runs(tmp_path):
    """The README's Python block, as written, on the shipped example (talk.vqc made by `encode`)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"^Python:\n\n```python\n(.*?)```", text, re.S | re.M).group(1)
    assert 'decode_file("talk.vqc")' in block and 'codes.read("talk.vqc")' in block
    examples = ROOT / "pretrained" / "examples"
    wav, sr = sf.read(examples / "example.wav", dtype="float32")
    sf.write(tmp_path / "talk.wav", wav[: sr // 2], sr)  # 0.5 s keeps the WaveNet line quick
    (tmp_path / "alice.wav").write_bytes((examples / "reference_espeak_f4.wav").read_bytes())
    assert CliRunner().invoke(cli, ["encode", str(tmp_path / "talk.wav")]).exit_code == 0
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- item 9: models found by id
@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Tiny stand-ins for the shipped models (VQCODEC_PRETRAINED), and one model that is not shipped."""
    root = tmp_path_factory.mktemp("shipped")
    from vqcodec.pretrained import NAMES

    _save(root / NAMES["default"], *make_model(seed=0))
    _save(root / NAMES["vqcodec-real-lowrate"], *make_model(seed=1))
    _save(root / NAMES["vqcodec-synth-v1"], *make_model(seed=2))
    return root, _save(root / "mine.pt", *make_model(seed=3))


def test_decode_finds_the_shipped_model_by_the_files_id(shipped, tmp_path, monkeypatch):
    root, mine = shipped
    monkeypatch.setenv("VQCODEC_PRETRAINED", str(root))
    sf.write(tmp_path / "talk.wav", varied(0.6, 8), SR)
    run = CliRunner().invoke
    assert run(cli, ["encode", str(tmp_path / "talk.wav"), "-m", "vqcodec-real-lowrate",
                     "-o", str(tmp_path / "lo.vqc")]).exit_code == 0
    r = run(cli, ["decode", str(tmp_path / "lo.vqc")])  # before: "made by model ..., loaded model ..."
    assert r.exit_code == 0, r.output
    assert "(model vqcodec-real-lowrate)" in r.output
    expected = load_model("vqcodec-real-lowrate").decode_file(tmp_path / "lo.vqc")
    got = sf.read(tmp_path / "lo.decoded.wav", dtype="float32")[0]
    np.testing.assert_allclose(got, np.clip(expected, -1, 1), atol=1e-4)  # written as 16-bit PCM

    # -m names another model: refused, naming the shipped model that made the file
    r = run(cli, ["decode", str(tmp_path / "lo.vqc"), "-m", "default", "-o", str(tmp_path / "x.wav")])
    assert r.exit_code != 0 and not (tmp_path / "x.wav").exists()
    assert "the shipped model vqcodec-real-lowrate: use -m vqcodec-real-lowrate" in r.stderr

    # a file of a model that is not shipped: the error names the models tried and what to do
    assert run(cli, ["encode", str(tmp_path / "talk.wav"), "-m", mine, "-o", str(tmp_path / "mine.vqc")]).exit_code == 0
    r = run(cli, ["decode", str(tmp_path / "mine.vqc")])
    assert r.exit_code != 0 and not (tmp_path / "mine.decoded.wav").exists()
    first = [line for line in r.stderr.splitlines() if line.startswith("vqcodec: error:")][0]
    assert "none of the models tried (default = " in first and "vqcodec-real-lowrate = " in first
    assert "decode it with the model that encoded it" in first
    assert run(cli, ["decode", str(tmp_path / "mine.vqc"), "-m", mine]).exit_code == 0


def test_a_directory_of_files_of_two_models_decodes_each_with_its_own(shipped, tmp_path, monkeypatch):
    root, _ = shipped
    monkeypatch.setenv("VQCODEC_PRETRAINED", str(root))
    sf.write(tmp_path / "talk.wav", varied(0.4, 9), SR)
    run = CliRunner().invoke
    for name, model in (("a", "default"), ("b", "vqcodec-real-lowrate"), ("c", "default")):
        assert run(cli, ["encode", str(tmp_path / "talk.wav"), "-m", model,
                         "-o", str(tmp_path / "in" / f"{name}.vqc")]).exit_code == 0
    r = run(cli, ["decode", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "decoded 3 of 3 file(s)" in r.output
    for name, model in (("a", "default"), ("b", "vqcodec-real-lowrate")):
        expected = load_model(model).decode_file(tmp_path / "in" / f"{name}.vqc")
        got = sf.read(tmp_path / "out" / f"{name}.wav", dtype="float32")[0]
        np.testing.assert_allclose(got, np.clip(expected, -1, 1), atol=1e-4)


# --------------------------------------------------------------------------- item 10: eval's bitrate
def test_eval_reports_the_bits_a_vqc_stores(v2, v1):
    from vqcodec.evaluation.report import CodecSystem

    wav = varied(1.0, 10)[:-37]  # not whole tokens: the stored bits differ from the nominal rate
    for codec in (v2, v1):
        _, bps = CodecSystem(codec)(wav, SR)
        tf = codec.encode_utterance(wav, SR)
        assert bps == codes.describe(tf)["streams_bps"]
        assert bps > codec.bitrate  # the padded last byte and token, and the voice vector and gain


def test_models_by_id_loads_in_order_on_need_and_passes_over_missing_ones(shipped, tmp_path):
    from vqcodec.api import ModelsById

    _, mine = shipped
    models = ModelsById(str(tmp_path / "gone.pt"), mine)
    mine_id = load_model(mine).model_id
    assert models(mine_id).model_id == mine_id and models.name_of == {mine_id: mine}
    assert models.find("0123456789abcdef") is None
    with pytest.raises(VqcodecError, match=r"made by model 0123456789abcdef, which is none of the models tried "
                                           r"\(.*gone.pt \(not loaded: .*no such model.*\), .*mine.pt = "):
        models("0123456789ABCDEF")
