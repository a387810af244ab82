"""`vqcodec train vqvae|prior CONFIG` and `vqcodec train export`."""
from __future__ import annotations

import click

from . import cli

SET_OPTION = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                          help="Override a config value, e.g. --set train.steps=2000 (repeatable).")
RESUME_OPTION = click.option("--resume", is_flag=True, help="Continue from OUT_DIR/checkpoint.pt (exact resume).")


@cli.group()
def train():
    """Train the VQ-VAE or the prior (one loop: checkpoints, exact resume, DDP under torchrun).

    \b
    Examples:
      vqcodec train vqvae recipes/synth/config.toml
      vqcodec train vqvae recipes/synth/config.toml --resume --set train.steps=20000
      torchrun --nproc_per_node 4 -m vqcodec train vqvae recipes/vctk/config.toml
      vqcodec train prior recipes/synth/prior.toml
      vqcodec train export runs/synth/vqvae/checkpoint.pt pretrained/my-model.pt
    """


@train.command("vqvae")
@click.argument("config_path", metavar="CONFIG")
@RESUME_OPTION
@SET_OPTION
def train_vqvae(config_path, resume, overrides):
    """Train the VQ-VAE described by CONFIG (TOML; relative paths are relative to the current
    directory). Prepares (resamples and caches) the corpus on first use.

    \b
    Examples:
      vqcodec train vqvae recipes/synth/config.toml
      vqcodec train vqvae recipes/vctk/config.toml --set train.steps=50000 --resume
    """
    from ..data.prepare import vqvae_items
    from ..tasks import VQVAETask
    from ..train import train as run

    from ..config import load_config

    cfg = load_config(config_path, list(overrides))
    train_items, valid_items, speakers = vqvae_items(cfg)
    path = run(cfg, VQVAETask(cfg, train_items, valid_items, speakers), resume=resume)
    click.echo(f"checkpoint: {path}")


@train.command("prior")
@click.argument("config_path", metavar="CONFIG")
@RESUME_OPTION
@SET_OPTION
def train_prior(config_path, resume, overrides):
    """Train a prior on the tokens of a trained VQ-VAE. CONFIG's [prior] vqvae names the VQ-VAE
    checkpoint and [data] root a tree of .vqc files it made (`vqcodec encode CORPUS -o TOKENS`).

    \b
    Example:
      vqcodec train prior recipes/synth/prior.toml
    """
    from ..api import load_model
    from ..data.prepare import prior_items
    from ..tasks import PriorTask
    from ..train import train as run

    from ..config import load_config

    cfg = load_config(config_path, list(overrides))
    codec = load_model(cfg.prior.vqvae or "default")
    train_items, valid_items, speakers = prior_items(cfg, codec)
    task = PriorTask(cfg, train_items, valid_items, speakers, codec.model_id, codec.codebook_size,
                     codec.hop, codec.sample_rate)
    click.echo(f"unigram entropy of the validation tokens: {task.unigram_bits:.3f} bits/token "
               f"(a prior must score below this to have learned anything)")
    path = run(cfg, task, resume=resume)
    click.echo(f"checkpoint: {path}")


@train.command("export")
@click.argument("src", metavar="CHECKPOINT")
@click.argument("dst", metavar="OUT")
@click.option("--tokenizer-only", is_flag=True,
              help="Leave out the fast decoder too: the start of a new decoder trained on the frozen "
                   "tokenizer (--set train.init=OUT --set train.stage=fast).")
def export(src, dst, tokenizer_only):
    """Strip optimizer and RNG state from a training checkpoint (what ships in pretrained/); a run
    with a weight EMA (train.ema_decay) ships the averaged weights.

    \b
    Examples:
      vqcodec train export runs/synth/vqvae/checkpoint.pt pretrained/my-model.pt
      vqcodec train export pretrained/vqcodec-real-lowrate.pt runs/tok.pt --tokenizer-only
      vqcodec train vqvae recipes/real/lowrate.toml --set train.init=runs/tok.pt --set train.stage=fast \\
          --set model.fast.excitation=source --set train.out_dir=runs/new-decoder
    """
    from .. import checkpoint

    checkpoint.export(src, dst, tokenizer_only)
    click.echo(f"wrote {dst}")
