"""The `.vqc` token file: a small binary header, bit-packed codes and a CRC32.

Layout (all integers little-endian), format version 1::

    offset  size  field
    0       4     magic  b"VQCT"
    4       1     format version (1)
    5       4     sample_rate        uint32, Hz of the original audio
    9       8     num_samples        uint64, length of the original audio in samples
    17      4     hop                uint32, audio samples per token
    21      4     codebook_size K    uint32, K >= 2
    25      1     bits_per_token     uint8, must equal ceil(log2 K)
    26      8     num_tokens         uint64
    34      8     model id           8 raw bytes (16 hex chars in the API)
    42      1     speaker length L   uint8
    43      L     speaker            UTF-8, may be empty
    43+L    P     payload            codes packed MSB-first at bits_per_token bits each,
                                     P = ceil(num_tokens * bits_per_token / 8), zero padded
    43+L+P  4     CRC32              zlib.crc32 of every byte before it

Reading checks, in this order and each with its own message: magic, version, truncation (the
file is shorter than its header announces), trailing bytes, CRC, header consistency, padding bits
(must be zero, so every token list has exactly one encoding), token range and (optionally) the
model id. Every failure raises `FormatError` and nothing else.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError
from .files import atomic_path

MAGIC = b"VQCT"
VERSION = 1
SUFFIX = ".vqc"

# sample_rate, num_samples, hop, K, bits, num_tokens, model id, speaker length
_FIXED = struct.Struct("<IQIIBQ8sB")
_PREFIX = len(MAGIC) + 1             # magic + version byte
_HEADER_MIN = _PREFIX + _FIXED.size  # header without the speaker string
_CRC = 4
_MAX_SPEAKER_BYTES = 255
_MAX_BITS = 32


def bits_per_token(codebook_size: int) -> int:
    """ceil(log2 K): the bits one token takes in the payload (K=512 -> 9, K=1000 -> 10)."""
    if codebook_size < 2:
        raise FormatError(f"codebook size must be at least 2, got {codebook_size}")
    return int(codebook_size - 1).bit_length()


@dataclass
class TokenFile:
    """Tokens of one utterance plus what is needed to decode them with the right model."""
    tokens: np.ndarray
    sample_rate: int
    num_samples: int
    hop: int
    codebook_size: int
    model_id: str
    speaker: str = ""
    version: int = field(default=VERSION, compare=False)

    def __post_init__(self):
        tokens = np.asarray(self.tokens)
        if tokens.ndim != 1:
            raise FormatError(f"tokens must be a 1-D array, got shape {tokens.shape}")
        if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
            raise FormatError(f"tokens must be integers, got dtype {tokens.dtype}")
        self.tokens = tokens.astype(np.int64, copy=False)

    def __eq__(self, other):
        if not isinstance(other, TokenFile):
            return NotImplemented
        return (np.array_equal(self.tokens, other.tokens) and self.sample_rate == other.sample_rate
                and self.num_samples == other.num_samples and self.hop == other.hop
                and self.codebook_size == other.codebook_size
                and self.model_id.lower() == other.model_id.lower() and self.speaker == other.speaker)

    @property
    def bits_per_token(self) -> int:
        return bits_per_token(self.codebook_size)

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the original audio in seconds."""
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.sample_rate / self.hop if self.hop else 0.0

    @property
    def bitrate(self) -> float:
        """Payload bits per second: bits_per_token * (sample_rate / hop). Header and CRC excluded."""
        return self.bits_per_token * self.tokens_per_s


# --------------------------------------------------------------------------- bit packing
def pack_bits(tokens: np.ndarray, bits: int) -> bytes:
    """Pack non-negative ints < 2**bits MSB-first at `bits` bits each (vectorised)."""
    tokens = np.asarray(tokens, dtype=np.uint64)
    if tokens.size == 0:
        return b""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bitmat = ((tokens[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat.reshape(-1)).tobytes()


def unpack_bits(payload: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of pack_bits: the first `count` values of `bits` bits each, as int64."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: count * bits]
    weights = (np.int64(1) << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat.reshape(count, bits).astype(np.int64) @ weights


def _payload_size(num_tokens: int, bits: int) -> int:
    return (num_tokens * bits + 7) // 8


def _model_id_bytes(model_id: str) -> bytes:
    if not isinstance(model_id, str) or len(model_id) != 16:
        raise FormatError(f"model id must be 16 hex characters, got {model_id!r}")
    try:
        return bytes.fromhex(model_id)
    except ValueError:
        raise FormatError(f"model id must be 16 hex characters, got {model_id!r}") from None


# --------------------------------------------------------------------------- bytes API
def to_bytes(tf: TokenFile) -> bytes:
    """Serialise a TokenFile. Raises FormatError for values the format cannot hold."""
    bits = bits_per_token(tf.codebook_size)
    if bits > _MAX_BITS or tf.codebook_size >= 2 ** 32:
        raise FormatError(f"codebook size {tf.codebook_size} too large (at most 2**32 - 1)")
    for name, value, low, top in (("sample rate", tf.sample_rate, 1, 2 ** 32), ("hop", tf.hop, 1, 2 ** 32),
                                  ("number of samples", tf.num_samples, 0, 2 ** 64)):
        if not low <= value < top:
            raise FormatError(f"{name} {value} out of range [{low}, {top})")
    tokens = tf.tokens
    if tokens.size and (tokens.min() < 0 or tokens.max() >= tf.codebook_size):
        raise FormatError(f"token values must lie in [0, {tf.codebook_size}), "
                          f"got [{tokens.min()}, {tokens.max()}]")
    speaker = tf.speaker.encode("utf-8")
    if len(speaker) > _MAX_SPEAKER_BYTES:
        raise FormatError(f"speaker id longer than {_MAX_SPEAKER_BYTES} bytes: {tf.speaker[:40]!r}...")
    head = MAGIC + bytes([VERSION]) + _FIXED.pack(
        int(tf.sample_rate), int(tf.num_samples), int(tf.hop), int(tf.codebook_size), bits,
        int(tokens.shape[0]), _model_id_bytes(tf.model_id), len(speaker))
    body = head + speaker + pack_bits(tokens, bits)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def from_bytes(data: bytes, expect_model_id: str | None = None, source: str = "token file") -> TokenFile:
    """Parse a `.vqc` byte string; every problem raises FormatError with its own message.

    `expect_model_id` (16 hex chars): refuse tokens made by another model.
    `source` names the data in messages (read() passes the path).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"{source}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n < len(MAGIC):
        if MAGIC.startswith(data) and n:
            raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
        raise FormatError(f"{source}: not a vqcodec token file (bad magic; expected {MAGIC!r})")
    if data[:4] != MAGIC:
        raise FormatError(f"{source}: not a vqcodec token file (bad magic {data[:4]!r}; "
                          f"expected {MAGIC!r})")
    if n < _PREFIX:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    version = data[4]
    if version != VERSION:
        raise FormatError(f"{source}: unsupported format version {version} "
                          f"(this vqcodec reads version {VERSION}; "
                          f"{'upgrade vqcodec' if version > VERSION else 're-encode the audio'})")
    if n < _HEADER_MIN + _CRC:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    (sample_rate, num_samples, hop, k, bits, num_tokens, mid, spk_len) = _FIXED.unpack_from(data, _PREFIX)
    payload_len = _payload_size(num_tokens, bits)
    expected = _HEADER_MIN + spk_len + payload_len + _CRC
    if n < expected:
        raise FormatError(f"{source}: truncated ({n} bytes; the header announces {expected})")
    if n > expected:
        raise FormatError(f"{source}: {n - expected} unexpected trailing bytes after the data")
    crc_stored = struct.unpack_from("<I", data, n - _CRC)[0]
    crc = zlib.crc32(data[: n - _CRC]) & 0xFFFFFFFF
    if crc != crc_stored:
        raise FormatError(f"{source}: CRC mismatch (file is corrupt: stored {crc_stored:08x}, "
                          f"computed {crc:08x})")
    if k < 2 or bits != int(k - 1).bit_length() or bits > _MAX_BITS:
        raise FormatError(f"{source}: inconsistent header (K={k} with {bits} bits per token)")
    if sample_rate == 0 or hop == 0:
        raise FormatError(f"{source}: inconsistent header (sample rate {sample_rate}, hop {hop})")
    off = _HEADER_MIN
    try:
        speaker = data[off: off + spk_len].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: speaker id is not valid UTF-8") from None
    off += spk_len
    pad = payload_len * 8 - num_tokens * bits
    if pad and data[off + payload_len - 1] & ((1 << pad) - 1):
        raise FormatError(f"{source}: corrupt payload (non-zero padding bits)")
    tokens = unpack_bits(data[off: off + payload_len], bits, num_tokens)
    if tokens.size and tokens.max() >= k:
        raise FormatError(f"{source}: token value {int(tokens.max())} outside the codebook (K={k})")
    model_id = mid.hex()
    if expect_model_id is not None and model_id != expect_model_id.lower():
        raise FormatError(f"{source}: made by model {model_id}, but the loaded model is "
                          f"{expect_model_id.lower()} (decode with the model that encoded it)")
    return TokenFile(tokens=tokens, sample_rate=sample_rate, num_samples=num_samples, hop=hop,
                     codebook_size=k, model_id=model_id, speaker=speaker, version=version)


# --------------------------------------------------------------------------- files
def write(path: str | os.PathLike, tf: TokenFile, force: bool = True) -> Path:
    """Write `tf` to `path` atomically (temporary file, then rename)."""
    data = to_bytes(tf)
    path = Path(path)
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return path


def read(path: str | os.PathLike, expect_model_id: str | None = None) -> TokenFile:
    """Read a `.vqc` file; FormatError for a missing, unreadable or invalid file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such token file") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, not a token file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None
    return from_bytes(data, expect_model_id=expect_model_id, source=str(path))


def describe(tf: TokenFile) -> dict:
    """A flat, JSON-able summary of a token file (what `vqcodec info` prints)."""
    bits = tf.bits_per_token
    payload = _payload_size(tf.num_tokens, bits)
    total = _HEADER_MIN + len(tf.speaker.encode("utf-8")) + payload + _CRC
    used = int(np.unique(tf.tokens).size) if tf.num_tokens else 0
    return {
        "format_version": tf.version,
        "model_id": tf.model_id,
        "speaker": tf.speaker,
        "sample_rate": tf.sample_rate,
        "num_samples": tf.num_samples,
        "duration_s": round(tf.duration_s, 4),
        "hop": tf.hop,
        "codebook_size": tf.codebook_size,
        "bits_per_token": bits,
        "num_tokens": tf.num_tokens,
        "tokens_per_s": round(tf.tokens_per_s, 3),
        "bitrate_bps": round(tf.bitrate, 3),
        "payload_bytes": payload,
        "file_bytes": total,
        "distinct_codes_used": used,
        "codebook_usage": round(used / tf.codebook_size, 4),
        "entropy_bits_per_token": round(_entropy(tf.tokens), 4),
    }


def _entropy(tokens: np.ndarray) -> float:
    if tokens.size == 0:
        return 0.0
    _, counts = np.unique(tokens, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


__all__ = ["TokenFile", "to_bytes", "from_bytes", "write", "read", "describe", "bits_per_token",
           "pack_bits", "unpack_bits", "MAGIC", "VERSION", "SUFFIX"]
