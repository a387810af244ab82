"""`vqcodec corpus ...`: make and inspect training corpora."""
from __future__ import annotations

import click

from . import cli


@cli.group()
def corpus():
    """Make and inspect speech corpora."""
