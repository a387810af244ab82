"""Whole-command times of the `vqcodec` CLI: start-up, and encode / decode of 3.5 s, 10 s and 60 s files.

What a user waits for, process start to exit: interpreter start, imports, model load, the work,
writing the file. Each command runs as `python -m vqcodec ...` (the installed `vqcodec` script,
or a pyenv shim in front of it, adds its own start-up on top) `--repeats` times; the best is kept.

Baselines measured in the same run: `python -c pass` (the floor any command pays) and
`python -c "import torch"` (what every command paid before torch was imported lazily). For
decode, the real-time factor the command itself prints (decoding only, model loaded) is shown
next to the whole-command one.

    python bench/cli_times.py                               # shipped model
    python bench/cli_times.py --model pretrained/x.pt --decoder fast --repeats 3
    python bench/cli_times.py --startup-only

The test audio: pretrained/examples/example.wav (3.5 s) and that file repeated with 0.3 s of
silence between copies, cut to 10 s and 60 s.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import cpu_children, load_avg

ROOT = Path(__file__).resolve().parent.parent
PY = [sys.executable]
CLI = PY + ["-m", "vqcodec"]


def timed(cmd: list[str], repeats: int, expect_rc: int = 0) -> tuple[float, str, float]:
    """(best wall seconds of `repeats` runs, output of the last run, CPU seconds (user + system) of
    the run with the least CPU). On a shared machine the wall time mostly measures the neighbours;
    the CPU time is near what the work takes on an idle one."""
    best, out, cpu = float("inf"), "", float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), cpu_children()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt, dc = time.perf_counter() - t, cpu_children() - c
        if r.returncode != expect_rc:
            raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        best, out, cpu = min(best, dt), r.stdout + r.stderr, min(cpu, dc)
    return best, out, cpu


def make_audio(tmp: Path, seconds: float) -> Path:
    wav, sr = sf.read(ROOT / "pretrained" / "examples" / "example.wav", dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    n = int(round(seconds * sr))
    if abs(n - len(wav)) > sr // 10:
        gap = np.zeros(int(0.3 * sr), np.float32)
        reps = int(np.ceil(n / (len(wav) + len(gap))))
        wav = np.concatenate([np.concatenate([wav, gap]) for _ in range(reps)])[:n]
    path = tmp / f"speech_{seconds:g}s.wav"
    sf.write(path, wav, sr, subtype="PCM_16")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="passed to the commands as --model (default: the CLI's)")
    ap.add_argument("--decoder", default=None, help="passed to decode as --decoder, if the CLI has it")
    ap.add_argument("--lengths", default="3.5,10,60", help="seconds of audio, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--startup-only", action="store_true")
    args = ap.parse_args()
    model = ["--model", args.model] if args.model else []
    decoder = ["--decoder", args.decoder] if args.decoder else []

    import torch

    sys.stdout.reconfigure(line_buffering=True)
    print(f"# {sys.executable} -m vqcodec; torch {torch.__version__}; {os.cpu_count()} cpus; "
          f"load average at start {load_avg()}")
    with tempfile.TemporaryDirectory(prefix="vqcodec-cli-times-") as d:
        tmp = Path(d)
        short = make_audio(tmp, 3.5)
        subprocess.run(CLI + ["encode", str(short), "-o", str(tmp / "x.vqc")] + model, check=True,
                       capture_output=True)
        (tmp / "notes.wav").write_text("not audio\n")

        print("\n## start-up (best of %d, seconds, process start to exit)\n" % args.repeats)
        print("| command | wall s | CPU s | CPU vs `python -c pass` |\n|---|---:|---:|---:|")
        _, _, floor = timed(PY + ["-c", "pass"], args.repeats)
        rows = [("python -c pass", PY + ["-c", "pass"], 0),
                ('python -c "import torch" (the old floor)', PY + ["-c", "import torch"], 0),
                ("vqcodec --help", CLI + ["--help"], 0),
                ("vqcodec --version", CLI + ["--version"], 0),
                ("vqcodec info x.vqc", CLI + ["info", str(tmp / "x.vqc")], 0),
                ("vqcodec speakers", CLI + ["speakers"] + model, 0),
                ("vqcodec encode notes.wav (text file: refused)", CLI + ["encode", str(tmp / "notes.wav")] + model, 1)]
        for name, cmd, rc in rows:
            t, _, c = timed(cmd, args.repeats, rc)
            print(f"| `{name}` | {t:.3f} | {c:.3f} | {c / floor:.1f}x |", flush=True)
        if args.startup_only:
            print(f"\nload average at end {load_avg()}")
            return

        print("\n## whole-command encode / decode (best of %d)\n" % args.repeats)
        print("| file | encode wall s | encode CPU s | decode wall s | decode CPU s | decode RTF, whole "
              "command (wall) | decode RTF, whole command (CPU) | decode RTF printed (decoding only, wall) |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|")
        for seconds in [float(x) for x in args.lengths.split(",")]:
            wav = short if seconds == 3.5 else make_audio(tmp, seconds)
            dur = sf.info(wav).duration
            vqc, out = tmp / f"{wav.stem}.vqc", tmp / f"{wav.stem}.out.wav"
            t_enc, _, c_enc = timed(CLI + ["encode", str(wav), "-o", str(vqc), "-f"] + model, args.repeats)
            t_dec, text, c_dec = timed(CLI + ["decode", str(vqc), "-o", str(out), "-f"] + model + decoder,
                                       args.repeats)
            printed = re.search(r"real-time factor ([0-9.]+)", text)
            print(f"| {dur:.1f} s | {t_enc:.2f} | {c_enc:.2f} | {t_dec:.2f} | {c_dec:.2f} | {t_dec / dur:.3f} | "
                  f"{c_dec / dur:.3f} | {printed.group(1) if printed else '-'} |", flush=True)
    print(f"\nload average at end {load_avg()}")


if __name__ == "__main__":
    main()
