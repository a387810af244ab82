"""The .vqc token file: lossless round trips, exact bit packing, the version-4 container of typed
streams, versions 1-3 still read, and clear FormatErrors. Entropy-coded payloads: tests/test_entropy.py;
the container's own tests (several codebooks, legacy fixtures, crafted files): tests/test_container.py."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vqcodec import codes
from vqcodec.codes import TokenFile
from vqcodec.errors import FormatError
from vqc_files import edited, recrc as _recrc, stream, v1_bytes, v2_bytes

MID = "0123456789abcdef"


def make(k=512, n=100, speaker="us1", seed=0, hop=64, sr=16000):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, k, size=n)
    if n:
        tokens[0] = k - 1  # make sure the top value survives
    return TokenFile(tokens=tokens, sample_rate=sr, num_samples=n * hop + 17, hop=hop,
                     codebook_size=k, model_id=MID, speaker=speaker)


@pytest.mark.parametrize("k", [2, 3, 256, 512, 1000, 1024, 65536])
@pytest.mark.parametrize("n", [0, 1, 7, 251, 1000])
def test_round_trip_lossless(k, n):
    tf = make(k, n, seed=k + n)
    data = codes.to_bytes(tf)
    back = codes.from_bytes(data, expect_model_id=MID)
    assert back == tf
    assert back.tokens.dtype == np.int64
    np.testing.assert_array_equal(back.tokens, tf.tokens)
    assert (back.sample_rate, back.num_samples, back.hop, back.codebook_size, back.model_id,
            back.speaker) == (16000, n * 64 + 17, 64, k, MID, "us1")


@pytest.mark.parametrize("k,bits", [(2, 1), (3, 2), (4, 2), (256, 8), (257, 9), (512, 9),
                                    (1000, 10), (1024, 10), (1025, 11)])
def test_bits_per_token_and_exact_size(k, bits):
    assert codes.bits_per_token(k) == bits
    empty = len(codes.to_bytes(make(k, 0, speaker="")))
    assert empty <= 42  # magic, version, header, content and gain streams, CRC
    for n in (0, 1, 9, 100):
        tf = make(k, n, speaker="")
        data = codes.to_bytes(tf)
        assert len(stream(data, "content").data) == (n * bits + 7) // 8
        assert len(data) - (n * bits + 7) // 8 - empty in (0, 1, 2)  # the count and length varints grow
        assert tf.bits_per_token == bits


def test_bitrate_and_duration():
    tf = make(512, 250, hop=64, sr=16000)
    assert tf.bitrate == pytest.approx(9 * 250)  # 2.25 kbps nominal
    assert tf.duration_s == pytest.approx((250 * 64 + 17) / 16000)
    info = codes.describe(tf)
    # what a file stores per second of audio: 282 bytes of tokens, and the whole file
    assert info["tokens_bps"] == pytest.approx(282 * 8 / tf.duration_s, abs=1e-3)
    assert info["file_bps"] == pytest.approx(len(codes.to_bytes(tf)) * 8 / tf.duration_s, abs=1e-3)
    assert info["bits_per_token"] == 9 and info["num_tokens"] == 250
    assert info["file_bytes"] == len(codes.to_bytes(tf))
    assert info["model_id"] == MID and info["speaker"] == "us1"
    assert 0 < info["codebook_usage"] <= 1
    assert codes.rate_line(info) == f"tokens {info['tokens_bps']:.0f} bit/s, whole file {info['file_bps']:.0f} bit/s"
    entropy = dict(info, content_coding="entropy (prior 00000000000000aa, chunks of 128 tokens)")
    assert codes.rate_line(entropy).startswith(f"tokens {info['tokens_bps']:.0f} bit/s entropy-coded, whole file")


def test_unicode_speaker_and_empty_speaker():
    for spk in ["", "p225", "Zoë-ünïcode"]:
        tf = make(512, 5, speaker=spk)
        assert codes.from_bytes(codes.to_bytes(tf)).speaker == spk


def test_pack_is_msb_first():
    assert codes.pack_bits(np.array([1, 0, 1, 1]), 2) == bytes([0b01000101])
    assert codes.pack_bits(np.array([511]), 9) == bytes([0xFF, 0x80])


def test_write_read_file(tmp_path):
    tf = make(512, 33)
    path = codes.write(tmp_path / "a.vqc", tf)
    assert codes.read(path, expect_model_id=MID.upper()) == tf
    with pytest.raises(Exception, match="exists"):
        codes.write(path, tf, force=False)
    assert [p.name for p in tmp_path.iterdir()] == ["a.vqc"]  # no temporary left behind


def test_read_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such token file"):
        codes.read(tmp_path / "nope.vqc")
    with pytest.raises(FormatError, match="is a directory"):
        codes.read(tmp_path)


def test_truncated():
    data = codes.to_bytes(make(512, 100))
    for cut in (1, 3, 5, 20, 44, len(data) - 5, len(data) - 1):
        with pytest.raises(FormatError, match="truncated"):
            codes.from_bytes(data[:cut])


def test_empty_and_trailing():
    with pytest.raises(FormatError, match="bad magic"):
        codes.from_bytes(b"")
    data = codes.to_bytes(make(512, 10))
    with pytest.raises(FormatError, match="trailing bytes"):
        codes.from_bytes(data + b"\0")


def test_corrupt_payload_and_crc():
    data = bytearray(codes.to_bytes(make(512, 100)))
    data[80] ^= 0x10
    with pytest.raises(FormatError, match="CRC mismatch"):
        codes.from_bytes(bytes(data))
    data = bytearray(codes.to_bytes(make(512, 100)))
    data[-1] ^= 0xFF
    with pytest.raises(FormatError, match="CRC mismatch"):
        codes.from_bytes(bytes(data))


def test_wrong_magic():
    data = codes.to_bytes(make(512, 10))
    with pytest.raises(FormatError, match="not a vqcodec token file"):
        codes.from_bytes(b"RIFF" + data[4:])
    with pytest.raises(FormatError, match="not a vqcodec token file"):
        codes.from_bytes(b"RIFF\x00\x00\x00")


def test_wrong_version():
    data = bytearray(codes.to_bytes(make(512, 10)))
    data[4] = 5
    with pytest.raises(FormatError, match="unsupported format version 5.*upgrade"):
        codes.from_bytes(bytes(data))
    data[4] = 0
    with pytest.raises(FormatError, match="unsupported format version 0"):
        codes.from_bytes(bytes(data))


def test_wrong_model_id():
    data = codes.to_bytes(make(512, 10))
    with pytest.raises(FormatError, match="made by model 0123456789abcdef.*ffffffffffffffff"):
        codes.from_bytes(data, expect_model_id="ffffffffffffffff")


def test_inconsistent_header_with_valid_crc():
    data = codes.to_bytes(make(512, 8, speaker=""))
    with pytest.raises(FormatError, match="inconsistent header"):  # 9 values in the bytes of 8
        codes.from_bytes(edited(data, content={"count": 9}))
    # K lowered below the largest token: caught as out-of-codebook
    with pytest.raises(FormatError, match="outside the codebook"):
        codes.from_bytes(edited(data, content={"k": 257}))
    with pytest.raises(FormatError, match="inconsistent header"):  # K=1025 takes 11 bits, not 9
        codes.from_bytes(edited(data, content={"k": 1025}))
    v2 = bytearray(v2_bytes(make(512, 8, speaker=""))[:-4])
    v2[25] = 10  # bits per token 10 for K=512
    with pytest.raises(FormatError, match="inconsistent header"):
        codes.from_bytes(_recrc(bytes(v2)))


def test_bad_values_refused_on_write():
    with pytest.raises(FormatError, match="token values"):
        codes.to_bytes(TokenFile(np.array([0, 512]), 16000, 128, 64, 512, MID))
    with pytest.raises(FormatError, match="token values"):
        codes.to_bytes(TokenFile(np.array([-1]), 16000, 64, 64, 512, MID))
    with pytest.raises(FormatError, match="model id"):
        codes.to_bytes(TokenFile(np.array([1]), 16000, 64, 64, 512, "xyz"))
    with pytest.raises(FormatError, match="codebook size"):
        codes.to_bytes(TokenFile(np.array([0]), 16000, 64, 64, 1, MID))
    with pytest.raises(FormatError, match="1-D"):
        TokenFile(np.zeros((2, 2, 2), dtype=int), 16000, 64, 64, 512, MID)


@pytest.mark.parametrize("k,n", [(512, 0), (512, 1), (512, 251), (2, 9), (1000, 33)])
def test_version_1_files_still_read(k, n):
    tf = make(k, n, speaker="p225", seed=n)
    data = v1_bytes(tf)
    back = codes.from_bytes(data, expect_model_id=MID)
    assert back == tf and back.version == 1
    assert back.gain == 1.0 and back.voice.size == 0 and back.prior_id == ""
    info = codes.describe(back)
    assert info["format_version"] == 1 and info["file_bytes"] == len(data)
    assert info["streams_bps"] == info["tokens_bps"]  # no side information in version 1
    # written again, it becomes a version-4 file with the same content
    again = codes.from_bytes(codes.to_bytes(back))
    assert again == tf and again.version == 4
    # version-1 damage is still caught
    with pytest.raises(FormatError, match="CRC mismatch"):
        codes.from_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(FormatError, match="truncated"):
        codes.from_bytes(data[:-3])


def test_version_2_fields_round_trip():
    tf = make(512, 50)
    tf.gain, tf.voice = 3.3, np.arange(0, 256, 2, dtype=np.uint8)  # 128 dims, 1024 bits
    tf = TokenFile(**{k: getattr(tf, k) for k in ("tokens", "sample_rate", "num_samples", "hop",
                                                   "codebook_size", "model_id", "speaker", "gain", "voice")})
    assert tf.gain == float(np.float32(3.3))  # float32, as stored: the round trip compares equal
    back = codes.from_bytes(codes.to_bytes(tf))
    assert back == tf and back.gain == tf.gain
    np.testing.assert_array_equal(back.voice, np.arange(0, 256, 2))
    assert back.voice.dtype == np.uint8
    assert back != TokenFile(tf.tokens, 16000, tf.num_samples, 64, 512, MID, "us1", gain=1.0, voice=tf.voice)
    assert back != TokenFile(tf.tokens, 16000, tf.num_samples, 64, 512, MID, "us1", gain=tf.gain)
    # defaults: existing callers that know nothing of gain and voice
    plain = codes.from_bytes(codes.to_bytes(make(512, 5)))
    assert plain.gain == 1.0 and plain.voice.shape == (0,) and plain.version == 4
    # the side information in the bitrate: 32 bits of gain + 1024 of voice over the file's duration
    info = codes.describe(back)
    assert info["voice_bits"] == 1024 and info["gain"] == tf.gain
    assert info["file_bytes"] == len(codes.to_bytes(tf)) and info["content_bytes"] == 57  # 450 bits
    assert info["streams_bps"] == pytest.approx(info["tokens_bps"] + 1056 / tf.duration_s, abs=1e-3)
    assert info["content_coding"] == "bit-packed" and info["tokens_saving_vs_packed"] == 0
    assert info["stored_bits_per_token"] == pytest.approx(57 * 8 / 50)
    assert info["tokens_bps"] == pytest.approx(57 * 8 / tf.duration_s, abs=1e-3)


def test_bad_version_2_values_refused():
    for gain in (float("nan"), float("inf"), -1.0, "loud"):
        with pytest.raises(FormatError, match="gain"):
            TokenFile(np.array([1]), 16000, 64, 64, 512, MID, gain=gain)
    with pytest.raises(FormatError, match="voice values"):
        TokenFile(np.array([1]), 16000, 64, 64, 512, MID, voice=np.array([0, 256]))
    with pytest.raises(FormatError, match="voice must be"):
        TokenFile(np.array([1]), 16000, 64, 64, 512, MID, voice=np.array([0.5]))
    with pytest.raises(FormatError, match="longer than 255"):
        TokenFile(np.array([1]), 16000, 64, 64, 512, MID, voice=np.zeros(256, dtype=np.uint8))


def test_token_crc_catches_a_payload_changed_under_a_valid_crc():
    data = v2_bytes(make(512, 16, speaker=""))
    body = bytearray(data[:-4])
    body[69] ^= 0x80  # first payload byte: another (valid) first token
    with pytest.raises(FormatError, match="token CRC mismatch"):
        codes.from_bytes(_recrc(bytes(body)))


def test_plain_file_with_entropy_fields_or_unknown_coding_refused():
    data = v2_bytes(make(512, 16, speaker=""))
    body = bytearray(data[:-4])
    body[47] = 1  # a prior id on a bit-packed payload
    with pytest.raises(FormatError, match="inconsistent header"):
        codes.from_bytes(_recrc(bytes(body)))
    body = bytearray(data[:-4])
    body[46] = 7
    with pytest.raises(FormatError, match="unknown payload coding 7"):
        codes.from_bytes(_recrc(bytes(body)))
    data = codes.to_bytes(make(512, 16, speaker=""))
    with pytest.raises(FormatError, match="unknown payload coding 7 of the content stream"):
        codes.from_bytes(edited(data, content={"coding": 7}))


_VALID = [codes.to_bytes(make(k, n, speaker=s, seed=i))
          for i, (k, n, s) in enumerate([(512, 40, "us1"), (2, 9, ""), (1000, 3, "p225"), (1024, 0, "")])]
_SIDE = TokenFile(np.arange(30) % 7, 16000, 1930, 64, 8, MID, "x", gain=0.25,
                  voice=np.array([1, 2, 250], dtype=np.uint8))
_PITCHED = TokenFile(np.arange(30) % 16, 16000, 1930, 64, 16, MID, "", voice=np.array([7], dtype=np.uint8),
                     pitch=np.arange(8) % 5, pitch_levels=5, pitch_every=4, f0_median=110.0)
_VALID += [v1_bytes(make(512, 20, speaker="us2")), codes.to_bytes(_SIDE), codes.to_bytes(_PITCHED),
           codes.to_bytes(TokenFile(np.arange(24).reshape(8, 3) % 5, 16000, 512, 64, 5, MID)),
           v2_bytes(make(512, 20, speaker="us2")), v2_bytes(_SIDE), v2_bytes(_PITCHED)]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "recrc"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            i = draw(st.integers(0, len(data) - 1))
            del data[i]
        elif op == "recrc" and len(data) > 4:  # a valid CRC over a mutated body: test the checks after it
            data = bytearray(_recrc(bytes(data[:-4])))
    return bytes(data)


@settings(max_examples=10000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutated(), st.binary(max_size=80)))
def test_fuzz_only_format_error(data):
    try:
        tf = codes.from_bytes(data)
    except FormatError:
        return
    # Whatever parses must be self-consistent and re-serialise to the same bytes.
    assert {1: v1_bytes, 2: v2_bytes, 3: v2_bytes, 4: codes.to_bytes}[tf.version](tf) == data
