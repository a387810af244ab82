"""The v2 codec's speed, memory and seams: encode and fast decode against the WaveNet decoder on the
same tokens, measured in this one process.

    python bench/fast_codec_speed.py                    # random init of recipes/real/config.toml, ~2 min
    python bench/fast_codec_speed.py --model pretrained/vqcodec-real-v2.pt --seams data/real_eval/eval_en
    python bench/fast_codec_speed.py --memory           # also peak RSS of a 1 h encode / decode (subprocesses)
    python bench/fast_codec_speed.py --model pretrained/vqcodec-real-lowrate.pt --baseline pretrained/vqcodec-real-v2.pt
                                                        # the same rows for both, and the ratio per row

Rows (60 s of noise-and-tone audio at 16 kHz, whole file in one API call, torch threads = 2 unless said):
  encode            Codec.encode_utterance: level, float32 encoder on the fixed 4 s block grid
                    (tokenizer.BLOCK_SECONDS), voice vector (and pitch stream where the model has one)
  encode 1 thr      the same on one thread
  encode float64 (old)  the same with the encoder path before issue 22 (encoder and codebook in
                    float64, 5 s chunks; `float64_encode_chunks` below), the baseline for the new one
                    (also on 1 thread); the line after the table: speed-ups, and the share of frames
                    whose tokens the two paths agree on
  fast decode       Codec.decode with the fast decoder (10 s chunks + context)
  fast decode 1 thr the same on one thread
  convert --like    Codec.convert to the voice of a 10 s reference (encode, the reference's voice
                    vector and median F0, fast decode); x real time per second of converted audio
  wavenet decode    the baseline: the paper's WaveNet decoder on the same tokens, chunk-parallel
                    (10 s of the audio only, it is slow; its RTF is per second of audio like the rest)
x real time = audio seconds / compute seconds. --seams: mel distance (decoded vs original) in 40 ms
windows that straddle a 10 s chunk seam, against all other windows, on the real files of a folder
concatenated into one long file (so seams fall inside speech).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_codec(model: str | None):
    from vqcodec import checkpoint
    from vqcodec.api import Codec, load_model
    from vqcodec.config import load_config
    from vqcodec.models.vqvae import VQVAE

    if model:
        return load_model(model)
    cfg = load_config(ROOT / "recipes/real/config.toml")
    torch.manual_seed(0)
    m = VQVAE(cfg.model, 1)
    state = {"kind": "vqvae", "config": cfg.to_dict(), "meta": {"speakers": ["x"], "voices": {"x": [128] * cfg.model.voice.dim}},
             "model": m.state_dict()}
    from vqcodec.api import from_checkpoint
    return from_checkpoint(state, "random init")


def signal(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = np.repeat(rng.uniform(0.02, 0.5, n // 800 + 1), 800)[:n]
    return (env * (np.sin(2 * np.pi * 150 * t) + 0.3 * rng.standard_normal(n))).astype(np.float32)


def timed(fn, repeat: int = 2):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def float64_encode_chunks(tokenizer):
    """Tokenizer._encode_chunks as it was before issue 22 (bench-only, for a same-run baseline):
    the encoder and codebook in float64, chunks of chunk_seconds with encoder.context each side."""
    import copy

    from vqcodec.generate import release_memory

    encoder = copy.deepcopy(tokenizer.model.encoder).double().eval()
    quantizer = copy.deepcopy(tokenizer.model.quantizer).double().eval()

    @torch.inference_mode()
    def encode_chunks(read, num_samples, chunk_seconds):
        hop = tokenizer.hop
        total = -(-num_samples // hop) * hop
        chunk = max(1, int(chunk_seconds * tokenizer.sample_rate) // hop) * hop
        ctx = tokenizer.model.encoder.context
        out = []
        for a in range(0, total, chunk):
            b = min(a + chunk, total)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            x = np.zeros(hi - lo, dtype=np.float32)
            got = read(lo, min(hi, num_samples))
            x[:len(got)] = got
            z = encoder(torch.from_numpy(x).to(torch.float64).view(1, -1))[0].T
            out.append(quantizer.nearest(z).numpy()[(a - lo) // hop:(b - lo) // hop])
            release_memory()
        return np.concatenate(out).astype(np.int64)
    return encode_chunks


def speed(codec, seconds: float, baseline: dict | None = None) -> dict:
    """Prints the rows; returns {row: x real time}. With `baseline` (another model's rows from this
    run), a column of ratios to it."""
    wav = signal(seconds)
    torch.set_num_threads(2)
    t_enc, tf = timed(lambda: codec.encode_utterance(wav, 16000))
    tok = codec.tokenizer
    torch.set_num_threads(1)
    t_enc1, _ = timed(lambda: codec.encode_utterance(wav, 16000))
    tok._encode_chunks = float64_encode_chunks(tok)  # the old path, on this instance only
    try:
        t_old1, _ = timed(lambda: codec.encode_utterance(wav, 16000))
        torch.set_num_threads(2)
        t_old, tf_old = timed(lambda: codec.encode_utterance(wav, 16000))
    finally:
        del tok._encode_chunks
        torch.set_num_threads(2)
    t_dec, _ = timed(lambda: codec.decode_file(tf))
    torch.set_num_threads(1)
    t_dec1, _ = timed(lambda: codec.decode_file(tf))
    torch.set_num_threads(2)
    same = np.mean(np.all((tf.tokens == tf_old.tokens).reshape(len(tf.tokens), -1), axis=1))
    rows = [("encode", seconds, t_enc), ("encode 1 thr", seconds, t_enc1), ("encode float64 (old)", seconds, t_old),
            ("encode f64 (old) 1 thr", seconds, t_old1),
            ("fast decode", seconds, t_dec), ("fast decode 1 thr", seconds, t_dec1)]
    if codec.has_voice:  # convert --like: encode + the reference's voice (and median F0) + decode
        ref = signal(10.0, seed=1)
        t_conv, _ = timed(lambda: codec.convert(wav, 16000, like=ref, like_rate=16000))
        rows.append(("convert --like 10 s", seconds, t_conv))
    if "wavenet" in codec.decoders:
        short = codec.encode_utterance(wav[:10 * 16000], 16000)
        t_wn, _ = timed(lambda: codec.decode_file(short, decoder="wavenet"), repeat=1)
        rows.append(("wavenet decode", 10.0, t_wn))
    base = next((r for r in rows if r[0] == "wavenet decode"), None)
    print(f"{'row':24s} {'audio s':>8s} {'compute s':>10s} {'x real time':>12s} {'vs wavenet':>11s}"
          + (f" {'vs baseline':>12s}" if baseline else ""))
    out = {}
    for name, audio_s, t in rows:
        ratio = f"{(base[2] / base[1]) / (t / audio_s):.0f}x" if base else "-"
        out[name] = audio_s / t
        extra = ""
        if baseline:
            extra = f" {out[name] / baseline[name]:11.2f}x" if name in baseline else f" {'-':>12s}"
        print(f"{name:24s} {audio_s:8.1f} {t:10.3f} {audio_s / t:12.1f} {ratio:>11s}" + extra)
    print(f"encode vs the old float64 path: {t_old / t_enc:.2f}x faster (2 threads), {t_old1 / t_enc1:.2f}x "
          f"(1 thread); tokens equal to its tokens: "
          f"{100 * same:.2f}% of frames")
    return out


def seams(codec, folder: str, limit_s: float = 120.0) -> None:
    from vqcodec import audio
    from vqcodec.evaluation.metrics import log_mel

    from vqcodec.files import walk  # dot-files skipped

    files = walk(folder, (".wav",))
    parts, total = [], 0.0
    for f in files:
        x = audio.load(f, 16000)
        parts.append(x)
        total += len(x) / 16000
        if total >= limit_s:
            break
    wav = np.concatenate(parts)
    tf = codec.encode_utterance(wav, 16000)
    out = codec.decode_file(tf)
    from vqcodec.nn.voice import from_bytes

    tokens = torch.as_tensor(tf.tokens)
    fast = codec.decoder("fast")
    pitch = fast.pitch_input(tokens, tf.pitch, None, tf.f0_median) if tf.pitch_levels else None
    one_pass = fast.decode_chunks(tokens, from_bytes(tf.voice), chunk_tokens=10 ** 9, pitch_features=pitch)
    one_pass = one_pass[:tf.num_samples] * np.float32(tf.gain)
    max_diff = float(np.abs(out - one_pass).max())
    a, b = log_mel(wav), log_mel(out)  # (frames, mels) at eval's hop
    n = min(len(a), len(b))
    frame_s = len(wav) / 16000 / max(len(a), 1)
    dist = np.abs(a[:n] - b[:n]).mean(axis=1)
    from vqcodec.decoders import FAST_CHUNK_TOKENS

    chunk_s = FAST_CHUNK_TOKENS * codec.hop / codec.sample_rate  # 10 s at hop 64, 40 s at hop 256
    seam_s = np.arange(chunk_s, total, chunk_s)
    seam_frames = np.zeros(n, dtype=bool)
    for s in seam_s:
        i = int(round(s / frame_s))
        seam_frames[max(0, i - 1):i + 2] = True
    at, rest = dist[seam_frames].mean(), dist[~seam_frames].mean()
    print(f"seams: {len(seam_s)} seams in {total:.0f} s of {folder}; mel distance at seams {at:.3f}, "
          f"elsewhere {rest:.3f} (ratio {at / rest:.3f}); chunked vs one-pass decode: max |diff| {max_diff:.2e}")


def memory(model: str | None) -> None:
    """Peak RSS of encoding and decoding one hour, each in a fresh subprocess."""
    import soundfile as sf
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hour.wav"
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as f:
            for i in range(60):
                f.write(signal(60.0, seed=i))
        m = ["--model", model] if model else []
        for what in ("encode", "decode"):
            code = (f"import sys, resource, time; sys.argv=['x']+{m!r}; sys.path.insert(0, {str(ROOT)!r});"
                    f"import bench.fast_codec_speed as b; c=b.build_codec({model!r});"
                    f"t=time.perf_counter(); tf=c.encode_file_utterance({str(path)!r});"
                    + ("t=time.perf_counter(); c.decode_file(tf);" if what == "decode" else "")
                    + "el=time.perf_counter()-t;"
                    f"print('{what}', round(el,1), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss//1024)")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
            line = (out.stdout.strip().splitlines() or [out.stderr.strip()[-300:]])[-1]
            parts = line.split()
            if len(parts) == 3:
                print(f"1 h {what}: {parts[1]} s ({3600 / float(parts[1]):.0f}x real time), peak RSS {parts[2]} MB "
                      f"(the {what} process, model and 1 h of tokens included)")
            else:
                print(f"1 h {what}: failed: {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seams", default=None, metavar="FOLDER")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--baseline", default=None, metavar="MODEL", help="another model timed first, in this run")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; torch {torch.__version__}")
    base = None
    if args.baseline:
        print(f"baseline {args.baseline}:")
        base = speed(build_codec(args.baseline), args.seconds)
        print(f"{args.model or 'random init'}:")
    codec = build_codec(args.model)
    speed(codec, args.seconds, base)
    if args.seams:
        seams(codec, args.seams)
    if args.memory:
        memory(args.model)


if __name__ == "__main__":
    main()
