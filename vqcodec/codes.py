"""The `.vqc` token file: a small container of typed streams, each bit-packed or entropy-coded.

A file holds the streams a tokenizer made for one utterance: the content codes (one or more
codebooks), and, for models that have them, a pitch contour, a voice vector and the level gain. A new
model or a rung of a bitrate ladder adds a stream (or codebooks to the content stream), not a format
version. The format never imports the API nor the entropy coder: an entropy-coded stream is written
and read with a probability model *given to it* (`StreamCoder`, e.g. `vqcodec.entropy.EntropyCoder`).

Layout of format version 4 (what `to_bytes` writes). `varint`: unsigned LEB128 (7 bits a byte, low
group first, minimal length, at most 10 bytes, < 2**64); other integers little-endian::

    magic        4       b"VQCT"
    version      1       4
    sample_rate  varint  Hz of the original audio, >= 1
    num_samples  varint  length of the original audio in samples
    hop          varint  audio samples per frame of content codes, >= 1
    model id     8       raw bytes: the TOKENIZER that made the streams (16 hex chars in the API)
    speaker      1 + L   length L (uint8), then L bytes of UTF-8 (may be empty)
    stream count 1       S, then S streams in increasing type order, each:
        type       1       1 content, 2 pitch, 3 voice, 4 gain, 5 residual
        coding     1       0 bit-packed, 1 entropy-coded
        K          varint  alphabet: the values lie in [0, K); ceil(log2 K) bits each when packed
        count      varint  number of values
        params     1 + M   length M (uint8), then M bytes whose meaning depends on the type (below)
        coding 1:  8 + varint + varint + 4 + varint: prior id (the model whose probabilities coded
                   the values), chunk (values per independently coded chunk, 1..MAX_CHUNK), batch
                   (chunks stepped together, 1..MAX_BATCH), CRC32 of the values (see `_token_crc`:
                   catches a decoder whose tables differ from the encoder's), pad (zero words that
                   end the payload, see below)
        data       varint + D  length D, then D bytes: coding 0, the values packed MSB-first,
                   D = ceil(count * bits / 8), zero padding; coding 1, the range coder's 32-bit words,
                   then `pad` zero words
    CRC32        4       zlib.crc32 of every byte before it

    type     required  K          count                  params
    content  yes       codebook   frames x N             N = codebooks (uint8 >= 1); values frame by frame
    pitch    no        levels>=3  ceil(frames / every)   every (uint8 >= 1, frames per value),
                                                         median F0 (float32 Hz, finite, >= 0); values are
                                                         levels around the median (nn/pitch.py), 0 unvoiced
    voice    no        256        V, 1..255              none: the quantized voice vector, a byte a dimension
    gain     yes       0          0 (no data)            float32, finite, >= 0: the decoder multiplies its
                                                         audio by it (undoes the level normalisation)
    residual no        codebook   frames x R             R (uint8 >= 1): codebooks 2..R+1 of each frame, frame
                                                         by frame; only beside an entropy-coded content
                                                         stream of one codebook (the first)

Entropy coding is defined for the content stream with one codebook (a prior over codes). A file of
N > 1 residual codebooks (a bitrate ladder's step) is entropy-coded as its first codebook in the
content stream, coded with the prior (which models that codebook), and the other N - 1 bit-packed
in the residual stream. The other types are read bit-packed (coding 1 on them is refused as "not
supported by this vqcodec"). An
entropy-coded stream (of any version) obeys `entropy_layout_problem`: at most MAX_VALUES_PER_BYTE
values per payload byte (plus 8 bytes' worth; a writer whose coder did better ends the payload with
zero words up to that floor, the least it can be), and chunk and batch such that decoding takes at
most count / MIN_PARALLEL + chunk prior steps. These bound a reader's memory and work by the
payload's size whatever the header claims.

Versions 1-3 are still read (`TokenFile.version` says which was read; writing gives version 4):
version 2 is magic, version, a fixed 64-byte header (sample rate, samples, hop, K, bits per token, token count, model
id, gain, coding, prior id, chunk, batch, payload length, speaker and voice lengths), speaker, voice,
payload, token CRC32, CRC32; version 3 adds pitch levels, every and median F0 after the fixed header
and the packed pitch values before the payload; version 1 has the version-2 fields up to the model id,
then the speaker and the packed payload (no gain, voice or token CRC). `_read_v1` / `_read_v2` give
their exact layouts.

Reading is bounded by the input: the structure is parsed (every length checked against the bytes
that are there) before anything is allocated or decoded; a packed stream's count must match its data
length exactly; an entropy-coded stream's count and layout must obey `entropy_layout_problem`, and
its coder stops as soon as the values it decoded carry more information than the payload has bits. Checks, each with its own message:
magic, version, truncation, trailing bytes, CRC, header consistency, (optionally) the model id,
padding bits (zero, so every value list has one packing), value ranges, the entropy coder's prior
(available?) and the values' CRC. Every failure raises `FormatError` and nothing else.

`to_bytes(tf, coder=...)` entropy-codes the content stream with `coder`; `from_bytes(data,
coder_for=...)` takes a coder or a function prior id -> coder or None.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol, Union

import numpy as np

from .errors import FormatError
from .files import atomic_path

MAGIC = b"VQCT"
VERSION = 4                     # what to_bytes writes
PITCH_VERSION = 3               # the legacy version of files with a pitch stream (read only)
READABLE_VERSIONS = (1, 2, 3, 4)
SUFFIX = ".vqc"
PLAIN, ENTROPY = 0, 1           # stream codings
CONTENT, PITCH, VOICE, GAIN, RESIDUAL = 1, 2, 3, 4, 5  # stream types
STREAM_NAMES = {CONTENT: "content", PITCH: "pitch", VOICE: "voice", GAIN: "gain", RESIDUAL: "residual"}
# Entropy-coded streams (every version): what bounds a reader's work and memory by the bytes it reads.
MAX_BATCH = 256                 # chunks a decoder steps together: bounds the prior's state memory
MAX_CHUNK = 256                 # values per independently coded chunk (writers use 128): one chunk
                                # decoded alone costs at most what a genuine 2.5 s file costs
MIN_PARALLEL = 64               # prior steps <= values / 64 + one chunk: chunks are stepped 64 at a time
MAX_VALUES_PER_BYTE = 128       # a payload of D bytes holds at most 128 (D + 8) values (1/16 bit each;
                                # digital silence costs the shipped priors 0.09-0.2 bit); writers pad
MAX_CODEBOOKS = 255
MAX_STREAMS = 16

# legacy fixed headers. v1: sample_rate, num_samples, hop, K, bits, num_tokens, model id, speaker length
_FIXED_V1 = struct.Struct("<IQIIBQ8sB")
# v2: sample_rate, num_samples, hop, K, bits, num_tokens, model id, gain, coding, prior id, chunk,
#     batch, payload length, speaker length, voice length
_FIXED_V2 = struct.Struct("<IQIIBQ8sfB8sHHQBB")
_PITCH_V3 = struct.Struct("<BBf")   # v3 adds: pitch levels, pitch every, median F0
_PREFIX = len(MAGIC) + 1             # magic + version byte
_CRC = 4
_MAX_SPEAKER_BYTES = 255
_MAX_VOICE = 255
_MAX_BITS = 32
_NO_PRIOR = bytes(8)
_F32 = struct.Struct("<f")


class StreamCoder(Protocol):
    """What the format needs of an entropy coder (vqcodec.entropy.EntropyCoder is one): a model
    given to it, never looked up by the format itself."""
    prior_id: str   # 16 hex chars, stored in the stream
    chunk: int
    batch: int

    def encode(self, tf: "TokenFile") -> bytes: ...

    def decode(self, payload: bytes, tf: "TokenFile", num_tokens: int, chunk: int, batch: int,
               source: str = "token file") -> np.ndarray: ...


CoderFor = Union[StreamCoder, Callable[[str], Union[StreamCoder, None]], None]


def bits_per_token(codebook_size: int) -> int:
    """ceil(log2 K): the bits one token takes in the payload (K=512 -> 9, K=1000 -> 10)."""
    if codebook_size < 2:
        raise FormatError(f"codebook size must be at least 2, got {codebook_size}")
    return int(codebook_size - 1).bit_length()


@dataclass
class TokenFile:
    """The token streams of one utterance plus what is needed to decode them with the right model.

    tokens: the content codes, (frames,) for one codebook or (frames, N) for N codebooks.
    gain: the decoder multiplies its audio by it (the encoder's level normalisation), stored as
    float32 (the value is rounded to float32 here, so a round trip compares equal).
    voice: the quantized per-utterance voice vector, uint8, 0..255 dimensions.
    pitch / pitch_levels / pitch_every / f0_median: the pitch stream (nn/pitch.py) of models that
    have one: ceil(frames / pitch_every) levels in [0, pitch_levels), and the utterance's
    median F0 in Hz (float32); pitch_levels 0 = none.
    prior_id / version / payload_bytes / chunk / stream_bytes / file_bytes describe how a file read
    from disk was stored (payload_bytes: the content stream's data; stream_bytes: data bytes per
    stream name); they are not part of equality (the same tokens read from a plain and an
    entropy-coded file are equal).
    """
    tokens: np.ndarray
    sample_rate: int
    num_samples: int
    hop: int
    codebook_size: int
    model_id: str
    speaker: str = ""
    gain: float = 1.0
    voice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    pitch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pitch_levels: int = 0
    pitch_every: int = 0
    f0_median: float = 0.0
    prior_id: str = field(default="", compare=False)
    version: int = field(default=VERSION, compare=False)
    payload_bytes: int | None = field(default=None, compare=False, repr=False)
    chunk: int = field(default=0, compare=False, repr=False)
    stream_bytes: dict | None = field(default=None, compare=False, repr=False)
    file_bytes: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        tokens = np.asarray(self.tokens)
        if tokens.ndim == 2 and tokens.shape[1] == 1:
            tokens = tokens[:, 0]  # one codebook is always 1-D
        if tokens.ndim not in (1, 2) or (tokens.ndim == 2 and not 1 <= tokens.shape[1] <= MAX_CODEBOOKS):
            raise FormatError(f"tokens must be a 1-D array (one codebook) or (frames, codebooks) with at "
                              f"most {MAX_CODEBOOKS} codebooks, got shape {tokens.shape}")
        if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
            raise FormatError(f"tokens must be integers, got dtype {tokens.dtype}")
        self.tokens = tokens.astype(np.int64, copy=False)
        voice = np.asarray(self.voice)
        if voice.ndim != 1 or (voice.size and not np.issubdtype(voice.dtype, np.integer)):
            raise FormatError(f"voice must be a 1-D integer array, got shape {voice.shape}, dtype {voice.dtype}")
        if voice.size and (voice.min() < 0 or voice.max() > 255):
            raise FormatError("voice values must lie in [0, 255] (8 bits per dimension)")
        if voice.size > _MAX_VOICE:
            raise FormatError(f"voice vector longer than {_MAX_VOICE} dimensions: {voice.size}")
        self.voice = voice.astype(np.uint8, copy=False)
        try:
            gain = float(np.float32(self.gain))
        except (TypeError, ValueError):
            raise FormatError(f"gain must be a number, got {self.gain!r}") from None
        if not math.isfinite(gain) or gain < 0:
            raise FormatError(f"gain must be finite and >= 0, got {self.gain!r}")
        self.gain = gain
        self._check_pitch()

    def _check_pitch(self) -> None:
        pitch = np.asarray(self.pitch)
        if not self.pitch_levels:
            if pitch.size or self.pitch_every or self.f0_median:
                raise FormatError("pitch values given without pitch_levels")
            self.pitch = np.zeros(0, dtype=np.int64)
            return
        if not 3 <= self.pitch_levels <= 255 or not 1 <= self.pitch_every <= 255:
            raise FormatError(f"pitch levels must lie in [3, 255] and pitch every in [1, 255], "
                              f"got {self.pitch_levels} and {self.pitch_every}")
        problem = pitch_stream_problem(pitch, len(self.tokens), self.pitch_every, self.pitch_levels)
        if problem:
            raise FormatError(problem)
        median = float(np.float32(self.f0_median))
        if not math.isfinite(median) or median < 0:
            raise FormatError(f"median F0 must be finite and >= 0, got {self.f0_median!r}")
        self.f0_median = median
        self.pitch = pitch.astype(np.int64, copy=False)

    def __eq__(self, other):
        if not isinstance(other, TokenFile):
            return NotImplemented
        return (np.array_equal(self.tokens, other.tokens) and self.tokens.shape == other.tokens.shape
                and self.sample_rate == other.sample_rate
                and self.num_samples == other.num_samples and self.hop == other.hop
                and self.codebook_size == other.codebook_size
                and self.model_id.lower() == other.model_id.lower() and self.speaker == other.speaker
                and self.gain == other.gain and np.array_equal(self.voice, other.voice)
                and self.pitch_levels == other.pitch_levels and self.pitch_every == other.pitch_every
                and self.f0_median == other.f0_median and np.array_equal(self.pitch, other.pitch))

    @property
    def bits_per_token(self) -> int:
        return bits_per_token(self.codebook_size)

    @property
    def codebooks(self) -> int:
        return 1 if self.tokens.ndim == 1 else int(self.tokens.shape[1])

    @property
    def num_tokens(self) -> int:
        """Frames of content codes (each holds `codebooks` values)."""
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
        """Nominal bit-packed content rate: bits_per_token * codebooks * frames per second (no
        padding, no other stream, no header). `describe` gives what a file actually stores."""
        return self.bits_per_token * self.codebooks * self.tokens_per_s


def pitch_stream_problem(pitch: np.ndarray, num_tokens: int, every: int, levels: int) -> str | None:
    """Why `pitch` cannot be the pitch stream of `num_tokens` tokens (one value per `every` tokens,
    values in [0, levels)), or None. The one check of a pitch stream: files and the decode API."""
    if pitch.ndim != 1 or (pitch.size and not np.issubdtype(pitch.dtype, np.integer)):
        return f"pitch must be a 1-D integer array, got shape {pitch.shape}, dtype {pitch.dtype}"
    expected = -(-num_tokens // every)
    if pitch.size != expected:
        return (f"pitch stream has shape {pitch.shape}; {num_tokens} tokens at {every} per value "
                f"need ({expected},)")
    if pitch.size and (pitch.min() < 0 or pitch.max() >= levels):
        return f"pitch values must lie in [0, {levels})"
    return None


# --------------------------------------------------------------------------- bit packing
_BLOCK = 1 << 16  # values per block when packing / unpacking: bounded temporary memory, byte aligned


def pack_bits(tokens: np.ndarray, bits: int) -> bytes:
    """Pack non-negative ints < 2**bits MSB-first at `bits` bits each (vectorised, in blocks)."""
    tokens = np.asarray(tokens, dtype=np.uint64).reshape(-1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    parts = []
    for a in range(0, tokens.size, _BLOCK):  # a block of 2**16 values ends on a byte boundary
        bitmat = ((tokens[a:a + _BLOCK, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
        parts.append(np.packbits(bitmat.reshape(-1)).tobytes())
    return b"".join(parts)


def unpack_bits(payload: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of pack_bits: the first `count` values of `bits` bits each, as int64."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    weights = (np.int64(1) << np.arange(bits - 1, -1, -1, dtype=np.int64))
    out = np.empty(count, dtype=np.int64)
    for a in range(0, count, _BLOCK):
        n = min(_BLOCK, count - a)
        flat = np.unpackbits(raw[a * bits // 8:-(-(a + n) * bits // 8)])[: n * bits]
        out[a:a + n] = flat.reshape(n, bits).astype(np.int64) @ weights
    return out


def _payload_size(num_values: int, bits: int) -> int:
    return (num_values * bits + 7) // 8


def _model_id_bytes(model_id: str) -> bytes:
    if not isinstance(model_id, str) or len(model_id) != 16:
        raise FormatError(f"model id must be 16 hex characters, got {model_id!r}")
    try:
        return bytes.fromhex(model_id)
    except ValueError:
        raise FormatError(f"model id must be 16 hex characters, got {model_id!r}") from None


def _token_crc(tokens: np.ndarray, bits: int) -> int:
    """CRC32 of the value count (uint64) and the values bit-packed: the count is in it because
    packing alone cannot tell [3] from [3, 0] at 4 bits per value."""
    return zlib.crc32(pack_bits(tokens, bits), zlib.crc32(struct.pack("<Q", tokens.size))) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# --------------------------------------------------------------------------- entropy-coded layout
def decode_steps(count: int, chunk: int, batch: int) -> int:
    """Prior steps an entropy decoder takes for `count` values in chunks of `chunk`, `batch` chunks
    stepped together (a round takes as many steps as its longest chunk)."""
    rounds, rest = divmod(count, chunk * batch)
    return rounds * chunk + min(rest, chunk)


def _floor_bytes(count: int) -> int:
    """The fewest payload bytes (whole 32-bit words) that may hold `count` entropy-coded values."""
    return 4 * -(-max(0, -(-count // MAX_VALUES_PER_BYTE) - 8) // 4)


def entropy_layout_problem(count: int, chunk: int, batch: int, nbytes: int | None = None,
                           pad: int = 0) -> str | None:
    """Why an entropy-coded stream of `count` values, chunk, batch, `nbytes` of payload ending in
    `pad` zero words cannot be (None if it can): the rules that bound a reader's work by its input
    (prior steps <= count / MIN_PARALLEL + chunk, count <= MAX_VALUES_PER_BYTE * (nbytes + 8)) and
    keep padding to what the floor needs (the values' CRC, not the layout, makes the tokens unique). Writers check it without
    nbytes before coding; readers with it before decoding. The one check, for every version."""
    if not (1 <= chunk <= MAX_CHUNK and 1 <= batch <= MAX_BATCH):
        return f"chunk {chunk} and batch {batch} must lie in [1, {MAX_CHUNK}] and [1, {MAX_BATCH}]"
    steps = decode_steps(count, chunk, batch)
    if steps > count // MIN_PARALLEL + chunk:
        return (f"chunks of {chunk} stepped {batch} at a time take {steps} prior steps for {count} values, "
                f"more than {count // MIN_PARALLEL + chunk} (step at least {MIN_PARALLEL} chunks together)")
    if nbytes is None:
        return None
    floor = _floor_bytes(count)
    if nbytes % 4 or (not count and nbytes) or count > MAX_VALUES_PER_BYTE * (nbytes + 8):
        return f"{count} values cannot fit in an entropy-coded payload of {nbytes} bytes"
    if pad and (4 * pad > nbytes or nbytes != floor or nbytes - 4 * pad >= floor):  # padding up to the floor only
        return f"{pad} padding words in a payload of {nbytes} bytes for {count} values"
    return None


# --------------------------------------------------------------------------- streams
@dataclass
class _Stream:
    """One stream as stored: values in [0, k), `count` of them, packed or entropy-coded in `data`."""
    kind: int
    coding: int
    k: int
    count: int
    params: bytes
    data: bytes
    prior: bytes = _NO_PRIOR
    chunk: int = 0
    batch: int = 0
    crc: int | None = None  # of the values (entropy-coded v4 streams, every v2/v3 payload)
    pad: int = 0            # zero words ending an entropy-coded payload (`entropy_layout`)

    def to_bytes(self) -> bytes:
        coded = (self.prior + _varint(self.chunk) + _varint(self.batch) + struct.pack("<I", self.crc)
                 + _varint(self.pad) if self.coding == ENTROPY else b"")
        return (bytes([self.kind, self.coding]) + _varint(self.k) + _varint(self.count)
                + bytes([len(self.params)]) + self.params + coded + _varint(len(self.data)) + self.data)


def to_bytes(tf: TokenFile, coder: StreamCoder | None = None) -> bytes:
    """Serialise a TokenFile as format version 4: every stream bit-packed, or the content stream
    entropy-coded with `coder` (e.g. vqcodec.entropy.EntropyCoder). Raises FormatError for values the
    format cannot hold or tokens the coder's prior was not trained for."""
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
    tf._check_pitch()  # the fields may have been changed since construction
    residual = None
    if coder is not None and tf.codebooks > 1:  # codebook 1 entropy-coded, the others packed in the residual stream
        rest = tokens[:, 1:]
        residual = _Stream(RESIDUAL, PLAIN, tf.codebook_size, rest.size, bytes([rest.shape[1]]),
                           pack_bits(rest.reshape(-1), bits))
        tf = replace(tf, tokens=np.ascontiguousarray(tokens[:, 0]))
    values = tf.tokens.reshape(-1)
    content = _Stream(CONTENT, PLAIN, tf.codebook_size, values.size, bytes([tf.codebooks]), b"")
    if coder is None:
        content.data = pack_bits(values, bits)
    else:
        problem = entropy_layout_problem(values.size, coder.chunk, coder.batch)
        if problem:
            raise FormatError(f"cannot entropy-code {values.size} tokens: {problem}")
        content.coding, content.prior = ENTROPY, bytes.fromhex(coder.prior_id)
        content.chunk, content.batch, content.crc = coder.chunk, coder.batch, _token_crc(values, bits)
        words = coder.encode(tf)
        content.pad = max(0, _floor_bytes(values.size) - len(words)) // 4
        content.data = words + bytes(4 * content.pad)
    streams = [content]
    if tf.pitch_levels:
        streams.append(_Stream(PITCH, PLAIN, tf.pitch_levels, tf.pitch.size,
                               bytes([tf.pitch_every]) + _F32.pack(tf.f0_median),
                               pack_bits(tf.pitch, bits_per_token(tf.pitch_levels))))
    if tf.voice.size:
        streams.append(_Stream(VOICE, PLAIN, 256, tf.voice.size, b"", tf.voice.tobytes()))
    streams.append(_Stream(GAIN, PLAIN, 0, 0, _F32.pack(tf.gain), b""))
    if residual is not None:
        streams.append(residual)
    return _assemble(dict(sample_rate=int(tf.sample_rate), num_samples=int(tf.num_samples), hop=int(tf.hop),
                          model_id=_model_id_bytes(tf.model_id), speaker=speaker), streams)


def _assemble(head: dict, streams: list[_Stream]) -> bytes:
    """A version-4 file of these header fields (as `_read_v4` returns them) and streams."""
    body = (MAGIC + bytes([VERSION]) + _varint(head["sample_rate"]) + _varint(head["num_samples"])
            + _varint(head["hop"]) + head["model_id"] + bytes([len(head["speaker"])]) + head["speaker"]
            + bytes([len(streams)]) + b"".join(s.to_bytes() for s in streams))
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


class _Cursor:
    """Reads a byte string front to back; running past its end is a truncated file."""

    def __init__(self, data: bytes, at: int, end: int, source: str):
        self.data, self.at, self.end, self.source = data, at, end, source

    def take(self, n: int) -> bytes:
        if n > self.end - self.at:
            raise FormatError(f"{self.source}: truncated ({len(self.data)} bytes; the header announces more)")
        self.at += n
        return self.data[self.at - n:self.at]

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = shift = 0
        for i in range(10):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if (byte == 0 and i) or value >= 2 ** 64:
                    raise FormatError(f"{self.source}: inconsistent header (malformed varint)")
                return value
            shift += 7
        raise FormatError(f"{self.source}: inconsistent header (malformed varint)")


def _read_v4(data: bytes, source: str) -> tuple[dict, list[_Stream]]:
    """Parse the container's structure: lengths only, every one checked against the bytes there."""
    cur = _Cursor(data, _PREFIX, len(data) - _CRC, source)
    if cur.end < cur.at:
        raise FormatError(f"{source}: truncated ({len(data)} bytes, shorter than the header)")
    head = dict(sample_rate=cur.varint(), num_samples=cur.varint(), hop=cur.varint(), model_id=cur.take(8))
    head["speaker"] = cur.take(cur.byte())
    streams = []
    for _ in range(cur.byte()):
        kind, coding, k, count = cur.byte(), cur.byte(), cur.varint(), cur.varint()
        s = _Stream(kind, coding, k, count, cur.take(cur.byte()), b"")
        if coding == ENTROPY:
            s.prior, s.chunk, s.batch = cur.take(8), cur.varint(), cur.varint()
            s.crc, s.pad = struct.unpack("<I", cur.take(4))[0], cur.varint()
        s.data = cur.take(cur.varint())
        streams.append(s)
    if cur.at != cur.end:
        raise FormatError(f"{source}: {cur.end - cur.at} unexpected trailing bytes after the data")
    return head, streams


def _read_v1(data: bytes, source: str) -> tuple[dict, list[_Stream]]:
    n = len(data)
    if n < _PREFIX + _FIXED_V1.size + _CRC:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    (sample_rate, num_samples, hop, k, bits, num_tokens, mid, spk_len) = _FIXED_V1.unpack_from(data, _PREFIX)
    off = _PREFIX + _FIXED_V1.size
    payload_len = _payload_size(num_tokens, bits)
    _check_length(n, off + spk_len + payload_len + _CRC, source)
    head = dict(sample_rate=sample_rate, num_samples=num_samples, hop=hop, model_id=mid,
                speaker=data[off:off + spk_len], bits=bits)
    return head, [_Stream(CONTENT, PLAIN, k, num_tokens, b"\x01", data[off + spk_len:off + spk_len + payload_len]),
                  _Stream(GAIN, PLAIN, 0, 0, _F32.pack(1.0), b"")]


def _read_v2(data: bytes, source: str, version: int) -> tuple[dict, list[_Stream]]:
    """Versions 2 and 3 (3: with the pitch block), as the streams of a version-4 file."""
    n = len(data)
    fixed_end = _PREFIX + _FIXED_V2.size
    extra = _PITCH_V3.size if version == PITCH_VERSION else 0
    if n < fixed_end + extra + 2 * _CRC:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    (sample_rate, num_samples, hop, k, bits, num_tokens, mid, gain, coding, prior, chunk, batch,
     payload_len, spk_len, voice_len) = _FIXED_V2.unpack_from(data, _PREFIX)
    pitch_levels = pitch_every = pitch_len = 0
    f0_median = 0.0
    if extra:
        pitch_levels, pitch_every, f0_median = _PITCH_V3.unpack_from(data, fixed_end)
        if pitch_levels >= 3 and pitch_every >= 1:  # else refused as inconsistent once the CRC holds
            pitch_len = _payload_size(-(-num_tokens // pitch_every), bits_per_token(pitch_levels))
    off = fixed_end + extra
    _check_length(n, off + spk_len + voice_len + pitch_len + payload_len + 2 * _CRC, source)
    v = off + spk_len + voice_len
    p = v + pitch_len
    head = dict(sample_rate=sample_rate, num_samples=num_samples, hop=hop, model_id=mid,
                speaker=data[off:off + spk_len], bits=bits)
    content = _Stream(CONTENT, coding, k, num_tokens, b"\x01", data[p:p + payload_len], prior=prior,
                      chunk=chunk, batch=batch, crc=struct.unpack_from("<I", data, p + payload_len)[0])
    streams = [content]
    if extra:
        streams.append(_Stream(PITCH, PLAIN, pitch_levels, -(-num_tokens // max(pitch_every, 1)),
                               bytes([pitch_every]) + _F32.pack(f0_median), data[v:p]))
    if voice_len:
        streams.append(_Stream(VOICE, PLAIN, 256, voice_len, b"", data[off + spk_len:v]))
    streams.append(_Stream(GAIN, PLAIN, 0, 0, _F32.pack(gain), b""))
    return head, streams


def _check_length(n: int, expected: int, source: str) -> None:
    if n < expected:
        raise FormatError(f"{source}: truncated ({n} bytes; the header announces {expected})")
    if n > expected:
        raise FormatError(f"{source}: {n - expected} unexpected trailing bytes after the data")


def from_bytes(data: bytes, expect_model_id: str | None = None, source: str = "token file",
               coder_for: CoderFor = None) -> TokenFile:
    """Parse a `.vqc` byte string (format version 1 to 4); every problem raises FormatError with
    its own message.

    `expect_model_id` (16 hex chars): refuse tokens made by another tokenizer.
    `source` names the data in messages (read() passes the path).
    `coder_for`: for entropy-coded files, a coder (see `StreamCoder`) or a function prior id ->
    coder (None when that prior is not available); unused for bit-packed files.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"{source}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    version, head, s = _checked(data, source)
    content = s[CONTENT]
    try:
        speaker = head["speaker"].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: speaker id is not valid UTF-8") from None
    model_id = head["model_id"].hex()
    if expect_model_id is not None and model_id != expect_model_id.lower():
        raise FormatError(f"{source}: made by model {model_id}, but the loaded model is "
                          f"{expect_model_id.lower()} (decode with the model that encoded it)")
    codebooks = content.params[0]
    frames = content.count // codebooks
    pitch = s.get(PITCH)
    tf = TokenFile(tokens=np.zeros(0, dtype=np.int64), sample_rate=head["sample_rate"],
                   num_samples=head["num_samples"], hop=head["hop"], codebook_size=content.k, model_id=model_id,
                   speaker=speaker, gain=_F32.unpack(s[GAIN].params)[0],
                   voice=np.frombuffer(s[VOICE].data, dtype=np.uint8).copy() if VOICE in s else np.zeros(0, np.uint8),
                   prior_id="" if content.coding == PLAIN else content.prior.hex(), version=version,
                   payload_bytes=len(content.data), chunk=content.chunk, file_bytes=n,
                   stream_bytes={STREAM_NAMES[t]: len(x.data) for t, x in s.items()})
    if pitch is not None:
        every, median = pitch.params[0], _F32.unpack(pitch.params[1:])[0]
        tf.pitch = _values(pitch, None, tf, source)
        tf.pitch_levels, tf.pitch_every, tf.f0_median = pitch.k, every, median
    tokens = _values(content, coder_for, tf, source)
    tf.tokens = tokens if codebooks == 1 else tokens.reshape(frames, codebooks)
    if RESIDUAL in s:  # an entropy-coded ladder step: codebook 1 above, the others packed here
        rest = _values(s[RESIDUAL], None, tf, source).reshape(frames, s[RESIDUAL].params[0])
        tf.tokens = np.concatenate([tf.tokens[:, None], rest], axis=1)
    return tf


def _checked(data: bytes, source: str) -> tuple[int, dict, dict[int, _Stream]]:
    """(version, header fields, streams by type) of a file whose structure, CRC and header fields
    are checked; no stream is decoded yet."""
    n = len(data)
    version, head, streams = _parse(data, source)
    crc_stored = struct.unpack_from("<I", data, n - _CRC)[0]
    crc = zlib.crc32(data[: n - _CRC]) & 0xFFFFFFFF
    if crc != crc_stored:
        raise FormatError(f"{source}: CRC mismatch (file is corrupt: stored {crc_stored:08x}, "
                          f"computed {crc:08x})")
    return version, head, _check_streams(head, streams, source)


def _parse(data: bytes, source: str) -> tuple[int, dict, list[_Stream]]:
    """(version, header fields, streams) of a file of any readable version: magic, version and
    structure checked (lengths against the bytes there), the CRC and the values not yet."""
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
    if version not in READABLE_VERSIONS:
        raise FormatError(f"{source}: unsupported format version {version} "
                          f"(this vqcodec reads versions {', '.join(map(str, READABLE_VERSIONS))}; "
                          f"{'upgrade vqcodec' if version > max(READABLE_VERSIONS) else 're-encode the audio'})")
    head, streams = (_read_v1(data, source) if version == 1 else _read_v4(data, source) if version == VERSION
                     else _read_v2(data, source, version))
    return version, head, streams


def _check_streams(head: dict, streams: list[_Stream], source: str) -> dict[int, _Stream]:
    """The streams by type, once every header field is checked against the others (nothing is
    decoded yet, and no stream can announce more values than its data can hold)."""
    def bad(what: str):
        return FormatError(f"{source}: inconsistent header ({what})")

    if not 1 <= head["sample_rate"] < 2 ** 32 or not 1 <= head["hop"] < 2 ** 32:
        raise bad(f"sample rate {head['sample_rate']}, hop {head['hop']}")
    kinds = [x.kind for x in streams]
    unknown = [t for t in kinds if t not in STREAM_NAMES]
    if unknown:
        raise FormatError(f"{source}: unknown stream type {unknown[0]} (upgrade vqcodec)")
    if kinds != sorted(set(kinds)) or CONTENT not in kinds or GAIN not in kinds or len(kinds) > MAX_STREAMS:
        raise bad(f"streams {kinds}: each type at most once, in increasing order, content and gain present")
    by = {x.kind: x for x in streams}
    content = by[CONTENT]
    bits = head.get("bits", None)
    if content.k < 2 or content.k >= 2 ** 32 or (bits is not None and bits != bits_per_token(max(content.k, 2))):
        raise bad(f"K={content.k} with {bits} bits per token")
    if len(content.params) != 1 or content.params[0] < 1 or content.count % content.params[0]:
        raise bad(f"content stream of {content.count} values in {content.params[:1].hex() or 'no'} codebooks")
    frames = content.count // content.params[0]
    pitch = by.get(PITCH)
    if pitch is not None:
        every, median = (pitch.params[0], _F32.unpack(pitch.params[1:])[0]) if len(pitch.params) == 5 else (0, 0.0)
        if (not 3 <= pitch.k <= 255 or every < 1 or not (math.isfinite(median) and median >= 0)
                or pitch.count != -(-frames // pitch.params[0])):
            raise bad(f"pitch stream: levels {pitch.k}, params {pitch.params.hex()}, {pitch.count} values "
                      f"for {frames} frames")
    residual = by.get(RESIDUAL)
    if residual is not None and (len(residual.params) != 1 or residual.params[0] < 1
                                 or residual.params[0] + 1 > MAX_CODEBOOKS or residual.k != content.k
                                 or residual.count != frames * residual.params[0]
                                 or content.coding != ENTROPY or content.params[0] != 1 or residual.coding != PLAIN):
        raise bad(f"residual stream of {residual.count} values in {residual.params[:1].hex() or 'no'} codebooks "
                  f"below {residual.k}, beside a {'bit-packed' if content.coding == PLAIN else 'coded'} content "
                  f"stream of {content.params[0]} codebook(s) and {frames} frames")
    voice = by.get(VOICE)
    if voice is not None and (voice.k != 256 or voice.params or not 1 <= voice.count <= _MAX_VOICE):
        raise bad(f"voice stream of {voice.count} values below {voice.k}")
    gain = by[GAIN]
    value = _F32.unpack(gain.params)[0] if len(gain.params) == 4 else float("nan")
    if gain.k or gain.count or gain.data or gain.coding or not (math.isfinite(value) and value >= 0):
        raise bad(f"gain {value}")
    for x in streams:
        name = STREAM_NAMES[x.kind]
        if x.coding == PLAIN:
            if (len(x.data) != _payload_size(x.count, bits_per_token(max(x.k, 2)) if x.k else 0)
                    or x.prior != _NO_PRIOR or x.chunk or x.batch):
                raise bad(f"bit-packed {name} stream of {len(x.data)} bytes for {x.count} values, "
                          "or entropy-coding fields set")
        elif x.coding == ENTROPY:
            if x.kind != CONTENT or content.params[0] != 1:
                raise FormatError(f"{source}: entropy-coded {name} stream"
                                  f"{'' if x.kind != CONTENT else ' of several codebooks'}: not supported by "
                                  "this vqcodec (upgrade vqcodec)")
            problem = entropy_layout_problem(x.count, x.chunk, x.batch, len(x.data), x.pad)
            if problem:
                raise bad(f"entropy-coded {name} stream: {problem}")
        else:
            raise FormatError(f"{source}: unknown payload coding {x.coding} of the {name} stream (upgrade vqcodec)")
    return by


def _values(stream: _Stream, coder_for: CoderFor, tf: TokenFile, source: str) -> np.ndarray:
    """The values of a checked stream: unpacked, or decoded by the coder of its prior; then the
    values' CRC, where the stream stores one."""
    name = STREAM_NAMES[stream.kind]
    bits = bits_per_token(stream.k)
    if stream.coding == PLAIN:
        values = _unpack_checked(stream.data, bits, stream.count, stream.k, source,
                                 "payload" if stream.kind == CONTENT else f"{name} stream",
                                 "token" if stream.kind == CONTENT else name,
                                 f"the codebook (K={stream.k})" if stream.kind == CONTENT else f"[0, {stream.k})")
    else:
        if any(stream.data[len(stream.data) - 4 * stream.pad:]):
            raise FormatError(f"{source}: corrupt payload (non-zero padding words)")
        coder = _coder(coder_for, stream.prior.hex(), source)
        values = coder.decode(stream.data[:len(stream.data) - 4 * stream.pad], tf, stream.count, stream.chunk,
                              stream.batch, source=source)
    if stream.crc is not None and _token_crc(values, bits) != stream.crc:
        raise FormatError(f"{source}: token CRC mismatch: the payload decodes to other tokens than were "
                          "encoded" + (f" (prior {stream.prior.hex()} gives other probabilities here than "
                                       "where the file was written)" if stream.coding == ENTROPY else ""))
    return values


def _unpack_checked(data: bytes, bits: int, count: int, k: int, source: str, what: str, value: str,
                    allowed: str) -> np.ndarray:
    """`count` bit-packed values below `k`: the padding bits must be zero (one packing per list) and
    every value in range, or a FormatError naming `what` (the stream), `value` and the `allowed` range."""
    pad = len(data) * 8 - count * bits
    if pad and data[-1] & ((1 << pad) - 1):
        raise FormatError(f"{source}: corrupt {what} (non-zero padding bits)")
    values = unpack_bits(data, bits, count)
    if values.size and values.max() >= k:
        raise FormatError(f"{source}: {value} value {int(values.max())} outside {allowed}")
    return values


def _coder(coder_for: CoderFor, prior_id: str, source: str) -> StreamCoder:
    """The coder for prior_id from what from_bytes was given (a coder, or a lookup), or a FormatError."""
    coder = coder_for
    if coder_for is not None and not hasattr(coder_for, "decode"):
        coder = coder_for(prior_id)
    if coder is None or coder.prior_id != prior_id:
        raise FormatError(f"{source}: entropy-coded with prior {prior_id}, which is not available "
                          "(decode it with the prior it was written with)")
    return coder


# --------------------------------------------------------------------------- files
def write(path: str | os.PathLike, tf: TokenFile, force: bool = True,
          coder: StreamCoder | None = None) -> Path:
    """Write `tf` to `path` atomically (temporary file, then rename); entropy-coded with `coder`."""
    data = to_bytes(tf, coder=coder)
    path = Path(path)
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return path


def read(path: str | os.PathLike, expect_model_id: str | None = None, coder_for: CoderFor = None) -> TokenFile:
    """Read a `.vqc` file; FormatError for a missing, unreadable or invalid file."""
    path = Path(path)
    return from_bytes(_file_bytes(path), expect_model_id=expect_model_id, source=str(path), coder_for=coder_for)


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such token file") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, not a token file") from None
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror or e})") from None


def read_model_id(path: str | os.PathLike) -> str:
    """The id of the model (tokenizer) that made a `.vqc` file, from its checked header, with no
    stream decoded (no prior needed): which model decodes it. FormatError as `read`."""
    return _checked(_file_bytes(Path(path)), str(path))[1]["model_id"].hex()


def describe(tf: TokenFile, data: bytes | None = None) -> dict:
    """A flat, JSON-able summary of a token file (what `vqcodec info` prints).

    One bitrate convention (encode, info and the docs use it): bits stored per second of the
    original audio. tokens_bps counts the codes' data as stored (the content stream, bit-packed or
    entropy-coded, plus an entropy-coded ladder file's residual codebooks), streams_bps the data and parameters of every stream (content, pitch, voice,
    gain), file_bps the whole file (headers and CRCs too). Sizes come from `data` (the file's bytes)
    when given, else from how `tf` was read from disk, else from `to_bytes(tf)` (bit-packed)."""
    if data is None and tf.file_bytes is None:
        data = to_bytes(tf)
    if data is not None:
        version, _, streams = _parse(bytes(data), "token file")
        by = {x.kind: x for x in streams}
        sizes, total = {STREAM_NAMES.get(t, str(t)): len(x.data) for t, x in by.items()}, len(data)
        entropy = by[CONTENT].coding == ENTROPY
        prior, chunk = by[CONTENT].prior.hex(), by[CONTENT].chunk
    else:
        version, sizes, total = tf.version, tf.stream_bytes, tf.file_bytes
        entropy, prior, chunk = bool(tf.prior_id), tf.prior_id, tf.chunk
    bits = tf.bits_per_token
    values = tf.num_tokens * tf.codebooks
    plain = _payload_size(values, bits)
    content = sizes["content"] + sizes.get("residual", 0)  # all the codes, however they are stored
    side = (sizes.get("voice", 0) + (4 if version > 1 else 0) + (5 if tf.pitch_levels else 0)
            + (1 if "residual" in sizes else 0))
    streams = content + sizes.get("pitch", 0) + side
    books = tf.tokens.reshape(tf.num_tokens, tf.codebooks).T  # one row per codebook
    used = sum(int(np.unique(b).size) for b in books) if tf.num_tokens else 0  # summed over the codebooks
    duration = tf.duration_s

    def bps(nbytes: int) -> float:
        return round(nbytes * 8 / duration, 3) if duration else 0.0
    return {
        "format_version": version,
        "model_id": tf.model_id,
        "speaker": tf.speaker,
        "sample_rate": tf.sample_rate,
        "num_samples": tf.num_samples,
        "duration_s": round(duration, 4),
        "hop": tf.hop,
        "codebook_size": tf.codebook_size,
        "codebooks": tf.codebooks,
        "gain": tf.gain,
        "voice_bits": 8 * tf.voice.size,
        "f0_median_hz": round(tf.f0_median, 2),
        "content_coding": f"entropy (prior {prior}, chunks of {chunk} tokens)" if entropy else "bit-packed",
        "bits_per_token": bits,
        "stored_bits_per_token": round(content * 8 / values, 4) if values else 0.0,
        "num_tokens": tf.num_tokens,
        "tokens_per_s": round(tf.tokens_per_s, 3),
        "tokens_bps": bps(content),
        "pitch_bps": bps(sizes.get("pitch", 0)),
        "streams_bps": bps(streams),
        "file_bps": bps(total),
        "tokens_saving_vs_packed": round(1 - content / plain, 4) if plain else 0.0,
        "content_bytes": content,
        "file_bytes": total,
        "distinct_codes_used": used,
        "codebook_usage": round(used / (tf.codebook_size * tf.codebooks), 4),
        "entropy_bits_per_token": round(float(np.mean([_entropy(b) for b in books])), 4),  # per codebook
    }


def rate_line(desc: dict) -> str:
    """The one way the commands print a file's bitrate (see `describe`)."""
    coded = " entropy-coded" if desc["content_coding"].startswith("entropy") else ""
    return f"tokens {desc['tokens_bps']:.0f} bit/s{coded}, whole file {desc['file_bps']:.0f} bit/s"


def _entropy(tokens: np.ndarray) -> float:
    if tokens.size == 0:
        return 0.0
    _, counts = np.unique(tokens, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


__all__ = ["TokenFile", "StreamCoder", "to_bytes", "from_bytes", "write", "read", "read_model_id", "describe",
           "rate_line", "bits_per_token", "pack_bits", "unpack_bits", "MAGIC", "VERSION", "PITCH_VERSION",
           "READABLE_VERSIONS", "SUFFIX", "MAX_BATCH", "MAX_CHUNK", "decode_steps", "entropy_layout_problem"]
