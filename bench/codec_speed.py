"""Decode / encode speed and peak memory of the codec at the shipped model size.

    python bench/codec_speed.py                 # ~4 minutes
    python bench/codec_speed.py --quick         # fewer variants, shorter runs
    python bench/codec_speed.py --memory        # also peak RSS of encoding / decoding 1 h (subprocesses)

Weights are a random init of recipes/synth/config.toml's model (speed does not depend on the
weights; the shipped checkpoint is used instead if --model PATH is given). Real-time factor (RTF) =
seconds of compute per second of 16 kHz audio; < 1 is faster than real time. Every row is run in
this one process, one after the other, so the ratios compare like with like.

Rows:
  legacy step       the incremental path as first written (per-tap matmuls, a separate skip and
                    residual 1x1 per layer, conditioning added per layer; reproduced below)
  multinomial       torch.multinomial sampling (what draw() used before)
  fused step        WaveNet.step as shipped: stacked taps, per-frame bias, all skip 1x1s in one
                    matmul, preallocated scratch, inverse-CDF sampling, inference_mode
  compile           torch.compile of WaveNet._core, the step's tensor-only part (inductor, CPU;
                    compiling all of `step` recompiles for every t and falls back to eager)
  bf16              the fused step with the network in bfloat16
  1 / 2 threads     torch intra-op threads during generation (the shipped default is 1)
  decode_segments   end to end, chunk-parallel (warm-up and cross-fade included), one file
  encode            Codec.encode of noise (float32 encoder on 4 s blocks, see tokenizer.py; float64 before issue 22)
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vqcodec.config import load_config  # noqa: E402
from vqcodec.generate import _generate, decode_segments, draw  # noqa: E402
from vqcodec.models.vqvae import VQVAE  # noqa: E402

SR = 16000


# ----------------------------------------------------------------------------- the legacy path
def legacy_init(net, B, local, g):
    p = net.embed.weight
    buffers = [torch.zeros(B, net.cfg.residual_channels, (net.kernel_size - 1) * d) for d in net.dilations]
    local_weight = torch.cat([proj.weight[:, :, 0] for proj in net.local_proj])
    glob = net._global_bias(g)
    taps = [conv.weight.permute(2, 0, 1).contiguous() for conv in net.dilated]
    return {"t": 0, "prev": torch.full((B,), net.start_symbol, dtype=torch.long), "buffers": buffers,
            "local": local, "lw": local_weight, "glob": glob, "taps": taps, "frame": -1, "now": None,
            "p": p}


def legacy_step(net, s):
    h = net.embed(s["prev"])
    skip = 0
    frame = s["t"] // net.upsample
    if frame != s["frame"]:
        s["now"] = (s["local"][:, :, frame] @ s["lw"].T).view(s["local"].shape[0], len(net.dilations), -1)
        s["frame"] = frame
    for i, d in enumerate(net.dilations):
        buf = s["buffers"][i]
        L = buf.shape[2]
        W = s["taps"][i]
        z = net.dilated[i].bias + h @ W[-1].T
        for j in range(net.kernel_size - 1):
            z = z + buf[:, :, (s["t"] + j * d) % L] @ W[j].T
        buf[:, :, s["t"] % L] = h
        z = z + s["now"][:, i]
        z = z + s["glob"][i][:, :, 0]
        a, b = z.chunk(2, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)
        skip = skip + F.linear(gated, net.skip_out[i].weight[:, :, 0], net.skip_out[i].bias)
        if i < len(net.res_out):
            h = h + F.linear(gated, net.res_out[i].weight[:, :, 0], net.res_out[i].bias)
    out = F.linear(F.relu(skip), net.post1.weight[:, :, 0], net.post1.bias)
    return F.linear(F.relu(out), net.post2.weight[:, :, 0], net.post2.bias)


def multinomial(logits, temperature, generator):
    return torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1, generator=generator).squeeze(-1)


# ----------------------------------------------------------------------------- timing
def inputs(model, B, steps):
    frames = -(-steps // model.hop) + 1
    local = torch.relu(torch.randn(B, 128, frames))
    return local, torch.arange(B) % model.num_speakers


def run_loop(model, B, steps, variant, threads=1):
    """Samples per second of `steps` cached steps for B streams (after a short warm-up), with
    `threads` torch intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_loop(model, B, steps, variant)
    finally:
        torch.set_num_threads(before)


def _run_loop(model, B, steps, variant):
    net = model.decoder
    local, g = inputs(model, B, steps + 256)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if variant.startswith("legacy"):
            s = legacy_init(net, B, local, g)
            sample = multinomial if "multinomial" in variant else draw

            def one():
                logits = legacy_step(net, s)
                x = sample(logits, 1.0, gen)
                s["prev"] = x
                s["t"] += 1
        else:
            if "bf16" in variant:
                net = copy.deepcopy(net).to(torch.bfloat16)
            state = net.init_state(B, local.to(net.embed.weight.dtype), g)
            if "compile" in variant:
                if not hasattr(model, "_compiled_core"):
                    model._compiled_core = torch.compile(net._core, dynamic=False)
                state.core = model._compiled_core
            sample = multinomial if "multinomial" in variant else draw

            def one():
                logits = net.step(state)
                state.feed(sample(logits, 1.0, gen))
        for _ in range(min(64 if "compile" not in variant else 200, steps)):
            one()
        start = time.perf_counter()
        for _ in range(steps):
            one()
        elapsed = time.perf_counter() - start
    return B * steps / elapsed


def decode_file_rows(model, quick: bool, row):
    """End to end, chunk-parallel (warm-up 16 tokens and cross-fade 4 per segment included):
    one file of each length, at several shortest-segment lengths (32 is the default); best of 3."""
    cases = [(10, 128, 32)] if quick else [(3.5, 128, m) for m in (50, 32, 24, 16)] + \
        [(10, 128, m) for m in (50, 32, 24, 16)] + [(60, 128, 32), (60, 256, 32)]
    for seconds, mb, min_chunk in cases:
        tokens = torch.randint(0, model.cfg.quantizer.codebook_size, (int(seconds * SR / model.hop),))
        best = float("inf")
        for _ in range(1 if seconds >= 60 else 3):
            t0 = time.perf_counter()
            decode_segments(model, [tokens], [0], seed=0, max_batch=mb, min_chunk=min_chunk)
            best = min(best, time.perf_counter() - t0)
        row(f"decode_segments, one {seconds:g} s file, max_batch={mb}, min_chunk={min_chunk}", mb,
            seconds * SR / best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a checkpoint (default: random init of the shipped config)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory for 1 h (subprocesses)")
    ap.add_argument("--memory-only", nargs="?", const="encode,decode", metavar="encode,decode",
                    help="only the 1 h memory measurements (or only one of them)")
    ap.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    ap.add_argument("--segments-only", action="store_true",
                    help="only the end-to-end decode_segments rows (file length x segment length)")
    ap.add_argument("--mem-child", choices=["encode", "decode"], help=argparse.SUPPRESS)
    ap.add_argument("--wav", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        return mem_child(args)
    if args.memory_only:
        return measure_memory(args.model, args.memory_only.split(","))
    torch.manual_seed(0)
    model, codec = load(args.model)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus; "
          f"decoder {model.cfg.decoder.layers} layers x R{model.cfg.decoder.residual_channels} "
          f"G{model.cfg.decoder.gate_channels} S{model.cfg.decoder.skip_channels}; "
          f"{'weights from ' + args.model if args.model else 'random-init weights'}")
    q = args.quick
    rows = []
    T = torch.get_num_threads()
    reps = 2 if q else 3

    def row(name, B, sps, note=""):
        rows.append((name, B, sps, note))
        print(f"  {name:<44} B={B:<4} {sps:>9.0f} samples/s  RTF {SR / sps:7.3f}", flush=True)

    # Variants at one batch size are run interleaved, `reps` times, best kept: the machine is
    # shared (a training run, other jobs), and interleaving spreads the disturbance fairly.
    plan = {1: [("legacy step + multinomial", "legacy+multinomial", T),
                ("legacy step + multinomial", "legacy+multinomial", 1),
                ("legacy step + inverse-CDF", "legacy", 1),
                ("fused step + multinomial", "fused+multinomial", 1),
                ("fused step (shipped)", "fused", 1),
                ("fused step", "fused", T)]}
    for B in ((32, 128) if q else (16, 64, 128, 256)):
        plan[B] = [("legacy step + multinomial", "legacy+multinomial", 1),
                   ("legacy step + inverse-CDF", "legacy", 1),
                   ("fused step + multinomial", "fused+multinomial", 1),
                   ("fused step (shipped)", "fused", 1)]
        if B == 128 and T > 1:  # (slow under contention: only at one batch size)
            plan[B][:0] = [("legacy step + multinomial", "legacy+multinomial", T)]
            plan[B].append(("fused step", "fused", T))
    if args.compile:
        for B in (1, 128):
            plan[B].append(("fused step, torch.compile(_core)", "fused+compile", 1))
    if not q:
        for B in (1, 128):
            plan[B].append(("fused step, bf16 weights", "fused+bf16", 1))
    if args.segments_only:
        plan = {}
    base = None
    for B, variants in plan.items():
        steps = (300 if q else 500) if B == 1 else max(40, (3000 if q else 6000) // B)
        best = {}
        for _ in range(reps):
            for name, variant, threads in variants:
                sps = run_loop(model, B, steps, variant, threads)
                best[(name, threads)] = max(best.get((name, threads), 0), sps)
        for (name, threads), sps in best.items():
            row(f"{name}, {threads} thread{'s' if threads > 1 else ''}", B, sps)
        if B == 1:
            base = best[("legacy step + multinomial", T)]
    decode_file_rows(model, q, row)
    # encode
    wav = (0.1 * np.random.default_rng(0).standard_normal(int((30 if q else 120) * SR))).astype(np.float32)
    codec.encode(wav[:SR], SR)
    t0 = time.perf_counter()
    codec.encode(wav, SR)
    enc_rtf = (time.perf_counter() - t0) / (len(wav) / SR)
    with torch.inference_mode():  # the float32 model, whole 30 s chunks, for comparison
        t0 = time.perf_counter()
        for a in range(0, len(wav) // (30 * SR) * 30 * SR, 30 * SR):
            model.encode(torch.from_numpy(wav[a:a + 30 * SR]).view(1, -1))
        enc32 = (time.perf_counter() - t0) / (len(wav) // (30 * SR) * 30)

    print()
    print(f"| variant | batch (streams) | samples/s | RTF | speed vs batch-1 legacy |")
    print(f"|---|---:|---:|---:|---:|")
    for name, B, sps, note in rows:
        print(f"| {name}{' (' + note + ')' if note else ''} | {B} | {sps:,.0f} | {SR / sps:.3f} | {f'{sps / base:.1f}x' if base else '-'} |")
    print(f"| encode ({len(wav) / SR:.0f} s, 5 s chunks, float64, shipped) | - | {SR / enc_rtf:,.0f} | {enc_rtf:.4f} | - |")
    print(f"| encode (same, float32 model.encode, 30 s chunks) | - | {SR / enc32:,.0f} | {enc32:.4f} | - |")
    if args.memory:
        print()
        measure_memory(args.model)


def load(path):
    from vqcodec.api import Codec, from_checkpoint
    from vqcodec import checkpoint

    if path:
        codec = from_checkpoint(checkpoint.load(path), path)
        return codec.model, codec
    cfg = load_config(ROOT / "recipes/synth/config.toml")
    model = VQVAE(cfg.model, num_speakers=3).eval()
    return model, Codec(model, cfg, ["us1", "us2", "en1"])


# ----------------------------------------------------------------------------- memory (1 h)
def measure_memory(model_path, which=("encode", "decode")):
    import soundfile as sf
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "hour.wav"
        rng = np.random.default_rng(0)
        with sf.SoundFile(str(wav), "w", SR, 1, "PCM_16") as f:  # written in blocks: the bench stays small
            for _ in range(60):
                f.write((0.1 * rng.standard_normal(60 * SR)).astype(np.float32))
        for what in which:
            cmd = [sys.executable, __file__, "--mem-child", what, "--wav", str(wav)]
            if model_path:
                cmd += ["--model", model_path]
            out = subprocess.run(cmd, capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr.strip()[-500:])


def mem_child(args):
    """Run in a fresh process so ru_maxrss is this measurement's peak alone."""
    from vqcodec import generate

    model, codec = load(args.model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if args.mem_child == "encode":
        tokens = codec.encode_file(args.wav)
        what = f"encode 1 h file from disk (streamed, 5 s chunks): {time.perf_counter() - t0:.0f} s, {len(tokens)} tokens"
    else:
        # A real 1 h decode takes ~RTF x 1 h. Everything but the WaveNet's own steps runs for real
        # (segment plan, per-round conditioning, output buffers, mu-law, cross-fades, wav write);
        # the generation loop runs 256 real steps per round and fills the rest with random classes
        # of the real (steps, batch) shape, so the memory measured is that of the full decode.
        real = generate._generate

        def stub(net, steps, local, g, B, temperature, seed, prompt, bar, threads=1):
            head = real(net, min(steps, 256), local, g, B, temperature, seed, prompt, None, threads)
            out = torch.randint(0, 256, (steps, B), dtype=head.dtype)
            out[:head.shape[0]] = head
            return out

        generate._generate = stub
        import soundfile as sf
        from vqcodec import audio

        n = sf.info(args.wav).frames
        tokens = np.random.default_rng(0).integers(0, codec.codebook_size, -(-n // codec.hop))
        wav = codec.decode(tokens, codec.speakers[0], num_samples=n)
        audio.save(Path(args.wav).with_suffix(".out.wav"), wav, SR)
        what = (f"decode 1 h of tokens to a wav file (generation loop stubbed after 256 steps per "
                f"round, see bench source): {time.perf_counter() - t0:.0f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB (model and imports alone: {base:,.0f} MB) — {what}")


if __name__ == "__main__":
    main()
