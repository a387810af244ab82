"""How long, and how much memory, reading crafted .vqc files takes (issue 21 item 1).

    python bench/crafted_files.py            # ~1 minute on a busy 2-core machine

Each file is a genuine one with header fields edited and the CRC recomputed, as a hostile file
would be: a 262 KB random entropy-coded payload with the token count at the format's bound
(`codes.MAX_VALUES_PER_BYTE` per byte; once as a version-4 file, once in the version-2 layout the
issue found), and a short real entropy-coded file (the first 2.5 s of the shipped example, default
model and prior) with chunk / batch set to 1 or their maximum and the count at the bound (or one
chunk's worth). Each is read with the shipped prior
already loaded (as `vqcodec info` does); the table gives the error, the wall time, the time per KB
of file, the prior steps taken, and the peak of Python-traced memory (numpy and torch CPU
allocations included) during the read. The reader's bounds are structural (tests/test_container.py);
these figures say what they cost on this machine.
"""
from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vqcodec import audio, codes, entropy  # noqa: E402
from vqcodec.api import coder_for_priors, load_model  # noqa: E402
from vqcodec.errors import FormatError  # noqa: E402
from vqc_files import edited, recrc, stream, v2_bytes  # noqa: E402


def main() -> None:
    codec = load_model("default")
    lookup = coder_for_priors("default-prior")
    wav = audio.load(ROOT / "pretrained/examples/example.wav", codec.sample_rate)[: int(2.5 * codec.sample_rate)]
    tf = codec.encode_utterance(wav, codec.sample_rate)
    coder = _coder_of(lookup, codec)
    genuine = codes.to_bytes(tf, coder=coder)
    payload = stream(genuine, "content").data

    def at_bound(nbytes: int) -> int:  # the most tokens the format lets nbytes of payload claim
        return codes.MAX_VALUES_PER_BYTE * (nbytes + 8)

    rand = np.random.default_rng(0).integers(0, 2 ** 32, 65536, dtype=np.uint32).tobytes()
    v2 = bytearray(v2_bytes(tf, coder=coder)[:-8])
    start = len(v2) - len(payload)
    v2[26:34] = at_bound(len(rand)).to_bytes(8, "little")
    v2[59:67] = len(rand).to_bytes(8, "little")
    v2_random = recrc(bytes(v2[:start]) + rand + bytes(4))
    cases = [("genuine 2.5 s file", genuine),
             ("262 KB random payload, count at the bound (v4)",
              edited(genuine, content={"count": at_bound(len(rand)), "data": rand})),
             ("262 KB random payload, count at the bound (v2 layout)", v2_random)]
    for chunk, batch, count in ((1, 1, None), (1, codes.MAX_BATCH, None), (codes.MAX_CHUNK, 1, None),
                                (codes.MAX_CHUNK, 1, codes.MAX_CHUNK), (codes.MAX_CHUNK, codes.MAX_BATCH, None),
                                (128, 64, None)):
        count = count or at_bound(len(payload))
        cases.append((f"2.5 s file, chunk {chunk}, batch {batch}, count {count}",
                      edited(genuine, content={"count": count, "chunk": chunk, "batch": batch})))
    load = os.getloadavg()
    print(f"# {os.cpu_count()} cpus, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; prior {coder.prior_id}")
    print("\n| file | bytes | result | seconds | s per KB | prior steps | peak traced MB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    steps = _count_steps(coder)
    for name, data in cases:
        steps[0] = 0
        tracemalloc.start()
        t = time.perf_counter()
        try:
            codes.from_bytes(data, coder_for=lookup)
            result = "read"
        except FormatError as e:
            result = str(e).split(": ", 1)[1][:70]
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        print(f"| {name} | {len(data):,} | {result} | {seconds:.3f} | {seconds / (len(data) / 1024):.4f} | "
              f"{steps[0]:,} | {peak:.1f} |")
    print(f"\n# load after: {os.getloadavg()[0]:.2f}")


def _coder_of(lookup, codec):
    """The shipped default prior's coder (what decode / info would find by the file's prior id)."""
    from vqcodec.api import load_prior
    from vqcodec.entropy import EntropyCoder

    coder = EntropyCoder.from_prior(load_prior("default-prior"))
    return lookup(coder.prior_id)


def _count_steps(coder) -> list[int]:
    """Count the prior's steps (a wrapper on its net's `step`)."""
    count = [0]
    step = coder.net.step

    def counted(state):
        count[0] += 1
        return step(state)
    coder.net.step = counted
    return count


if __name__ == "__main__":
    main()
