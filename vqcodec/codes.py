"""The `.vqc` token file: a small binary header, the codes (bit-packed or entropy-coded), CRC32s.

Layout (all integers little-endian), format version 2 (what `to_bytes` writes)::

    offset    size  field
    0         4     magic  b"VQCT"
    4         1     format version (2)
    5         4     sample_rate        uint32, Hz of the original audio
    9         8     num_samples        uint64, length of the original audio in samples
    17        4     hop                uint32, audio samples per token
    21        4     codebook_size K    uint32, K >= 2
    25        1     bits_per_token     uint8, must equal ceil(log2 K)
    26        8     num_tokens         uint64
    34        8     model id           8 raw bytes: the TOKENIZER that made the tokens (16 hex chars
                                       in the API; same field and meaning as in version 1)
    42        4     gain               float32, finite, >= 0: the input level normalisation factor the
                                       decoder undoes (decoded audio is multiplied by it); 1.0 = none
    46        1     payload coding     0 = bit-packed (as version 1), 1 = entropy-coded (vqcodec.entropy)
    47        8     prior id           the prior whose probabilities coded the payload (zero if coding 0)
    55        2     chunk              uint16, tokens per independently coded chunk (0 if coding 0)
    57        2     batch              uint16, chunks stepped together by the prior (0 if coding 0)
    59        8     payload length P   uint64, bytes
    67        1     speaker length L   uint8
    68        1     voice length V     uint8, dimensions of the voice vector (0 = none)
    69        L     speaker            UTF-8, may be empty
    69+L      V     voice              uint8 per dimension: the quantized per-utterance voice vector
    69+L+V    P     payload            coding 0: codes packed MSB-first at bits_per_token bits each,
                                       P = ceil(num_tokens * bits_per_token / 8), zero padded;
                                       coding 1: the range coder's 32-bit words, P a multiple of 4
    69+L+V+P  4     token CRC32        zlib.crc32 of num_tokens (uint64) followed by the tokens
                                       bit-packed as in a coding-0 payload (catches an entropy
                                       decoder whose tables differ from the encoder's)
    73+L+V+P  4     CRC32              zlib.crc32 of every byte before it

Version 3 is version 2 plus a pitch stream (models with `model.pitch`, nn/pitch.py); it is written
only for files that have one, so files of models without it stay version 2. After the version-2
fixed fields (offset 69) come::

    69        1     pitch levels Lp    uint8, >= 3: values 0 (unvoiced) .. Lp - 1
    70        1     pitch every E      uint8, tokens per pitch value
    71        4     median F0          float32, Hz, finite, >= 0 (0: nothing voiced)
    75        L, V  speaker, voice     as in version 2
    75+L+V    Q     pitch              ceil(num_tokens / E) values bit-packed MSB-first at
                                       ceil(log2 Lp) bits each, zero padded
    then payload, token CRC32 and CRC32 as in version 2 (the CRC covers the pitch stream).

Version 1 (still read; `TokenFile.version` says which was read) has the version-2 fields up to the
model id, then speaker length, speaker, the bit-packed payload and the CRC32: no gain (1.0), no
voice, no token CRC, never entropy-coded.

Reading checks, in this order and each with its own message: magic, version, truncation (the
file is shorter than its header announces), trailing bytes, CRC, header consistency, (optionally)
the model id, padding bits (must be zero, so every token list has exactly one bit-packed encoding),
token range, the entropy coder's prior (available?) and the token CRC. Every failure raises
`FormatError` and nothing else.

Entropy coding (coding 1) needs the prior: `to_bytes(tf, coder=EntropyCoder(...))` writes it and
`from_bytes(data, coder_for=...)` reads it, where coder_for is an EntropyCoder or a function
prior id -> EntropyCoder or None (see `vqcodec.entropy`).
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import numpy as np

from .errors import FormatError
from .files import atomic_path

if TYPE_CHECKING:
    from .entropy import EntropyCoder

    CoderFor = Union[EntropyCoder, Callable[[str], Union[EntropyCoder, None]], None]

MAGIC = b"VQCT"
VERSION = 2          # what files without a pitch stream are written as
PITCH_VERSION = 3    # files with a pitch stream
READABLE_VERSIONS = (1, 2, 3)
SUFFIX = ".vqc"
PLAIN, ENTROPY = 0, 1  # payload codings

# v1: sample_rate, num_samples, hop, K, bits, num_tokens, model id, speaker length
_FIXED_V1 = struct.Struct("<IQIIBQ8sB")
# v2: sample_rate, num_samples, hop, K, bits, num_tokens, model id, gain, coding, prior id, chunk,
#     batch, payload length, speaker length, voice length
_FIXED = struct.Struct("<IQIIBQ8sfB8sHHQBB")
# v3 adds: pitch levels, pitch every, median F0
_PITCH = struct.Struct("<BBf")
_PREFIX = len(MAGIC) + 1             # magic + version byte
_HEADER_MIN = _PREFIX + _FIXED.size  # v2 header without the speaker string and voice
_CRC = 4
_MAX_SPEAKER_BYTES = 255
_MAX_VOICE = 255
_MAX_BITS = 32
_NO_PRIOR = bytes(8)


def bits_per_token(codebook_size: int) -> int:
    """ceil(log2 K): the bits one token takes in the payload (K=512 -> 9, K=1000 -> 10)."""
    if codebook_size < 2:
        raise FormatError(f"codebook size must be at least 2, got {codebook_size}")
    return int(codebook_size - 1).bit_length()


@dataclass
class TokenFile:
    """Tokens of one utterance plus what is needed to decode them with the right model.

    gain: the decoder multiplies its audio by it (the encoder's level normalisation), stored as
    float32 (the value is rounded to float32 here, so a round trip compares equal).
    voice: the quantized per-utterance voice vector, uint8, 0..255 dimensions.
    pitch / pitch_levels / pitch_every / f0_median: the pitch stream (nn/pitch.py) of models that
    have one: ceil(num_tokens / pitch_every) levels in [0, pitch_levels), and the utterance's
    median F0 in Hz (float32); pitch_levels 0 = none.
    prior_id / version / payload_bytes / chunk describe how a file read from disk was stored; they
    are not part of equality (the same tokens read from a plain and an entropy-coded file are equal).
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

    def __post_init__(self):
        tokens = np.asarray(self.tokens)
        if tokens.ndim != 1:
            raise FormatError(f"tokens must be a 1-D array, got shape {tokens.shape}")
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
        return (np.array_equal(self.tokens, other.tokens) and self.sample_rate == other.sample_rate
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
        """Bit-packed payload bits per second: bits_per_token * (sample_rate / hop). Header and CRC
        excluded; `describe` gives what an entropy-coded file actually stores."""
        return self.bits_per_token * self.tokens_per_s


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
def _token_crc(tokens: np.ndarray, bits: int) -> int:
    """CRC32 of the token count (uint64) and the tokens bit-packed: the count is in it because
    packing alone cannot tell [3] from [3, 0] at 4 bits per token."""
    return zlib.crc32(pack_bits(tokens, bits), zlib.crc32(struct.pack("<Q", len(tokens)))) & 0xFFFFFFFF


def to_bytes(tf: TokenFile, coder: "EntropyCoder | None" = None) -> bytes:
    """Serialise a TokenFile as format version 2: bit-packed, or entropy-coded with `coder`'s prior
    (vqcodec.entropy.EntropyCoder). Raises FormatError for values the format cannot hold or tokens
    the coder's prior was not trained for."""
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
    if coder is None:
        coding, prior, chunk, batch, payload = PLAIN, _NO_PRIOR, 0, 0, pack_bits(tokens, bits)
    else:
        coding, prior, chunk, batch = ENTROPY, bytes.fromhex(coder.prior_id), coder.chunk, coder.batch
        payload = coder.encode(tf)
    voice = tf.voice.tobytes()
    tf._check_pitch()  # the fields may have been changed since construction
    version = PITCH_VERSION if tf.pitch_levels else VERSION
    head = MAGIC + bytes([version]) + _FIXED.pack(
        int(tf.sample_rate), int(tf.num_samples), int(tf.hop), int(tf.codebook_size), bits,
        int(tokens.shape[0]), _model_id_bytes(tf.model_id), tf.gain, coding, prior, chunk, batch,
        len(payload), len(speaker), len(voice))
    pitch = b""
    if tf.pitch_levels:
        head += _PITCH.pack(tf.pitch_levels, tf.pitch_every, tf.f0_median)
        pitch = pack_bits(tf.pitch, bits_per_token(tf.pitch_levels))
    body = head + speaker + voice + pitch + payload + struct.pack("<I", _token_crc(tokens, bits))
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def from_bytes(data: bytes, expect_model_id: str | None = None, source: str = "token file",
               coder_for: "CoderFor" = None) -> TokenFile:
    """Parse a `.vqc` byte string (format version 1 or 2); every problem raises FormatError with
    its own message.

    `expect_model_id` (16 hex chars): refuse tokens made by another tokenizer.
    `source` names the data in messages (read() passes the path).
    `coder_for`: for entropy-coded files, an EntropyCoder or a function prior id -> EntropyCoder
    (None when that prior is not available); unused for bit-packed files.
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
    if version not in READABLE_VERSIONS:
        raise FormatError(f"{source}: unsupported format version {version} "
                          f"(this vqcodec reads versions {', '.join(map(str, READABLE_VERSIONS))}; "
                          f"{'upgrade vqcodec' if version > max(READABLE_VERSIONS) else 're-encode the audio'})")
    h = _header_v1(data, n, source) if version == 1 else _header_v2(data, n, source, version)
    crc_stored = struct.unpack_from("<I", data, n - _CRC)[0]
    crc = zlib.crc32(data[: n - _CRC]) & 0xFFFFFFFF
    if crc != crc_stored:
        raise FormatError(f"{source}: CRC mismatch (file is corrupt: stored {crc_stored:08x}, "
                          f"computed {crc:08x})")
    k, bits, num_tokens = h["k"], h["bits"], h["num_tokens"]
    if k < 2 or bits != int(k - 1).bit_length() or bits > _MAX_BITS:
        raise FormatError(f"{source}: inconsistent header (K={k} with {bits} bits per token)")
    if h["sample_rate"] == 0 or h["hop"] == 0:
        raise FormatError(f"{source}: inconsistent header (sample rate {h['sample_rate']}, hop {h['hop']})")
    if not (math.isfinite(h["gain"]) and h["gain"] >= 0):
        raise FormatError(f"{source}: inconsistent header (gain {h['gain']})")
    coding, prior, payload = h["coding"], h["prior"], h["payload"]
    if coding == PLAIN:
        if prior != _NO_PRIOR or h["chunk"] or h["batch"] or len(payload) != _payload_size(num_tokens, bits):
            raise FormatError(f"{source}: inconsistent header (bit-packed payload of {len(payload)} bytes "
                              f"for {num_tokens} tokens, or entropy-coding fields set)")
    elif coding == ENTROPY:
        from .entropy import min_bits_per_token

        if not (h["chunk"] and h["batch"]) or len(payload) % 4:
            raise FormatError(f"{source}: inconsistent header (entropy-coded payload of {len(payload)} "
                              f"bytes, chunk {h['chunk']}, batch {h['batch']})")
        # no token costs less than min_bits_per_token: refuses absurd counts before decoding
        if num_tokens > 2 * (8 * len(payload) + 64) / min_bits_per_token(k) + 1:
            raise FormatError(f"{source}: inconsistent header ({num_tokens} tokens cannot fit in an "
                              f"entropy-coded payload of {len(payload)} bytes)")
    else:
        raise FormatError(f"{source}: unknown payload coding {coding} (upgrade vqcodec)")
    try:
        speaker = h["speaker"].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{source}: speaker id is not valid UTF-8") from None
    model_id = h["model_id"].hex()
    if expect_model_id is not None and model_id != expect_model_id.lower():
        raise FormatError(f"{source}: made by model {model_id}, but the loaded model is "
                          f"{expect_model_id.lower()} (decode with the model that encoded it)")
    tf = TokenFile(tokens=np.zeros(0, dtype=np.int64), sample_rate=h["sample_rate"],
                   num_samples=h["num_samples"], hop=h["hop"], codebook_size=k, model_id=model_id,
                   speaker=speaker, gain=h["gain"], voice=np.frombuffer(h["voice"], dtype=np.uint8).copy(),
                   prior_id="" if coding == PLAIN else prior.hex(), version=version,
                   payload_bytes=len(payload), chunk=h["chunk"])
    if version == PITCH_VERSION:
        _read_pitch(tf, h, num_tokens, source)
    if coding == PLAIN:
        tokens = _unpack_checked(payload, bits, num_tokens, k, source, "payload", "token", f"the codebook (K={k})")
    else:
        coder = _coder(coder_for, tf.prior_id, source)
        tokens = coder.decode(payload, tf, num_tokens, h["chunk"], h["batch"], source=source)
    if h["token_crc"] is not None and _token_crc(tokens, bits) != h["token_crc"]:
        raise FormatError(f"{source}: token CRC mismatch: the payload decodes to other tokens than were "
                          "encoded" + (f" (prior {tf.prior_id} gives other probabilities here than "
                                       "where the file was written)" if coding == ENTROPY else ""))
    tf.tokens = tokens
    return tf


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


def _read_pitch(tf: TokenFile, h: dict, num_tokens: int, source: str) -> None:
    levels, every, median = h["pitch_levels"], h["pitch_every"], h["f0_median"]
    if levels < 3 or every < 1 or not (math.isfinite(median) and median >= 0):
        raise FormatError(f"{source}: inconsistent header (pitch levels {levels}, every {every}, "
                          f"median F0 {median})")
    values = _unpack_checked(h["pitch"], bits_per_token(levels), -(-num_tokens // every), levels, source,
                             "pitch stream", "pitch", f"[0, {levels})")
    tf.pitch, tf.pitch_levels, tf.pitch_every, tf.f0_median = values, levels, every, median


def _coder(coder_for, prior_id: str, source: str):
    """The EntropyCoder for prior_id from what from_bytes was given, or a FormatError."""
    from .entropy import EntropyCoder

    coder = coder_for
    if coder_for is not None and not isinstance(coder_for, EntropyCoder):
        coder = coder_for(prior_id)
    if coder is None or coder.prior_id != prior_id:
        raise FormatError(f"{source}: entropy-coded with prior {prior_id}, which is not available "
                          "(decode it with the prior it was written with)")
    return coder


def _header_v1(data: bytes, n: int, source: str) -> dict:
    if n < _PREFIX + _FIXED_V1.size + _CRC:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    (sample_rate, num_samples, hop, k, bits, num_tokens, mid, spk_len) = _FIXED_V1.unpack_from(data, _PREFIX)
    off = _PREFIX + _FIXED_V1.size
    payload_len = _payload_size(num_tokens, bits)
    _check_length(n, off + spk_len + payload_len + _CRC, source)
    return dict(sample_rate=sample_rate, num_samples=num_samples, hop=hop, k=k, bits=bits,
                num_tokens=num_tokens, model_id=mid, gain=1.0, coding=PLAIN, prior=_NO_PRIOR, chunk=0,
                batch=0, speaker=data[off:off + spk_len], voice=b"",
                payload=data[off + spk_len:off + spk_len + payload_len], token_crc=None)


def _header_v2(data: bytes, n: int, source: str, version: int = 2) -> dict:
    """Versions 2 and 3 (3: with the pitch block)."""
    extra = _PITCH.size if version == PITCH_VERSION else 0
    if n < _HEADER_MIN + extra + 2 * _CRC:
        raise FormatError(f"{source}: truncated ({n} bytes, shorter than the header)")
    (sample_rate, num_samples, hop, k, bits, num_tokens, mid, gain, coding, prior, chunk, batch,
     payload_len, spk_len, voice_len) = _FIXED.unpack_from(data, _PREFIX)
    pitch_levels = pitch_every = pitch_len = 0
    f0_median = 0.0
    if extra:
        pitch_levels, pitch_every, f0_median = _PITCH.unpack_from(data, _HEADER_MIN)
        if pitch_levels >= 3 and pitch_every >= 1:
            pitch_len = _payload_size(-(-num_tokens // pitch_every), bits_per_token(pitch_levels))
    off = _HEADER_MIN + extra
    _check_length(n, off + spk_len + voice_len + pitch_len + payload_len + 2 * _CRC, source)
    v = off + spk_len + voice_len
    p = v + pitch_len
    return dict(sample_rate=sample_rate, num_samples=num_samples, hop=hop, k=k, bits=bits,
                num_tokens=num_tokens, model_id=mid, gain=gain, coding=coding, prior=prior, chunk=chunk,
                batch=batch, speaker=data[off:off + spk_len], voice=data[off + spk_len:v],
                pitch_levels=pitch_levels, pitch_every=pitch_every, f0_median=f0_median, pitch=data[v:p],
                payload=data[p:p + payload_len], token_crc=struct.unpack_from("<I", data, p + payload_len)[0])


def _check_length(n: int, expected: int, source: str) -> None:
    if n < expected:
        raise FormatError(f"{source}: truncated ({n} bytes; the header announces {expected})")
    if n > expected:
        raise FormatError(f"{source}: {n - expected} unexpected trailing bytes after the data")


# --------------------------------------------------------------------------- files
def write(path: str | os.PathLike, tf: TokenFile, force: bool = True,
          coder: "EntropyCoder | None" = None) -> Path:
    """Write `tf` to `path` atomically (temporary file, then rename); entropy-coded with `coder`."""
    data = to_bytes(tf, coder=coder)
    path = Path(path)
    with atomic_path(path, force=force) as tmp:
        tmp.write_bytes(data)
    return path


def read(path: str | os.PathLike, expect_model_id: str | None = None, coder_for: "CoderFor" = None) -> TokenFile:
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
    return from_bytes(data, expect_model_id=expect_model_id, source=str(path), coder_for=coder_for)


def describe(tf: TokenFile) -> dict:
    """A flat, JSON-able summary of a token file (what `vqcodec info` prints).

    bitrate_bps: payload bits per second as stored (bit-packed: bits_per_token * tokens/s);
    total_bitrate_bps adds the per-file side information (gain, voice vector) spread over the
    file's duration; file_bitrate_bps is the whole file (headers and CRCs too)."""
    bits = tf.bits_per_token
    plain = _payload_size(tf.num_tokens, bits)
    entropy = bool(tf.prior_id)
    payload = tf.payload_bytes if entropy and tf.payload_bytes is not None else plain
    v1 = tf.version == 1
    pitch_bytes = _payload_size(tf.pitch.size, bits_per_token(tf.pitch_levels)) if tf.pitch_levels else 0
    total = ((_PREFIX + _FIXED_V1.size + _CRC) if v1 else (_HEADER_MIN + tf.voice.size + 2 * _CRC)) \
        + len(tf.speaker.encode("utf-8")) + payload + (_PITCH.size + pitch_bytes if tf.pitch_levels else 0)
    used = int(np.unique(tf.tokens).size) if tf.num_tokens else 0
    stored = payload * 8 / tf.num_tokens if entropy and tf.num_tokens else float(bits)
    rate = stored * tf.tokens_per_s
    side_bits = 0 if v1 else 32 + 8 * tf.voice.size  # gain float32 + voice
    if tf.pitch_levels:
        side_bits += 32 + 8 * pitch_bytes             # median F0 float32 + the pitch stream
    duration = tf.duration_s
    return {
        "format_version": tf.version,
        "model_id": tf.model_id,
        "speaker": tf.speaker,
        "sample_rate": tf.sample_rate,
        "num_samples": tf.num_samples,
        "duration_s": round(duration, 4),
        "hop": tf.hop,
        "codebook_size": tf.codebook_size,
        "gain": tf.gain,
        "voice_bits": 8 * tf.voice.size,
        "pitch_bps": round(8 * pitch_bytes / duration, 3) if tf.pitch_levels and duration else 0.0,
        "f0_median_hz": round(tf.f0_median, 2),
        "payload_coding": f"entropy (prior {tf.prior_id}, chunks of {tf.chunk} tokens)" if entropy else "bit-packed",
        "bits_per_token": bits,
        "stored_bits_per_token": round(stored, 4),
        "num_tokens": tf.num_tokens,
        "tokens_per_s": round(tf.tokens_per_s, 3),
        "bitrate_bps": round(rate, 3),
        "payload_kbps": round(rate / 1000, 4),
        "saving_vs_packed": round(1 - payload / plain, 4) if plain else 0.0,
        "total_bitrate_bps": round(rate + (side_bits / duration if duration else 0.0), 3),
        "file_bitrate_bps": round(total * 8 / duration, 3) if duration else 0.0,
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
           "pack_bits", "unpack_bits", "MAGIC", "VERSION", "PITCH_VERSION", "READABLE_VERSIONS", "SUFFIX"]
