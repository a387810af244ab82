"""Speed of `vqcodec analyze phonemes`, MFCC k-means baseline included (issue 11: 1 h of speech in
under 2 minutes on 2 cores).

Two parts, both in one run:

1. The k-means itself, old against new on the same MFCC frames of the corpus (K = 512, the
   shipped model's codebook size): scipy's `kmeans2(minit="++", iter=20)` (what the baseline used
   before) and `analysis.baseline.fit_mfcc_kmeans` (scikit-learn MiniBatchKMeans). The old one is
   run on `--old-frames` frames only (its k-means++ seeding is a Python loop; on the full 100,000
   frames it ran for many minutes), the new one on the same frames and on 100,000.
2. The whole command, process start to exit, on DATA (`python -m vqcodec analyze phonemes DATA -q`),
   and with `--compare` also with `--no-baseline` and with `--no-ze-kmeans` (the differences are
   what the MFCC baseline and the k-means on the encoder outputs cost).

Wall seconds and CPU seconds (user + system) are both printed: on a machine shared with other work
the wall time says more about the neighbours than about vqcodec, while the CPU time is close to
what the (mostly single-threaded) work takes on an idle machine.

    python bench/analysis_speed.py                          # data/synth/bench_1h, shipped model
    python bench/analysis_speed.py --data data/synth/eval_us3 --kmeans-only
    vqcodec corpus synth data/synth/bench_1h --hours 1      # the 1 h test corpus (mbrola)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import cpu_children, load_avg

ROOT = Path(__file__).resolve().parent.parent


def kmeans_part(files: list[Path], k: int, old_frames: int, seed: int = 0) -> None:
    from scipy.cluster.vq import kmeans2

    from vqcodec.analysis.baseline import fit_mfcc_kmeans, mfcc_frames
    from vqcodec.audio import load

    feats, n = [], 0
    t, c = time.perf_counter(), time.process_time()
    for f in files:
        feats.append(mfcc_frames(load(f, 16000), 16000, 64))
        n += len(feats[-1])
        if n >= 100_000:
            break
    feats = np.concatenate(feats)
    t_mfcc, c_mfcc = time.perf_counter() - t, time.process_time() - c
    rng = np.random.default_rng(seed)
    small = feats[rng.choice(len(feats), min(old_frames, len(feats)), replace=False)]
    print(f"\n## k-means, K={k} (loading audio and MFCC frames of {len(feats):,} frames: {t_mfcc:.1f} s wall, "
          f"{c_mfcc:.1f} s CPU)\n")
    print("| k-means | frames | fit wall s | fit CPU s | CPU vs old |\n|---|---:|---:|---:|---:|")
    t, c = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kmeans2(small, k, iter=20, minit="++", seed=np.random.default_rng(seed), check_finite=False)
    t_old, c_old = time.perf_counter() - t, time.process_time() - c
    print(f"| scipy kmeans2 ++, 20 iterations (old) | {len(small):,} | {t_old:.1f} | {c_old:.1f} | 1.0x |")
    t, c = time.perf_counter(), time.process_time()
    fit_mfcc_kmeans([], 16000, 64, k, seed=seed, feats=small)
    t_new, c_new = time.perf_counter() - t, time.process_time() - c
    print(f"| MiniBatchKMeans (new) | {len(small):,} | {t_new:.1f} | {c_new:.1f} | {c_old / c_new:.0f}x less |")
    t, c = time.perf_counter(), time.process_time()
    km = fit_mfcc_kmeans([], 16000, 64, k, seed=seed, feats=feats)
    t_full, c_full = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    km.encode_features(feats)
    t_enc, c_enc = time.perf_counter() - t, time.process_time() - c
    print(f"| MiniBatchKMeans (new) | {len(feats):,} | {t_full:.1f} | {c_full:.1f} | - |")
    print(f"\nassigning {len(feats):,} frames to the nearest of {k} centroids: {t_enc:.2f} s wall, "
          f"{c_enc:.2f} s CPU")


def whole_part(data: Path, model: str | None, compare: bool) -> None:
    cmd = [sys.executable, "-m", "vqcodec", "analyze", "phonemes", str(data), "-q"]
    if model:
        cmd += ["--model", model]
    print("\n## whole command (process start to exit)\n")
    print("| command | wall s | CPU s |\n|---|---:|---:|")
    times = {}
    runs = [("with the MFCC k-means baseline", [])]
    if compare:  # what the baseline costs, and what the z_e k-means (issue 14) adds on top
        runs += [("--no-baseline", ["--no-baseline"]), ("--no-ze-kmeans", ["--no-ze-kmeans"])]
    with tempfile.TemporaryDirectory(prefix="vqcodec-analysis-bench-") as d:
        for label, extra in runs:
            t, c = time.perf_counter(), cpu_children()
            r = subprocess.run(cmd + ["-o", str(Path(d) / label.replace(" ", "_"))] + extra,
                               capture_output=True, text=True)
            times[label] = (time.perf_counter() - t, cpu_children() - c)
            if r.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
            print(f"| `vqcodec analyze phonemes {data} -q {' '.join(extra)}` ({label}) | "
                  f"{times[label][0]:.1f} | {times[label][1]:.1f} |", flush=True)
    if compare:
        base = [a - b for a, b in zip(times["with the MFCC k-means baseline"], times["--no-baseline"])]
        ze = [a - b for a, b in zip(times["with the MFCC k-means baseline"], times["--no-ze-kmeans"])]
        print(f"\nthe baseline adds {base[0]:.1f} s wall, {base[1]:.1f} s CPU; "
              f"the z_e k-means adds {ze[0]:.1f} s wall, {ze[1]:.1f} s CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data" / "synth" / "bench_1h"))
    ap.add_argument("--model", default=None, help="passed to the command as --model")
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--old-frames", type=int, default=5000)
    ap.add_argument("--kmeans-only", action="store_true")
    ap.add_argument("--compare", action="store_true", help="also run the command with --no-baseline")
    args = ap.parse_args()
    data = Path(args.data)
    from vqcodec.files import walk  # dot-files skipped

    files = walk(data, (".wav",))
    if not files:
        raise SystemExit(f"{data}: no .wav files (make them: vqcodec corpus synth {data} --hours 1)")
    hours = sum(sf.info(f).duration for f in files) / 3600
    sys.stdout.reconfigure(line_buffering=True)
    print(f"# {data}: {len(files)} files, {hours:.2f} h; {os.cpu_count()} cpus; load average at start {load_avg()}")
    kmeans_part(files, args.k, args.old_frames)
    if not args.kmeans_only:
        whole_part(data, args.model, args.compare)
    print(f"\nload average at end {load_avg()}")


if __name__ == "__main__":
    main()
