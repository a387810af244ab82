""".vqc bytes for tests: writers of the legacy versions 1-3 (vqcodec writes version 4 and reads all;
the layouts of vqcodec/codes.py's `_read_v1` / `_read_v2`, as the 02b11ca writer produced them;
tests/fixtures/vqc holds files it wrote), and `edited`: a version-4 file with header or stream fields
changed and a valid CRC, as a crafted file would be."""
from __future__ import annotations

import dataclasses
import struct
import zlib

from vqcodec import codes
from vqcodec.codes import TokenFile


def recrc(body: bytes) -> bytes:
    """body + a valid CRC32: a file whose damage lies past the CRC check."""
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def v1_bytes(tf: TokenFile) -> bytes:
    bits = codes.bits_per_token(tf.codebook_size)
    speaker = tf.speaker.encode()
    return recrc(codes.MAGIC + bytes([1]) + codes._FIXED_V1.pack(
        tf.sample_rate, tf.num_samples, tf.hop, tf.codebook_size, bits, tf.num_tokens,
        bytes.fromhex(tf.model_id), len(speaker)) + speaker + codes.pack_bits(tf.tokens, bits))


def v2_bytes(tf: TokenFile, coder=None) -> bytes:
    """Version 2, or version 3 when tf has a pitch stream; entropy-coded with `coder` if given."""
    bits = codes.bits_per_token(tf.codebook_size)
    speaker, voice = tf.speaker.encode(), tf.voice.tobytes()
    if coder is None:
        coding, prior, chunk, batch, payload = 0, bytes(8), 0, 0, codes.pack_bits(tf.tokens, bits)
    else:
        coding, prior, chunk, batch = 1, bytes.fromhex(coder.prior_id), coder.chunk, coder.batch
        payload = coder.encode(tf)
    head = codes.MAGIC + bytes([3 if tf.pitch_levels else 2]) + codes._FIXED_V2.pack(
        tf.sample_rate, tf.num_samples, tf.hop, tf.codebook_size, bits, tf.num_tokens,
        bytes.fromhex(tf.model_id), tf.gain, coding, prior, chunk, batch, len(payload), len(speaker), len(voice))
    pitch = b""
    if tf.pitch_levels:
        head += codes._PITCH_V3.pack(tf.pitch_levels, tf.pitch_every, tf.f0_median)
        pitch = codes.pack_bits(tf.pitch, codes.bits_per_token(tf.pitch_levels))
    return recrc(head + speaker + voice + pitch + payload
                 + struct.pack("<I", codes._token_crc(tf.tokens, bits)))


def edited(data: bytes, head: dict | None = None, **streams) -> bytes:
    """`data` (version 4) with header fields (`head`: sample_rate, num_samples, hop, model_id,
    speaker) and stream fields (content={"count": ...}, gain={"params": ...}; kind, coding, k,
    count, params, data, prior, chunk, batch, crc) replaced, CRC recomputed."""
    _, h, parsed = codes._parse(data, "test")
    h.update(head or {})
    by_name = {codes.STREAM_NAMES[s.kind]: s for s in parsed}
    for name, changes in streams.items():
        by_name[name].__dict__.update(changes)
        if by_name[name].crc is None:  # made entropy-coded: it needs a values CRC
            by_name[name].crc = 0
    return codes._assemble(h, [dataclasses.replace(s) for s in parsed])


def stream(data: bytes, name: str):
    """The parsed stream `name` of a version-4 file (its fields as stored)."""
    return {codes.STREAM_NAMES[s.kind]: s for s in codes._parse(data, "test")[2]}[name]
