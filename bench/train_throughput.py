"""VQ-VAE training throughput: the shipped model against the paper-sized decoder.

    python bench/train_throughput.py                    # ~2 minutes on 2 idle cores
    python bench/train_throughput.py --steps 2 --warmup 1
    python bench/train_throughput.py --config recipes/vctk/config.toml --device cuda

One training step = what the training loop does (vqcodec/train.py): a batch of crops drawn by
VQVAETask, encoder + quantizer (EMA, dead-code restart) + WaveNet decoder forward, cross-entropy +
commitment loss, backward, gradient clipping and an Adam step. Throughput is audio samples (16 kHz)
per second of wall-clock time, after warm-up steps. Both rows run in this one process, one after
the other, with the same batch size, crop length, encoder and quantizer; only the decoder differs:

  shipped   [model.decoder] of the config (recipes/synth/config.toml: 10 layers, 32 residual,
            64 gate, 128 skip channels)
  paper     van den Oord et al. 2017 sized WaveNet decoder: 20 layers (dilations 1..512 twice),
            64 residual, 128 gate, 256 skip channels
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vqcodec.config import WaveNetConfig, load_config  # noqa: E402
from vqcodec.tasks import VQVAETask  # noqa: E402
from vqcodec.train import select_device  # noqa: E402

SR = 16000


def speechy(seconds: float, seed: int) -> np.ndarray:
    """A harmonic tone with a wandering pitch and amplitude plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.25 * wav + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def measure(cfg, device: torch.device, steps: int, warmup: int) -> dict:
    """Timed training steps of `cfg`'s VQ-VAE on four generated 4 s utterances of two speakers."""
    items = [(speechy(4.0, s), s % 2) for s in range(4)]
    task = VQVAETask(cfg, items, None, ["a", "b"])
    torch.manual_seed(0)
    model = task.build_model().to(device).train()
    disc = getattr(model, "discriminator", None)  # a fast-decoder discriminator steps after each step, as in train.py
    disc_ids = {id(p) for p in disc.parameters()} if disc is not None else set()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad and id(p) not in disc_ids], lr=cfg.train.lr)
    disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.train.lr) if disc is not None else None
    params = sum(p.numel() for p in model.decoder.parameters()) if model.decoder is not None else 0

    def one(step):
        batch = task.train_batch(step, 0, 1)
        out = task.compute(model, batch, device)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        d_loss = model.discriminator_loss(out) if disc is not None else None
        if d_loss is not None:
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        return batch[0].numel()

    for s in range(warmup):
        one(s)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, samples = time.perf_counter(), 0
    for s in range(warmup, warmup + steps):
        samples += one(s)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    return {"samples_per_s": samples / elapsed, "s_per_step": elapsed / steps, "decoder_params": params,
            "receptive_field": model.decoder.receptive_field if model.decoder is not None else 0}


def cost_per_step_main(doc: str, default_config: Path, variants, baseline: str) -> None:
    """The command line of a lever-cost bench (conversion_train_cost.py, decoder_lever_cost.py):
    every config of `variants(cfg)` timed alternately in --rounds rounds of --steps training steps
    (so load changes hit every row alike); best seconds per step, and the ratio to `baseline`'s."""
    import tempfile

    from _common import load_avg

    started = time.time()
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(default_config))
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    print(f"config {args.config}: batch {cfg.train.batch_size} x {cfg.data.window_seconds} s crops, "
          f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps; load before: {load_avg()}")
    rows = {name: [] for name in variants(cfg)}
    with tempfile.TemporaryDirectory() as tmp:  # caches (e.g. d-vector tables), removed after
        cfg.data.cache_dir = cfg.train.out_dir = tmp
        for _ in range(args.rounds):
            for name, c in variants(cfg).items():
                rows[name].append(measure(c, torch.device("cpu"), args.steps, 1)["s_per_step"])
    best = min(rows[baseline])
    print(f"{'variant':<12} {'s/step':>7} {'x ' + baseline:>7} {'audio s/s':>9}")
    for name, times in rows.items():
        t = min(times)
        print(f"{name:<12} {t:>7.3f} {t / best:>7.2f} {cfg.train.batch_size * cfg.data.window_seconds / t:>9.1f}")
    print(f"load after: {load_avg()} ({time.time() - started:.0f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "recipes/synth/config.toml"))
    ap.add_argument("--steps", type=int, default=4, help="timed steps per model (after warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    cfg = load_config(args.config)
    paper = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, decoder=WaveNetConfig(
        layers=20, dilation_cycle=10, residual_channels=64, gate_channels=128, skip_channels=256,
        kernel_size=2, global_dim=cfg.model.decoder.global_dim)))
    window = VQVAETask(cfg, [(np.zeros(SR, np.float32), 0)], None, ["a"]).window
    print(f"config {args.config}: batch {cfg.train.batch_size} x {window} samples "
          f"({window / SR:.2f} s crops), device {device}, {torch.get_num_threads()} threads, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'decoder':<8} {'layers':>6} {'res/gate/skip':>14} {'params':>8} {'RF':>5} "
          f"{'s/step':>7} {'samples/s':>10} {'audio s/s':>9}")
    rows = {}
    for name, c in (("shipped", cfg), ("paper", paper)):
        r = measure(c, device, args.steps, args.warmup)
        rows[name] = r
        d = c.model.decoder
        print(f"{name:<8} {d.layers:>6} {f'{d.residual_channels}/{d.gate_channels}/{d.skip_channels}':>14} "
              f"{r['decoder_params'] / 1e3:>7.0f}k {r['receptive_field']:>5} {r['s_per_step']:>7.2f} "
              f"{r['samples_per_s']:>10.0f} {r['samples_per_s'] / SR:>9.2f}", flush=True)
    ratio = rows["shipped"]["samples_per_s"] / rows["paper"]["samples_per_s"]
    print(f"shipped / paper training throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
