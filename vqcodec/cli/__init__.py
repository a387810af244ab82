"""The `vqcodec` command: one click group; each subcommand is a thin shell over the Python API.

Subcommands live in sibling modules (codec.py, corpus.py, train.py, analyze.py, evaluate.py)
and register themselves on `cli`. Any VqcodecError becomes one line on stderr and exit 1.
"""
from __future__ import annotations

import sys

import click

from ..errors import VqcodecError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VqcodecError as e:
            click.echo(f"vqcodec: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("vqcodec: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vqcodec")
def cli():
    """vqcodec: speech to discrete tokens (VQ-VAE, 2.25 kbps) and back (fast decoder or WaveNet).

    \b
    Examples:
      vqcodec encode talk.wav -o talk.vqc
      vqcodec decode talk.vqc                  # -> talk.decoded.wav
      vqcodec convert talk.wav --speaker us2 -o talk_as_us2.wav
      vqcodec corpus synth data/synth --hours 1
      vqcodec train vqvae recipes/synth/config.toml
    """


def main():
    cli(prog_name="vqcodec")


# Register subcommands (imports at the bottom so each module can import `cli` from here).
from . import codec, corpus, train  # noqa: E402,F401
from . import analyze  # noqa
from . import evaluate  # noqa: E402,F401
