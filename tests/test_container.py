"""The .vqc container (issue 21 items 1, 15, 17): typed streams (several codebooks, unknown or
misordered streams refused), files written by earlier versions read the same, crafted files refused
with work and memory bounded by what their bytes can hold, and the format importing neither the API
nor the coder."""
from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqcodec import codes, entropy
from vqcodec.codes import TokenFile
from vqcodec.config import PriorConfig, WaveNetConfig
from vqcodec.entropy import EntropyCoder
from vqcodec.errors import FormatError
from vqcodec.models.prior import Prior
from vqc_files import edited, recrc, stream

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vqc"
MID = "0123456789abcdef"
PRIOR_ID = "00000000000000aa"


def fixture_prior() -> Prior:
    """The tiny prior the entropy-coded fixtures were written with (weights from its .npz)."""
    cfg = PriorConfig(wavenet=WaveNetConfig(layers=5, dilation_cycle=5, residual_channels=8, gate_channels=12,
                                            skip_channels=10, global_dim=4), speaker_conditioned=False)
    prior = Prior(cfg, 16, 1).eval()
    weights = np.load(FIXTURES / "tiny_prior_k16.npz")
    prior.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files})
    return prior


class CountingNet:
    """A prior's net that counts the prior steps (and the rows stepped) a decode takes."""

    def __init__(self, net):
        self.net, self.num_classes, self.steps, self.rows = net, net.num_classes, 0, 0

    def parameters(self):
        return self.net.parameters()

    def init_state(self, batch, local=None, global_ids=None):
        return self.net.init_state(batch, local, global_ids)

    def step(self, state):
        logits = self.net.step(state)
        self.steps += 1
        self.rows += logits.shape[0]
        return logits


def fixture_coder(**kw) -> EntropyCoder:
    return EntropyCoder(CountingNet(fixture_prior().net), PRIOR_ID, tokenizer_id=MID, **kw)


# --------------------------------------------------------------------------- earlier versions
@pytest.mark.parametrize("name", ["v1.vqc", "v2_plain.vqc", "v3_pitch.vqc", "v2_entropy.vqc", "v3_entropy.vqc"])
def test_files_of_versions_1_to_3_read_the_same(name):
    expected = json.loads((FIXTURES / "expected.json").read_text())[name]
    data = (FIXTURES / name).read_bytes()
    tf = codes.from_bytes(data, coder_for=fixture_coder())
    for key, value in expected.items():
        if key == "describe":
            continue
        got = getattr(tf, key)
        assert (got.tolist() if isinstance(got, np.ndarray) else got) == value, key
    info = codes.describe(tf)
    assert info["file_bytes"] == len(data) == expected["describe"]["file_bytes"]
    assert info["content_bytes"] == expected["describe"]["payload_bytes"]
    # written again: a version-4 file holding the same streams, entropy-coded or not
    coder = fixture_coder(chunk=8) if tf.prior_id else None
    again = codes.from_bytes(codes.to_bytes(tf, coder=coder), coder_for=coder)
    assert again == tf and again.version == 4 and again.prior_id == tf.prior_id


# --------------------------------------------------------------------------- streams
def test_several_codebooks_round_trip_and_checks():
    tokens = np.random.default_rng(0).integers(0, 1000, (37, 3))
    tf = TokenFile(tokens, 16000, 37 * 64, 64, 1000, MID, "us1", gain=0.5, voice=np.arange(4, dtype=np.uint8))
    assert tf.codebooks == 3 and tf.num_tokens == 37 and tf.bitrate == 10 * 3 * 250
    data = codes.to_bytes(tf)
    content = stream(data, "content")
    assert content.params == b"\x03" and content.count == 111 and len(content.data) == (111 * 10 + 7) // 8
    back = codes.from_bytes(data)
    assert back == tf and back.tokens.shape == (37, 3)
    np.testing.assert_array_equal(back.tokens, tokens)
    assert codes.describe(back)["codebooks"] == 3
    one = TokenFile(tokens[:, :1], 16000, 37 * 64, 64, 1000, MID)  # one codebook is 1-D
    assert one.tokens.shape == (37,) and codes.from_bytes(codes.to_bytes(one)) == one
    with pytest.raises(FormatError, match="inconsistent header"):  # 111 values are not frames of 2
        codes.from_bytes(edited(data, content={"params": b"\x02"}))
    # entropy coding codes codebook 1 with the coder's prior (test_entropy.py), which must fit the codebook
    with pytest.raises(FormatError, match="codebook of 1000 codes, but the prior"):
        codes.to_bytes(tf, coder=fixture_coder())


def test_unknown_misordered_missing_and_unsupported_streams_refused():
    tf = TokenFile(np.arange(8) % 16, 16000, 512, 64, 16, MID, voice=np.array([3, 4], dtype=np.uint8),
                   pitch=np.array([1, 2]), pitch_levels=5, pitch_every=4, f0_median=100.0)
    data = codes.to_bytes(tf)
    _, head, streams = codes._parse(data, "x")
    assert [s.kind for s in streams] == [codes.CONTENT, codes.PITCH, codes.VOICE, codes.GAIN]
    with pytest.raises(FormatError, match="unknown stream type 9 .upgrade vqcodec"):
        codes.from_bytes(edited(data, voice={"kind": 9}))
    for order in ([0, 2, 1, 3], [0, 1, 2], [1, 2, 3], [0, 1, 1, 2, 3]):  # misordered, no gain, no content, twice
        with pytest.raises(FormatError, match="inconsistent header"):
            codes.from_bytes(codes._assemble(head, [streams[i] for i in order]))
    with pytest.raises(FormatError, match="entropy-coded pitch stream: not supported"):
        codes.from_bytes(edited(data, pitch={"coding": codes.ENTROPY, "chunk": 1, "batch": 1, "crc": 0}))
    with pytest.raises(FormatError, match="inconsistent header"):  # a voice stream of no values
        codes.from_bytes(edited(data, voice={"count": 0, "data": b""}))
    with pytest.raises(FormatError, match="inconsistent header"):  # pitch values for other frames
        codes.from_bytes(edited(data, pitch={"params": bytes([2]) + codes._F32.pack(100.0)}))
    with pytest.raises(FormatError, match="inconsistent header"):
        codes.from_bytes(edited(data, gain={"params": codes._F32.pack(float("nan"))}))
    body = data[:-4]
    at = 5 + len(codes._varint(tf.sample_rate)) + len(codes._varint(tf.num_samples))
    assert body[at] == 64  # the hop, 0x40; 0xc0 0x00 is the same value, not minimally written
    with pytest.raises(FormatError, match="malformed varint"):
        codes.from_bytes(recrc(body[:at] + b"\xc0\x00" + body[at + 1:]))


def test_the_format_imports_neither_the_api_nor_the_coder():
    """Issue 21 item 15: codes -> entropy -> api -> codes was a circle. The format takes a coder given
    to it; the coder takes a loaded prior; only the API loads models."""
    code = ("import json, sys, vqcodec.codes; a = sorted(m for m in sys.modules if m.startswith(('vqcodec', "
            "'torch'))); import vqcodec.entropy; print(json.dumps([a, 'vqcodec.api' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [["vqcodec", "vqcodec.codes", "vqcodec.errors", "vqcodec.files"], False]


# --------------------------------------------------------------------------- crafted files
def _entropy_file(n: int = 60, **coder_kw) -> tuple[TokenFile, bytes]:
    tf = TokenFile(np.random.default_rng(n).integers(0, 16, n), 16000, n * 64, 64, 16, MID)
    return tf, codes.to_bytes(tf, coder=fixture_coder(**coder_kw))


def _bound(payload_bytes: int) -> int:
    """The most tokens the format lets an entropy-coded payload of this size claim."""
    return codes.MAX_VALUES_PER_BYTE * (payload_bytes + 8)


def test_a_large_crafted_entropy_file_is_refused_without_allocating_for_its_claim():
    """The issue's 262 KB file: a random payload, the token count at the reader's own bound, CRC
    valid. The reader allocated for the claimed count (44 GiB) before decoding; now nothing is
    sized by the claim and decoding stops when the payload's bits run out (or the coder sees garbage)."""
    _, data = _entropy_file()
    payload = np.random.default_rng(1).integers(0, 2 ** 32, 65536, dtype=np.uint32).tobytes()  # 262 KB
    crafted = edited(data, content={"count": _bound(len(payload)), "data": payload})
    with pytest.raises(FormatError, match="cannot fit"):  # one token more than the bound
        codes.from_bytes(edited(data, content={"count": _bound(len(payload)) + 1, "data": payload}))
    coder = fixture_coder()
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="corrupt entropy-coded payload"):
            codes.from_bytes(crafted, coder_for=coder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2 ** 20, peak
    # no more tokens decoded than 262 KB of range coder can carry at the tiny prior's rates
    assert coder.net.rows <= 8 * len(payload) + entropy.SLACK_BITS


@pytest.mark.parametrize("chunk,batch,count", [(1, 1, None), (1, 256, None), (256, 1, None), (256, 1, 256),
                                               (256, 256, None), (8, 64, None)])
def test_a_small_crafted_entropy_file_costs_what_its_bytes_can_hold(chunk, batch, count):
    """The issue's 733-byte files: chunk / batch edited, a large count; they took 4-45 s. Work is
    prior steps: at most count / 64 + one chunk (<= 256), and the count is at most 128 per byte."""
    _, data = _entropy_file(600)
    payload = stream(data, "content").data
    count = count or _bound(len(payload))
    crafted = edited(data, content={"count": count, "chunk": chunk, "batch": batch})
    coder = fixture_coder()
    with pytest.raises(FormatError, match="corrupt entropy-coded payload|prior steps"):
        codes.from_bytes(crafted, coder_for=coder)
    assert coder.net.steps <= _bound(len(crafted)) // codes.MIN_PARALLEL + codes.MAX_CHUNK
    if batch == 1 and count > chunk:  # sequential chunks: refused before a single step
        assert coder.net.steps == 0


def test_a_stream_more_compressible_than_the_floor_is_padded_to_it():
    """A prior sure of every token codes 3000 tokens in a word or two; the writer pads the payload
    with zero words to the floor (3000 / 128 - 8 bytes), the reader takes exactly that padding."""
    tf = TokenFile(np.zeros(3000, dtype=np.int64), 16000, 3000 * 64, 64, 16, MID)
    c = EntropyCoder(_SureNet(), PRIOR_ID)
    data = codes.to_bytes(tf, coder=c)
    content = stream(data, "content")
    assert content.pad >= 1 and len(content.data) == 16 == codes._floor_bytes(3000)  # 3000 / 128 - 8 -> 16
    assert codes.from_bytes(data, coder_for=c) == tf
    for bad in ({"data": content.data + bytes(4), "pad": content.pad + 1}, {"pad": 5}):  # past the floor
        with pytest.raises(FormatError, match="padding words"):
            codes.from_bytes(edited(data, content=bad), coder_for=c)
    with pytest.raises(FormatError, match="non-zero padding"):
        codes.from_bytes(edited(data, content={"data": content.data[:-1] + b"\1"}), coder_for=c)


class _SureNet:
    """A model certain that every token is 0 (any batch)."""
    num_classes = 16

    def init_state(self, batch, local=None, global_ids=None):
        return _SureState(batch)

    def step(self, state):
        return torch.nn.functional.one_hot(torch.zeros(state.batch, dtype=torch.long), 16).float() * 30


class _SureState:
    def __init__(self, batch):
        self.batch = batch

    def feed(self, x):
        pass


def test_a_crafted_bit_packed_count_is_refused_before_unpacking(monkeypatch):
    data = codes.to_bytes(TokenFile(np.arange(100) % 512, 16000, 6400, 64, 512, MID))
    monkeypatch.setattr(codes, "unpack_bits", lambda *a: pytest.fail("unpacked a stream its bytes cannot hold"))
    for count in (101, 2 ** 40, 2 ** 64 - 1):
        with pytest.raises(FormatError, match="inconsistent header"):
            codes.from_bytes(edited(data, content={"count": count}))


_FUZZ = [_entropy_file(40, chunk=8)[1], _entropy_file(5, chunk=8)[1], _entropy_file(1100, chunk=8)[1],
         codes.to_bytes(TokenFile(np.arange(30) % 16, 16000, 1930, 64, 16, MID, "x", gain=0.25,
                                  voice=np.array([1, 2], dtype=np.uint8), pitch=np.arange(8) % 5,
                                  pitch_levels=5, pitch_every=4, f0_median=110.0))]
_FUZZ_CODER = fixture_coder(chunk=8)
_FUZZ_TF = [codes.from_bytes(d, coder_for=_FUZZ_CODER) for d in _FUZZ]
_BIG = st.one_of(st.integers(0, 70), st.integers(0, 2 ** 64 - 1), st.sampled_from([2 ** 32, 2 ** 16, 255, 256]))


@st.composite
def header_edits(draw):
    """A version-4 file with header and stream fields set to small, large or boundary values and its
    CRC recomputed: what a hostile file looks like past the CRC check."""
    i = draw(st.integers(0, len(_FUZZ) - 1))
    head = {}
    for key in draw(st.sets(st.sampled_from(["sample_rate", "num_samples", "hop"]), max_size=2)):
        head[key] = draw(_BIG)
    fields = {}
    names = [codes.STREAM_NAMES[s.kind] for s in codes._parse(_FUZZ[i], "x")[2]]
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        key = draw(st.sampled_from(["kind", "coding", "k", "count", "params", "chunk", "batch", "data"]))
        if key in ("kind", "coding"):
            value = draw(st.integers(0, 5))
        elif key == "params":
            value = draw(st.binary(max_size=6))
        elif key == "data":
            value = draw(st.binary(max_size=40))
        else:
            value = draw(_BIG)
        fields.setdefault(name, {})[key] = value
    return i, edited(_FUZZ[i], head=head, **fields)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(header_edits())
def test_fuzz_crc_valid_header_edits_give_format_errors_and_bounded_work(case):
    i, data = case
    before = _FUZZ_CODER.net.steps
    try:
        tf = codes.from_bytes(data, coder_for=_FUZZ_CODER)
    except FormatError:
        tf = None
    # no more prior steps than the tokens the file's bytes may hold take (tokens / 64 + one chunk)
    assert _FUZZ_CODER.net.steps - before <= _bound(len(data)) // codes.MIN_PARALLEL + codes.MAX_CHUNK
    if tf is not None and tf.prior_id:  # entropy-coded: the values' CRC holds, so the same tokens
        np.testing.assert_array_equal(tf.tokens, _FUZZ_TF[i].tokens)
    elif tf is not None:  # bit-packed: what still reads is self-consistent, it writes back the same bytes
        assert codes.to_bytes(tf) == data


@st.composite
def token_files(draw):
    """Any TokenFile the format holds: 1-3 codebooks, any K, with or without pitch and voice."""
    k = draw(st.sampled_from([2, 3, 16, 512, 1000, 2 ** 20]))
    frames, codebooks = draw(st.integers(0, 40)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    tokens = rng.integers(0, k, (frames, codebooks))
    extra = {}
    if draw(st.booleans()):
        levels, every = draw(st.integers(3, 255)), draw(st.integers(1, 9))
        extra = dict(pitch=rng.integers(0, levels, -(-frames // every)), pitch_levels=levels, pitch_every=every,
                     f0_median=draw(st.floats(0, 1000, width=32)))
    voice = rng.integers(0, 256, draw(st.integers(0, 40))).astype(np.uint8)
    return TokenFile(tokens, draw(st.integers(1, 2 ** 32 - 1)), draw(st.integers(0, 2 ** 64 - 1)),
                     draw(st.integers(1, 2 ** 32 - 1)), k, MID, draw(st.text(max_size=20)),
                     gain=draw(st.floats(0, 1e6, width=32)), voice=voice, **extra)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(token_files())
def test_round_trip_any_streams(tf):
    data = codes.to_bytes(tf)
    back = codes.from_bytes(data)
    assert back == tf and back.codebooks == tf.codebooks and back.version == codes.VERSION
    info = codes.describe(back)
    assert info["file_bytes"] == len(data) and info["codebooks"] == tf.codebooks
