"""One training loop for the VQ-VAE and the prior.

What a model brings is a `Task` (tasks.py): the model, a stateless batch sampler
(batch = f(seed, step, rank)), the loss, and metadata to store in the checkpoint. The loop brings
Adam, an optional cosine schedule, gradient clipping, validation, atomic checkpoints with exact
resume (model, optimizer, step, torch RNG; batches depend only on the step, so nothing else is
needed), tqdm progress, a JSON-lines log, and DistributedDataParallel under torchrun (gloo on CPU,
nccl on GPU): `torchrun --nproc_per_node N -m vqcodec train ...` runs the same code.

Two options (issue 22), both in the checkpoint so resume stays exact:
- `train.ema_decay` > 0: an exponential moving average of the trained parameters (`WeightEMA`);
  validation and the quality monitor run on it, and `export` ships it.
- a model with a `discriminator` (the fast decoder's, `model.loss.adversarial_weight`): after each
  generator step the discriminator takes its own AdamW step on the crops the step returned.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from . import checkpoint
from .config import Config
from .errors import VqcodecError
from .files import atomic_path, remove_stale_temps

CHECKPOINT_NAME = "checkpoint.pt"


class Task(Protocol):
    kind: str

    def build_model(self) -> nn.Module: ...
    def train_batch(self, step: int, rank: int, world_size: int) -> tuple: ...
    def valid_batches(self) -> Iterable[tuple]: ...
    def compute(self, model: nn.Module, batch: tuple, device: torch.device) -> dict[str, torch.Tensor]: ...
    def metadata(self) -> dict[str, Any]: ...
    def model_metadata(self, model: nn.Module) -> dict[str, Any]: ...
    def on_valid(self, model: nn.Module, step: int) -> dict[str, float]: ...


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise VqcodecError("device 'cuda' requested but no CUDA GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _distributed_setup(device_name: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(device_name, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def lr_at(cfg: Config, step: int) -> float:
    t = cfg.train
    if t.lr_min <= 0:
        return t.lr
    return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + math.cos(math.pi * min(step, t.steps) / t.steps))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records past `step`: a run killed between checkpoints logged steps that the
    resumed run will log again."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(kept))


class WeightEMA:
    """ema <- decay * ema + (1 - decay) * weight after every optimizer step, for each parameter the
    run trains (by state-dict name). Frozen parameters and buffers (the EMA codebook, usage counts)
    are the model's own: averaging a constant in floating point could change it, and a frozen
    tokenizer must stay bit-identical (its id)."""

    def __init__(self, named_params: dict[str, nn.Parameter], decay: float):
        if not 0 < decay < 1:
            raise VqcodecError(f"train.ema_decay must be in (0, 1) (0: off), got {decay}")
        self.params, self.decay = named_params, decay
        self.shadow = {k: p.detach().clone() for k, p in named_params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for k, p in self.params.items():
            self.shadow[k].lerp_(p.detach(), 1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise VqcodecError("the checkpoint's weight EMA does not match the parameters this run trains")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    @contextlib.contextmanager
    def applied(self):
        """The model's trained parameters replaced by their averages inside the block, restored bit for bit after."""
        saved = {k: p.detach().clone() for k, p in self.params.items()}
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(self.shadow[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(saved[k])


def train(cfg: Config, task: Task, resume: bool = False, max_steps: int | None = None,
          progress: bool = True, on_step: Callable[[int, dict], None] | None = None) -> Path:
    """Train until cfg.train.steps (or max_steps more steps, for tests); returns the checkpoint."""
    rank, world, device = _distributed_setup(cfg.train.device)
    out_dir = Path(cfg.train.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if not resume and ckpt_path.exists():  # before touching the run's config.toml or log
        raise VqcodecError(f"{ckpt_path} exists: pass --resume to continue it, or choose another out_dir")
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)  # a killed run's half-written checkpoint or log
        cfg.to_toml(out_dir / "config.toml")

    torch.manual_seed(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.set_flush_denormal(True)  # denormals in small gradients slow CPU training (undone on return:
                                    # a process that trains and then does other float work gets IEEE back)
    model = task.build_model().to(device)
    disc = getattr(model, "discriminator", None)
    disc_ids = {id(p) for p in disc.parameters()} if disc is not None else set()
    named = {k: p for k, p in model.named_parameters() if p.requires_grad and id(p) not in disc_ids}
    params = list(named.values())
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                                  weight_decay=cfg.train.weight_decay)
    disc_optimizer = (torch.optim.AdamW(disc.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                                        weight_decay=cfg.train.weight_decay) if disc is not None else None)
    optimizers = [o for o in (optimizer, disc_optimizer) if o is not None]
    step, history, state = 0, [], None
    if resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if disc_optimizer is not None:
            disc_optimizer.load_state_dict(state["disc_optimizer"])
        step, history = state["step"], state.get("history", [])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
        if rank == 0:
            _truncate_log(out_dir / "log.jsonl", step)
            tqdm.write(f"resumed from {ckpt_path} at step {step}")
    elif resume and rank == 0:
        tqdm.write(f"no checkpoint in {out_dir}: starting from scratch")
    ema = WeightEMA(named, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    if ema is not None and state is not None:
        if "ema" in state:
            ema.load_state_dict(state["ema"])
        elif rank == 0:  # switched on for the rest of a run
            tqdm.write(f"{ckpt_path} has no weight EMA: it starts from the resumed weights")

    wrapped = model
    if world > 1:
        if disc is not None:  # stepped outside DDP's forward/backward (_discriminator_step syncs it by hand)
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, [k for k, p in model.named_parameters() if id(p) in disc_ids])
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    end = cfg.train.steps if max_steps is None else min(cfg.train.steps, step + max_steps)
    bar = tqdm(total=end, initial=step, disable=not progress or rank != 0,
               desc=f"train {task.kind}", unit="step", dynamic_ncols=True)
    log = (out_dir / "log.jsonl").open("a") if rank == 0 else None
    started, steps_done = time.time(), 0

    def save_checkpoint():
        if rank != 0:
            return
        with contextlib.nullcontext() if ema is None else ema.applied():  # named voices of what export ships
            meta = {**task.metadata(), **task.model_metadata(model)}
        checkpoint.save(ckpt_path, {
            "kind": task.kind, "config": cfg.to_dict(), "meta": meta,
            "model": model.state_dict(), "step": step, "optimizer": optimizer.state_dict(),
            **({"disc_optimizer": disc_optimizer.state_dict()} if disc_optimizer is not None else {}),
            **({"ema": ema.state_dict()} if ema is not None else {}),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "history": history})
        if cfg.train.keep_every and step % cfg.train.keep_every == 0:
            shutil.copyfile(ckpt_path, out_dir / f"checkpoint-{step}.pt")

    try:
        while step < end:
            wrapped.train()
            for group in (g for o in optimizers for g in o.param_groups):
                group["lr"] = lr_at(cfg, step)
            batch = task.train_batch(step, rank, world)
            out = task.compute(wrapped, batch, device)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            if cfg.train.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            optimizer.step()
            if disc_optimizer is not None:
                out = {**out, **_discriminator_step(model, disc, disc_optimizer, out, cfg.train.grad_clip, world)}
            if ema is not None:
                ema.update()
            step += 1
            steps_done += 1
            scalars = {k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}
            if on_step is not None:
                on_step(step, scalars)
            if rank == 0:
                bar.update(1)
                if step % cfg.train.log_every == 0 or step == end:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items()})
                    log.write(json.dumps({"step": step, **scalars}) + "\n")
                    log.flush()
            if step % cfg.train.valid_every == 0 or step == end:
                if rank == 0:
                    record = {"step": step, **validate(task, model, device, step, ema),
                              "samples_per_s": _throughput(task, batch, steps_done, started, world)}
                    history.append(record)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    tqdm.write("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in record.items()))
            if step % cfg.train.checkpoint_every == 0 or step == end:
                save_checkpoint()
    finally:
        torch.set_flush_denormal(False)
        bar.close()
        if log is not None:
            log.close()
        if world > 1 and dist.is_initialized():
            dist.barrier()
    return ckpt_path


def _discriminator_step(model, disc: nn.Module, optimizer, out: dict, grad_clip: float,
                        world: int) -> dict[str, torch.Tensor]:
    """One AdamW step of the discriminator on the crops of the generator step just taken ("disc": its
    loss). Its gradients are averaged over processes by hand: it runs outside DistributedDataParallel."""
    optimizer.zero_grad(set_to_none=True)  # also drops what the generator's loss left on it
    loss = model.discriminator_loss(out)
    if loss is None:
        return {}
    loss.backward()
    if world > 1:
        for p in disc.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(disc.parameters(), grad_clip)
    optimizer.step()
    return {"disc": loss.detach()}


def validate(task: Task, model: nn.Module, device: torch.device, step: int = 0,
             ema: WeightEMA | None = None) -> dict[str, float]:
    """Validation losses and the task's on_valid figures, on the weight EMA when there is one."""
    with contextlib.nullcontext() if ema is None else ema.applied():
        return _validate(task, model, device, step)


@torch.no_grad()
def _validate(task: Task, model: nn.Module, device: torch.device, step: int = 0) -> dict[str, float]:
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    for batch in task.valid_batches():
        out = task.compute(model, batch, device)
        for k, v in out.items():
            if torch.is_tensor(v) and v.dim() == 0:
                totals[k] = totals.get(k, 0.0) + float(v)
        n += 1
    result = {f"valid_{k}": v / max(n, 1) for k, v in totals.items()}
    result.update(task.on_valid(model, step))
    model.train()
    return result


def _throughput(task, batch, steps: int, started: float, world: int) -> float:
    """Training items (samples or tokens) per second over the steps run in this process."""
    first = batch[0]
    per_step = first.numel() if torch.is_tensor(first) else len(first)
    return per_step * steps * world / max(time.time() - started, 1e-9)
