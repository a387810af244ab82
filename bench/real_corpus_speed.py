"""Speed of `vqcodec corpus real` per source file, and why silence splitting is numpy, not librosa.

    python bench/real_corpus_speed.py --deb-dir data/debs [--package tuxpaint-stamps-default] [--files 300]

1. First call of the silence splitter in a fresh process (what every worker pays once):
   librosa.effects.split (numba compile) against vqcodec.data.real.nonsilent_intervals.
2. Steady-state seconds per source file of `process_item` (decode, mono, soxr to 16 kHz, split,
   band check), with the numpy splitter and with librosa's, on the same files; both give the same
   intervals (checked here on every file).
Ratios are to the baseline measured in the same run, so they hold on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vqcodec.audio import resample
from vqcodec.data import real

FRESH = {
    "librosa.effects.split": "import numpy as np, librosa; librosa.effects.split(np.random.randn(16000).astype('float32'), "
                             "top_db=40, frame_length=1024, hop_length=256)",
    "real.nonsilent_intervals": "import numpy as np; from vqcodec.data import real; "
                                "real.nonsilent_intervals(np.random.randn(16000).astype('float32'))",
}


def fresh_first_call(code: str) -> float:
    """Seconds for the call alone in a fresh interpreter (imports timed separately and subtracted)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    total = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code.rsplit("; ", 1)[0]], check=True)
    return total - (time.perf_counter() - t)


def librosa_intervals(wav, top_db=real.TOP_DB, frame=1024, hop=256):
    import librosa
    return librosa.effects.split(wav, top_db=top_db, frame_length=frame, hop_length=hop)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deb-dir", default="data/debs")
    ap.add_argument("--package", default="tuxpaint-stamps-default")
    ap.add_argument("--files", type=int, default=300)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; cores {os.cpu_count()}")

    print("\n1. first call in a fresh process (import excluded)")
    first = {name: fresh_first_call(code) for name, code in FRESH.items()}
    base = first["librosa.effects.split"]
    for name, s in first.items():
        print(f"  {name:28s} {s:8.3f} s   x{base / max(s, 1e-6):,.0f} faster than librosa")

    with tempfile.TemporaryDirectory() as tmp:
        deb = real._deb_for(args.package, Path(args.deb_dir), print)
        real._unpack(deb, Path(tmp) / "pkg")
        items = real.SOURCES[args.package].finder(Path(tmp) / "pkg", {})[: args.files]
        librosa_intervals(np.zeros(2048, np.float32) + 0.1)        # compile outside the timing
        real.process_item(items[0])
        times, same = {}, 0
        for name, fn in (("librosa.effects.split", librosa_intervals), ("real.nonsilent_intervals", real.nonsilent_intervals)):
            keep = real.nonsilent_intervals
            real.nonsilent_intervals = fn
            try:
                t = time.perf_counter()
                for it in items:
                    real.process_item(it)
                times[name] = (time.perf_counter() - t) / len(items)
            finally:
                real.nonsilent_intervals = keep
        for it in items:
            raw, sr = real._decode(it.path)
            w = resample(np.ascontiguousarray(raw.mean(1), dtype=np.float32), sr, 16000)
            same += np.array_equal(real.nonsilent_intervals(w), librosa_intervals(w))
    print(f"\n2. process_item per source file, {len(items)} files of {args.package} (1 process)")
    for name, s in times.items():
        print(f"  {name:28s} {1000 * s:8.2f} ms/file   ratio to librosa {s / times['librosa.effects.split']:.2f}")
    print(f"  identical intervals on {same}/{len(items)} files")


if __name__ == "__main__":
    main()
