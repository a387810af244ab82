"""Entropy-coded .vqc files: coding speed and the bitrate they reach with the shipped prior.

    python bench/entropy_speed.py                          # ~2 minutes on 2 busy cores
    python bench/entropy_speed.py --quick                  # fewer lengths, one repeat
    python bench/entropy_speed.py --corpus data/synth/eval_us3 --corpus data/synth/eval_text
    python bench/entropy_speed.py --skip-size --lengths 3.5,10 --chunks 64,128,256   # speed only
    python bench/entropy_speed.py --model vqcodec-real-lowrate --prior vqcodec-real-lowrate-prior --corpus data/real_eval/eval_en

Speed: tokens of real speech (the shipped example and the corpora, concatenated and cut to 3.5 s,
10 s, 60 s and 300 s files) coded with the shipped prior (`default-prior`) by
`codes.to_bytes(tf, coder=...)` and read back by `codes.from_bytes(..., coder_for=...)`: tokens/s
and x real time (the model's tokens/s of audio), against plain bit-packing of the same tokens measured in
the same process (the baseline row). Each row is the best of --repeats runs. Chunk lengths 64 /
128 (the default, `entropy.CHUNK`) / 256 show the speed / size trade-off: a chunk starts from an
empty prior state, so shorter chunks give more parallel streams but cost bits at each start.

Size: every wav of each --corpus (default: data/synth/eval_us3 if present, else
pretrained/examples) encoded with the shipped model, entropy-coded with the shipped prior, and
checked to decode to the same tokens: stored bits/token (per value: a ladder model's frames hold one
value per codebook, the first entropy-coded, the others packed), and what `vqcodec info` reports, bits stored
per second of audio: tokens kbps (the content stream), whole-file kbps (headers, voice, pitch
stream if any, CRCs), the same for bit-packed files, and the savings against them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vqcodec import codes  # noqa: E402
from vqcodec.api import load_model, load_prior  # noqa: E402
from vqcodec.entropy import CHUNK, EntropyCoder  # noqa: E402


def encode_dir(codec, folder: Path) -> list[tuple[str, codes.TokenFile]]:
    out = []
    from vqcodec.files import walk  # dot-files skipped

    for wav in walk(folder, (".wav",)):
        speaker = wav.parent.name if wav.parent.name in codec.speakers else ""
        out.append((str(wav.relative_to(folder)), codec.encode_file_utterance(wav, speaker=speaker)))
    return out


def best_time(fn, repeats: int) -> float:
    """Best wall time of `repeats` runs; the CPU time of that run goes to CPU[0] (the coder runs
    at one thread, so tokens per CPU-second is its speed on an idle core, whatever the load)."""
    best = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, CPU[0] = wall, time.process_time() - c
    return best


CPU = [0.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", help="Folder of wavs for the size table (repeatable).")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--lengths", help="Comma-separated file lengths in seconds for the speed table "
                                      "(default 3.5,10,60,300; --quick 3.5,10,60).")
    ap.add_argument("--chunks", help="Comma-separated chunk lengths (default 64,128,256; --quick 128).")
    ap.add_argument("--skip-size", action="store_true", help="Only the speed table.")
    ap.add_argument("--skip-speed", action="store_true", help="Only the size table.")
    ap.add_argument("--model", default="default", help="the codec (default: the shipped default)")
    ap.add_argument("--prior", default="default-prior", help="its prior (default: the shipped default prior)")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    corpora = [Path(c) for c in args.corpus] if args.corpus else (
        [ROOT / "data/synth/eval_us3"] if (ROOT / "data/synth/eval_us3").is_dir() else [ROOT / "pretrained/examples"])

    codec = load_model(args.model)
    prior = load_prior(args.prior)
    prior.check_compatible(codec)
    print(f"# torch {torch.__version__}, caller threads {torch.get_num_threads()}, {os.cpu_count()} cpus; "
          f"prior {prior.source}; load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    sets = {} if args.skip_size else {
        str(c.relative_to(ROOT) if c.is_relative_to(ROOT) else c): encode_dir(codec, c) for c in corpora}
    example = encode_dir(codec, ROOT / "pretrained/examples")

    # ------------------------------------------------------------------ size
    if sets:
        print("\n| corpus | files | audio s | stored bits/token | tokens kbps | whole file kbps | plain whole file kbps | "
              "tokens saving | whole file saving | exact |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    coder = EntropyCoder.from_prior(prior)
    for name, files in sets.items():
        content = file_bytes = plain_bytes = tokens = 0
        seconds = 0.0
        exact = True
        for _, tf in files:  # kbps as `vqcodec info` counts them: bytes stored per second of audio
            data = codes.to_bytes(tf, coder=coder)
            back = codes.from_bytes(data, coder_for=coder)
            exact &= back == tf
            content += codes.describe(back)["content_bytes"]
            file_bytes += len(data)
            plain_bytes += len(codes.to_bytes(tf))
            tokens += tf.num_tokens * tf.codebooks  # values: a ladder file's frames hold several codebooks
            seconds += tf.duration_s
        print(f"| {name} | {len(files)} | {seconds:.1f} | {content * 8 / tokens:.3f} | "
              f"{content * 8 / seconds / 1000:.3f} | {file_bytes * 8 / seconds / 1000:.3f} | "
              f"{plain_bytes * 8 / seconds / 1000:.3f} | {1 - content * 8 / (tokens * codec.bits_per_token):.1%} | "
              f"{1 - file_bytes / plain_bytes:.1%} | {'yes' if exact else 'NO'} |")
    if args.skip_speed:
        return

    # ------------------------------------------------------------------ speed
    pool = np.concatenate([tf.tokens for files in [example] + list(sets.values()) for _, tf in files])
    lengths = [3.5, 10.0, 60.0] if args.quick else [3.5, 10.0, 60.0, 300.0]
    chunks = [CHUNK] if args.quick else [64, CHUNK, 256]
    if args.lengths:
        lengths = [float(x) for x in args.lengths.split(",")]
    if args.chunks:
        chunks = [int(x) for x in args.chunks.split(",")]
    print("\n| file | chunk | encode tokens/s | x real time | decode tokens/s | x real time | "
          "decode tokens/CPU-s | bits/token | decode time / plain unpack time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seconds in lengths:
        rate = codec.sample_rate / codec.hop
        n = int(seconds * rate)
        tokens = np.resize(pool, n)
        tf = codes.TokenFile(tokens, codec.sample_rate, n * codec.hop, codec.hop, codec.codebook_size,
                             codec.model_id, "")
        plain = codes.to_bytes(tf)
        t_plain = best_time(lambda: codes.from_bytes(plain), max(repeats, 3))
        print(f"| {seconds:g} s | plain packing (baseline) | {n / best_time(lambda: codes.to_bytes(tf), 3):,.0f} | | "
              f"{n / t_plain:,.0f} | {n / t_plain / rate:,.0f} | | {codec.bits_per_token} | 1 |")
        for chunk in chunks:
            c = EntropyCoder.from_prior(prior, chunk=chunk)
            data = codes.to_bytes(tf, coder=c)
            t_enc = best_time(lambda: codes.to_bytes(tf, coder=c), repeats)
            t_dec = best_time(lambda: codes.from_bytes(data, coder_for=c), repeats)
            cpu_dec = CPU[0]
            assert codes.from_bytes(data, coder_for=c) == tf
            bits = codes.describe(codes.from_bytes(data, coder_for=c))["stored_bits_per_token"]
            print(f"| {seconds:g} s | {chunk} | {n / t_enc:,.0f} | {n / t_enc / rate:.1f} | {n / t_dec:,.0f} | "
                  f"{n / t_dec / rate:.1f} | {n / cpu_dec:,.0f} | {bits:.3f} | {t_dec / t_plain:,.0f}x |")
    print(f"\n# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
