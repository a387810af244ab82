"""Reference ceilings for a decoder that predicts spectra: Griffin-Lim from the true |STFT| (hop 64,
n_fft 512) and from an 80-band mel of it, scored with eval's own metrics at lag 0.

    python bench/ceilings.py data/real_eval/eval_en --limit 12

What it says: with frames as overlapped as the token rate (hop 64), phase is recoverable from
magnitudes, so a decoder that predicts the spectrum well has room for PESQ-WB ~4 and STOI ~1;
from a mel envelope alone, PESQ-WB drops to ~2 while STOI stays high.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import librosa

    from vqcodec import audio
    from vqcodec.evaluation.metrics import mel_distance, pesq_wb, stoi

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--iters", type=int, default=64)
    args = ap.parse_args()
    from vqcodec.files import walk  # dot-files skipped

    files = walk(args.folder, (".wav",))[:args.limit]
    print(f"load {os.getloadavg()[0]:.2f}; {len(files)} files of {args.folder}; Griffin-Lim {args.iters} iterations")
    rows = {"|STFT| n_fft 512 hop 64": [], "80-band mel of it": []}
    t0 = time.time()
    for f in files:
        x = audio.load(f, 16000)
        S = np.abs(librosa.stft(x, n_fft=512, hop_length=64))
        y1 = librosa.griffinlim(S, n_iter=args.iters, hop_length=64, n_fft=512, length=len(x), random_state=0)
        M = librosa.feature.melspectrogram(S=S ** 2, sr=16000, n_fft=512, n_mels=80)
        S2 = librosa.feature.inverse.mel_to_stft(M, sr=16000, n_fft=512) ** 0.5
        y2 = librosa.griffinlim(S2, n_iter=args.iters, hop_length=64, n_fft=512, length=len(x), random_state=0)
        for key, y in zip(rows, (y1, y2)):
            rows[key].append((pesq_wb(x, y), stoi(x, y), mel_distance(x, y)))
    print(f"{'reconstruction':28s} {'PESQ-WB':>8s} {'STOI':>6s} {'mel':>6s}")
    for key, vals in rows.items():
        a = np.array(vals)
        print(f"{key:28s} {a[:, 0].mean():8.2f} {a[:, 1].mean():6.3f} {a[:, 2].mean():6.3f}")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
