"""Entropy-coded .vqc payloads (issue 15): exact round trips with the prior's step-by-step tables,
the same bytes at 1 and 2 threads, a fuzzed payload reader that only ever raises FormatError, the
refusals (prior not available, another tokenizer, a prior giving other tables), and the CLI."""
from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqcodec import checkpoint, codes, entropy
from vqcodec.api import TokenPrior, coder_for_priors, load_model
from vqcodec.cli import cli
from vqcodec.codes import TokenFile
from vqcodec.config import PriorConfig, WaveNetConfig
from vqcodec.entropy import EntropyCoder
from vqcodec.errors import FormatError
from vqcodec.models.prior import Prior
from vqc_files import edited, recrc as _recrc, stream, v2_bytes

TOKENIZER = "0123456789abcdef"
PRIOR_ID = "00000000000000aa"


def tiny_prior(k: int = 16, speakers: int = 0, seed: int = 0) -> Prior:
    torch.manual_seed(seed)
    cfg = PriorConfig(wavenet=WaveNetConfig(layers=5, dilation_cycle=5, residual_channels=8, gate_channels=12,
                                            skip_channels=10, global_dim=4),
                      speaker_conditioned=bool(speakers))
    return Prior(cfg, k, max(speakers, 1)).eval()


def token_file(tokens, k: int = 16, speaker: str = "") -> TokenFile:
    tokens = np.asarray(tokens, dtype=np.int64)
    return TokenFile(tokens=tokens, sample_rate=16000, num_samples=len(tokens) * 64 + 5, hop=64,
                     codebook_size=k, model_id=TOKENIZER, speaker=speaker)


def coder(prior=None, **kw) -> EntropyCoder:
    prior = prior or tiny_prior()
    return EntropyCoder(prior.net, PRIOR_ID, tokenizer_id=TOKENIZER, **kw)


def round_trip(tf: TokenFile, c: EntropyCoder) -> bytes:
    data = codes.to_bytes(tf, coder=c)
    back = codes.from_bytes(data, coder_for=c)
    assert back == tf and back.prior_id == c.prior_id
    np.testing.assert_array_equal(back.tokens, tf.tokens)
    return data


# --------------------------------------------------------------------------- tables
def test_frequency_tables_sum_to_total_and_give_every_symbol_at_least_one():
    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.normal(0, 5, (50, 512)), np.zeros((1, 512)),
                             np.r_[1e4, np.zeros(511)][None]], 0).astype(np.float32)
    freq = entropy.frequencies(torch.from_numpy(logits))
    assert freq.dtype == np.int64 and freq.shape == (52, 512)
    assert (freq.sum(1) == entropy.TOTAL).all() and freq.min() >= 1
    assert (freq[51, 1:] == 1).all() and freq[51, 0] == entropy.TOTAL - 511  # all mass it can get
    assert freq[50].max() - freq[50].min() <= 512  # uniform logits: (nearly) uniform table
    assert (freq.argmax(1) == logits.argmax(1)).all()
    with pytest.raises(FormatError, match="non-finite"):
        entropy.frequencies(torch.tensor([[0.0, float("nan")]]))


def test_one_thread_restores_the_callers_setting():
    torch.set_num_threads(2)
    with entropy.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("n", [0, 1, 2, 3, 127, 128, 129, 299])
def test_round_trip_random_tokens_across_chunks_and_rounds(n):
    # chunk 2, batch 64: 299 tokens are 150 chunks in 3 rounds, the last chunk 1 token long
    rng = np.random.default_rng(n)
    tf = token_file(rng.integers(0, 16, n))
    data = round_trip(tf, coder(chunk=2, batch=64))
    assert codes.from_bytes(data, coder_for=coder(chunk=99, batch=1)) == tf  # the file's chunking counts


def test_a_layout_that_steps_too_few_chunks_together_is_not_written():
    """A reader's work is at most tokens / 64 + one chunk prior steps: chunks stepped 3 at a time
    would make it 21x that (the issue's files edited to chunk 1 / batch 1 took 4-45 s)."""
    tf = token_file(np.arange(200) % 16)
    with pytest.raises(FormatError, match="step at least 64 chunks together"):
        codes.to_bytes(tf, coder=coder(chunk=2, batch=3))
    round_trip(token_file(np.arange(30) % 16), coder(chunk=32, batch=1))  # one chunk: any batch


def test_round_trip_long_file_with_default_chunking():
    tf = token_file(np.random.default_rng(1).integers(0, 16, 5 * entropy.CHUNK + 7))
    round_trip(tf, coder())


@pytest.mark.parametrize("speaker", ["b", "unknown", ""])
def test_speaker_conditioned_prior_round_trip(speaker):
    prior = tiny_prior(speakers=3)
    tp = TokenPrior(prior, None, {"speakers": ["a", "b", "c"], "vqvae_model_id": TOKENIZER})
    c = EntropyCoder.from_prior(tp, chunk=32)
    tf = token_file(np.random.default_rng(2).integers(0, 16, 70), speaker=speaker)
    round_trip(tf, c)
    # the speaker is part of the model: another one gives other tables (other bytes)
    other = token_file(tf.tokens, speaker="c")
    assert codes.to_bytes(other, coder=c)[-200:] != codes.to_bytes(tf, coder=c)[-200:]


def test_a_confident_model_compresses_and_any_step_model_works():
    """The coder takes any object with the WaveNet's init_state / step / feed interface; a model
    sure that token t is (t-1)+1 mod K codes a counting stream in far under a bit per token."""
    class Counter:
        num_classes = 16

        def init_state(self, batch, local=None, global_ids=None):
            return _CounterState(torch.full((batch,), -1))

        def step(self, state):
            return torch.nn.functional.one_hot((state.prev + 1) % 16, 16).float() * 20

    tf = token_file(np.arange(3000) % 16)
    c = EntropyCoder(Counter(), PRIOR_ID)
    data = round_trip(tf, c)
    info = codes.describe(codes.from_bytes(data, coder_for=c))
    assert info["stored_bits_per_token"] < 0.1 and info["tokens_saving_vs_packed"] > 0.97
    assert info["content_coding"].startswith(f"entropy (prior {PRIOR_ID}")


class _CounterState:
    def __init__(self, prev):
        self.prev = prev

    def feed(self, x):
        self.prev = x


def test_identical_bytes_and_tokens_at_one_and_two_threads():
    tf = token_file(np.random.default_rng(3).integers(0, 16, 300))
    c = coder(chunk=64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codes.to_bytes(tf, coder=c)
        torch.set_num_threads(2)
        two = codes.to_bytes(tf, coder=c)
        assert one == two
        assert codes.from_bytes(one, coder_for=c) == tf  # decoded at two threads
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert codes.from_bytes(two, coder_for=c) == tf
    finally:  # the other tests run at the caller's thread count
        torch.set_num_threads(before)


def test_real_tokens_with_the_shipped_prior_are_smaller_and_exact():
    """Tokens of the shipped example with v2 and its prior: same tokens, fewer bits (the default
    ladder model's: test_pretrained.py)."""
    from vqcodec.api import load_prior

    root = Path(__file__).resolve().parent.parent
    codec = load_model("vqcodec-real-v2")
    tokens = codec.encode_file(root / "pretrained" / "examples" / "example.wav")
    tokens = tokens[:600]  # 2.4 s keeps the test quick
    tf = TokenFile(tokens, codec.sample_rate, len(tokens) * codec.hop, codec.hop, codec.codebook_size,
                   codec.model_id, speaker="us1")
    c = EntropyCoder.from_prior(load_prior("vqcodec-real-v2-prior"))
    data = round_trip(tf, c)
    info = codes.describe(codes.from_bytes(data, coder_for=c))
    assert info["stored_bits_per_token"] < 0.8 * codec.bits_per_token
    assert info["stored_bits_per_token"] < info["entropy_bits_per_token"]  # beats the unigram too


# --------------------------------------------------------------------------- refusals
def test_prior_not_available_or_other_tables_or_other_tokenizer():
    tf = token_file(np.random.default_rng(4).integers(0, 16, 120))
    data = codes.to_bytes(tf, coder=coder())
    with pytest.raises(FormatError, match=f"entropy-coded with prior {PRIOR_ID}, which is not available"):
        codes.from_bytes(data)
    with pytest.raises(FormatError, match="not available"):
        codes.from_bytes(data, coder_for=lambda pid: None)
    other_id = EntropyCoder(tiny_prior().net, "ffffffffffffffff")
    with pytest.raises(FormatError, match="not available"):
        codes.from_bytes(data, coder_for=other_id)
    # a prior that claims the same id but predicts otherwise (other weights, another machine's
    # float kernels): the token CRC says so instead of returning other tokens
    with pytest.raises(FormatError, match="token CRC mismatch|corrupt entropy"):
        codes.from_bytes(data, coder_for=coder(tiny_prior(seed=5)))
    with pytest.raises(FormatError, match="tokens of model"):
        codes.to_bytes(TokenFile(tf.tokens, 16000, 9000, 64, 16, "fedcba9876543210"), coder=coder())
    with pytest.raises(FormatError, match="codebook of 32 codes"):
        codes.to_bytes(token_file([1, 2, 3], k=32), coder=coder())


def test_coder_for_priors_names_what_it_tried(tmp_path):
    prior = tiny_prior()
    path = tmp_path / "p.pt"
    save_prior(path, prior, TOKENIZER)
    lookup = coder_for_priors(str(path))
    c = EntropyCoder.from_prior(_load_prior(path))
    assert lookup(c.prior_id).prior_id == c.prior_id
    with pytest.raises(FormatError, match=f"prior 1111111111111111, which is not available.*{c.prior_id}"):
        lookup("1111111111111111")


def test_prior_id_follows_the_weights():
    a, b = tiny_prior(seed=0), tiny_prior(seed=0)
    assert entropy.prior_id(a) == entropy.prior_id(b)
    with torch.no_grad():
        b.net.post2.bias[0] += 1e-6
    assert entropy.prior_id(a) != entropy.prior_id(b)


def test_header_lies_about_the_entropy_payload():
    c = coder(chunk=16)
    data = codes.to_bytes(token_file(np.arange(40) % 16), coder=c)
    with pytest.raises(FormatError, match="cannot fit"):  # far more tokens than the payload can hold
        codes.from_bytes(edited(data, content={"count": 2 ** 40}), coder_for=c)
    empty = codes.to_bytes(token_file([]), coder=c)
    with pytest.raises(FormatError, match="0 values cannot fit"):  # 4 payload bytes for no tokens
        codes.from_bytes(edited(empty, content={"data": b"\1\2\3\4"}), coder_for=c)
    for field in ({"chunk": 0}, {"batch": 0}, {"batch": codes.MAX_BATCH + 1}, {"chunk": codes.MAX_CHUNK + 1},
                  {"chunk": 1, "batch": 1}):
        with pytest.raises(FormatError, match="inconsistent header"):
            codes.from_bytes(edited(data, content=field), coder_for=c)
    v2 = v2_bytes(token_file(np.arange(40) % 16), coder=c)  # the same checks on version-2 files
    body = bytearray(v2[:-4])
    body[26:34] = struct.pack("<Q", 2 ** 40)
    with pytest.raises(FormatError, match="cannot fit"):
        codes.from_bytes(_recrc(bytes(body)), coder_for=c)
    body = bytearray(v2[:-4])
    body[55:57] = b"\0\0"  # chunk 0
    with pytest.raises(FormatError, match="inconsistent header"):
        codes.from_bytes(_recrc(bytes(body)), coder_for=c)


# --------------------------------------------------------------------------- fuzz
_FUZZ_CODER = coder(chunk=8, batch=64)
_FUZZ_FILES = [codes.to_bytes(token_file(t), coder=_FUZZ_CODER)
               for t in (np.arange(30) % 16, np.random.default_rng(6).integers(0, 16, 21), [3], [])]
_FUZZ_TF = {d: codes.from_bytes(d, coder_for=_FUZZ_CODER) for d in _FUZZ_FILES}


@st.composite
def corrupted(draw):
    """An entropy-coded file with payload bytes or header fields changed and the CRC made valid
    again, so the entropy reader itself sees the damage."""
    original = draw(st.sampled_from(_FUZZ_FILES))
    content = stream(original, "content")
    payload, fields = bytearray(content.data), {}
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "header"]))
        if op in ("flip", "set") and payload:
            i = draw(st.integers(0, len(payload) - 1))
            payload[i] = payload[i] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "cut" and payload:
            del payload[draw(st.integers(0, len(payload) - 1)):][:draw(st.integers(1, 8))]
        elif op == "insert":
            i = draw(st.integers(0, len(payload)))
            payload[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "header":  # the token count, chunk or batch
            fields[draw(st.sampled_from(["count", "chunk", "batch"]))] = draw(st.integers(0, 64))
    return original, edited(original, content=dict(fields, data=bytes(payload)))


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(corrupted())
def test_fuzz_entropy_payload_reader_only_raises_format_error(case):
    original, data = case
    try:
        tf = codes.from_bytes(data, coder_for=_FUZZ_CODER)
    except FormatError:
        return
    # what still parses decodes to exactly the tokens that were written (both CRCs hold)
    assert tf == _FUZZ_TF[original]


# --------------------------------------------------------------------------- CLI
SPEAKERS = ["us1", "us2"]


def save_prior(path: Path, prior: Prior, tokenizer: str, speakers=("us1",)) -> Path:
    from tiny import tiny_config

    cfg = tiny_config()
    cfg.prior = prior.cfg
    checkpoint.save(path, {"kind": "prior", "config": cfg.to_dict(),
                           "meta": {"speakers": list(speakers), "vqvae_model_id": tokenizer,
                                    "codebook_size": prior.codebook_size},
                           "model": prior.state_dict()})
    return path


def _load_prior(path):
    from vqcodec.api import load_prior

    return load_prior(path)


@pytest.fixture(scope="module")
def cli_models(tmp_path_factory):
    from test_codec import _save, _tiny_model

    root = tmp_path_factory.mktemp("entropy_models")
    model = _save(root / "k512.pt", *_tiny_model(512, 0))
    codec = load_model(model)
    prior = save_prior(root / "prior.pt", tiny_prior(k=512, speakers=2), codec.model_id, SPEAKERS)
    other = save_prior(root / "other.pt", tiny_prior(k=512, speakers=2, seed=9), codec.model_id, SPEAKERS)
    return {"model": model, "prior": str(prior), "other": str(other)}


def _encode_entropy(cli_models, tmp_path, seconds: float, seed: int):
    """x.wav (generated) -> e.vqc through `vqcodec encode --entropy`; returns (wav path, CLI output)."""
    from test_codec import _varied

    wav = tmp_path / "x.wav"
    sf.write(str(wav), _varied(seconds, seed), 16000, subtype="PCM_16")
    r = CliRunner().invoke(cli, ["encode", str(wav), "-o", str(tmp_path / "e.vqc"), "--entropy",
                                 "--prior", cli_models["prior"], "-m", cli_models["model"]])
    assert r.exit_code == 0, r.output
    return wav, r.output


def test_cli_encode_entropy_decode_info(cli_models, tmp_path):
    wav, output = _encode_entropy(cli_models, tmp_path, 0.6, 3)
    m, p = cli_models["model"], cli_models["prior"]
    run = CliRunner().invoke
    assert "entropy-coded" in output
    r = run(cli, ["encode", str(wav), "-o", str(tmp_path / "p.vqc"), "-m", m])
    assert r.exit_code == 0, r.output
    # one bitrate convention: encode prints what info measures, for plain and entropy-coded files
    for name, printed in (("e.vqc", output), ("p.vqc", r.output)):
        shown = run(cli, ["info", str(tmp_path / name), "--prior", p]).output
        values = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in shown.splitlines()[1:])}
        assert f"tokens {float(values['tokens_bps']):.0f} bit/s" in printed, (printed, shown)
        assert f"whole file {float(values['file_bps']):.0f} bit/s" in printed
        assert int(values["file_bytes"]) == (tmp_path / name).stat().st_size
    plain = codes.read(tmp_path / "p.vqc")
    coded = codes.read(tmp_path / "e.vqc", coder_for=coder_for_priors(p))
    assert coded == plain and coded.prior_id and not plain.prior_id
    r = run(cli, ["info", str(tmp_path / "e.vqc"), "--prior", p])
    assert r.exit_code == 0, r.output
    for line in ("content_coding: entropy (prior", "stored_bits_per_token:", "tokens_saving_vs_packed:",
                 "tokens_bps:", "streams_bps:", "file_bps:", "gain: 1.0", "voice_bits: 0"):
        assert line in r.output
    r = run(cli, ["decode", str(tmp_path / "e.vqc"), "-o", str(tmp_path / "e.wav"), "--prior", p, "-m", m])
    assert r.exit_code == 0, r.output
    r = run(cli, ["decode", str(tmp_path / "p.vqc"), "-o", str(tmp_path / "p.wav"), "-m", m])
    assert r.exit_code == 0, r.output
    a, b = sf.read(str(tmp_path / "e.wav"))[0], sf.read(str(tmp_path / "p.wav"))[0]
    np.testing.assert_array_equal(a, b)  # same tokens, same seed: the same audio


def test_cli_entropy_refusals_leave_no_output(cli_models, tmp_path):
    wav, _ = _encode_entropy(cli_models, tmp_path, 0.3, 4)
    m, p, other = cli_models["model"], cli_models["prior"], cli_models["other"]
    run = CliRunner().invoke
    # decoding with a prior that is not the file's: one clear line, no wav
    r = run(cli, ["decode", str(tmp_path / "e.vqc"), "-o", str(tmp_path / "e.wav"), "--prior", other, "-m", m])
    errors = [line for line in r.stderr.splitlines() if line.startswith("vqcodec: error:")]
    assert r.exit_code != 0 and "which is not available" in errors[0] and other in errors[0]
    assert not (tmp_path / "e.wav").exists()
    r = run(cli, ["info", str(tmp_path / "e.vqc"), "--prior", other])
    assert r.exit_code != 0 and "not available" in r.stderr
    # a prior of another tokenizer is refused before anything is written
    wrong = save_prior(tmp_path / "wrong.pt", tiny_prior(k=512, speakers=2), "f" * 16, SPEAKERS)
    r = run(cli, ["encode", str(wav), "-o", str(tmp_path / "w.vqc"), "--entropy", "--prior", str(wrong), "-m", m])
    assert r.exit_code != 0 and "codebooks differ" in r.stderr
    assert not (tmp_path / "w.vqc").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["e.vqc", "wrong.pt", "x.wav"]


def test_cli_corrupt_entropy_payload_one_line_and_no_output(cli_models, tmp_path):
    """Issue 15 item 5: an entropy payload damaged under a valid file CRC (so the range decoder
    itself reads garbage) is refused by decode and info with one error line; no wav is written."""
    _encode_entropy(cli_models, tmp_path, 0.5, 5)
    m, p = cli_models["model"], cli_models["prior"]
    run = CliRunner().invoke
    data = (tmp_path / "e.vqc").read_bytes()
    tf = codes.from_bytes(data, coder_for=coder_for_priors(p))
    payload = bytearray(stream(data, "content").data)
    assert tf.prior_id and len(payload) >= 8
    for i in range(0, len(payload), 3):  # damage a third of the payload's bytes
        payload[i] ^= 0x5A
    (tmp_path / "bad.vqc").write_bytes(edited(data, content={"data": bytes(payload)}))
    r = run(cli, ["decode", str(tmp_path / "bad.vqc"), "-o", str(tmp_path / "bad.wav"), "--prior", p, "-m", m])
    errors = [line for line in r.stderr.splitlines() if line.startswith("vqcodec: error:")]
    assert r.exit_code == 1 and errors, r.output
    assert "bad.vqc" in errors[0] and ("token CRC mismatch" in errors[0] or "corrupt entropy" in errors[0]), errors
    assert "Traceback" not in r.output and not (tmp_path / "bad.wav").exists()
    r = run(cli, ["info", str(tmp_path / "bad.vqc"), "--prior", p])
    errors = [line for line in r.stderr.splitlines() if line.startswith("vqcodec: error:")]
    assert r.exit_code == 1 and len(errors) == 1 and "Traceback" not in r.output, r.output
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bad.vqc", "e.vqc", "x.wav"]


def test_cli_crafted_262_kb_file_one_line_error(cli_models, tmp_path):
    """Issue 21 item 1: a 262 KB random payload with the token count at the format's bound and a
    valid CRC made `vqcodec info` allocate 44 GiB and die with a MemoryError traceback."""
    _encode_entropy(cli_models, tmp_path, 0.5, 6)
    data = (tmp_path / "e.vqc").read_bytes()
    payload = np.random.default_rng(7).integers(0, 2 ** 32, 65536, dtype=np.uint32).tobytes()
    count = codes.MAX_VALUES_PER_BYTE * (len(payload) + 8)
    (tmp_path / "crafted.vqc").write_bytes(edited(data, content={"count": count, "data": payload}))
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "crafted.vqc"), "--prior", cli_models["prior"]])
    errors = [line for line in r.stderr.splitlines() if line.startswith("vqcodec: error:")]
    assert r.exit_code == 1 and len(errors) == 1 and "Traceback" not in r.output, r.output
    assert "crafted.vqc" in errors[0] and "corrupt entropy-coded payload" in errors[0]


# --------------------------------------------------------------------------- a ladder step's file
@pytest.mark.parametrize("books", [2, 4])
def test_a_file_of_several_codebooks_codes_the_first_and_packs_the_rest(books):
    """Entropy-coded, a ladder step keeps codebook 1 in the content stream (the prior's) and the
    others bit-packed in the residual stream: lossless, and smaller than packing all of them when
    codebook 1 is predictable."""
    rng = np.random.default_rng(books)
    first = np.repeat(rng.integers(0, 3, 40), 5)                 # 200 frames a prior finds easy
    tokens = np.column_stack([first] + [rng.integers(0, 16, 200) for _ in range(books - 1)])
    tf = token_file(tokens)
    data = round_trip(tf, coder(chunk=4, batch=64))
    assert codes.from_bytes(data, coder_for=coder(chunk=4, batch=64)).tokens.shape == (200, books)
    info = codes.describe(codes.from_bytes(data, coder_for=coder(chunk=4, batch=64)), data)
    assert info["codebooks"] == books and info["content_coding"].startswith("entropy")
    residual_bytes = -(-200 * (books - 1) * 4 // 8)
    assert info["content_bytes"] >= residual_bytes                # the residual codebooks are counted
    plain = codes.to_bytes(tf)
    assert codes.from_bytes(plain).tokens.shape == (200, books)


def test_a_residual_stream_is_refused_where_it_does_not_belong():
    """Beside a bit-packed content stream, with a count that is not frames x R, or with R = 0."""
    tf = token_file(np.column_stack([np.arange(64) % 16, (np.arange(64) * 3) % 16]))
    data = codes.to_bytes(tf, coder=coder(chunk=4, batch=64))
    head, streams = codes._read_v4(data, "f")
    by = {s.kind: s for s in streams}
    res = by[codes.RESIDUAL]
    for change in ({"count": res.count - 1}, {"params": bytes([0])}, {"params": bytes([2])}, {"k": 8}):
        bad = [replace(s, **change) if s.kind == codes.RESIDUAL else s for s in streams]
        with pytest.raises(FormatError, match="residual stream|inconsistent|truncated|unexpected"):
            codes.from_bytes(codes._assemble(head, bad), coder_for=coder(chunk=4, batch=64))
    plain = [replace(s, coding=codes.PLAIN, prior=codes._NO_PRIOR, chunk=0, batch=0, pad=0,
                                 data=codes.pack_bits(np.arange(64) % 16, 4))
             if s.kind == codes.CONTENT else s for s in streams]
    with pytest.raises(FormatError, match="residual stream"):
        codes.from_bytes(codes._assemble(head, plain))
