"""Figures for the phoneme analysis (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import MissingToolError
from ..files import atomic_path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingToolError("plots need matplotlib: pip install 'vqcodec[analysis]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def code_phone_heatmap(counts: np.ndarray, phones: Sequence[str], path: str | os.PathLike,
                       title: str = "P(phone | code)") -> None:
    """Rows: the codes that occur, grouped by their majority phone (in column order) and by
    purity within a group; columns: phones; cells: P(phone | code)."""
    plt = _pyplot()
    counts = np.asarray(counts, dtype=np.float64)
    used = np.flatnonzero(counts.sum(axis=1))
    probs = counts[used] / counts[used].sum(axis=1, keepdims=True)
    order = np.lexsort((-probs.max(axis=1), probs.argmax(axis=1)))
    probs, codes = probs[order], used[order]
    h = min(40.0, 2.5 + 0.03 * len(codes))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(phones) + 2), h))
    im = ax.imshow(probs, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(phones)))
    ax.set_xticklabels(phones, rotation=90, fontsize=7)
    step = max(1, len(codes) // 40)
    ax.set_yticks(range(0, len(codes), step))
    ax.set_yticklabels([str(c) for c in codes[::step]], fontsize=6)
    ax.set_xlabel("phone")
    ax.set_ylabel(f"code ({len(codes)} used, ordered by majority phone)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def confusion_plot(confusion: np.ndarray, phones: Sequence[str], path: str | os.PathLike,
                   title: str = "true phone vs phone mapped from the code (test frames)") -> None:
    """Row-normalised confusion matrix: rows = true phone, columns = the code's mapped phone."""
    plt = _pyplot()
    conf = np.asarray(confusion, dtype=np.float64)
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    size = max(6.0, 0.22 * len(phones) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, interpolation="nearest", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(phones)))
    ax.set_xticklabels(phones, rotation=90, fontsize=7)
    ax.set_yticks(range(len(phones)))
    ax.set_yticklabels(phones, fontsize=7)
    ax.set_xlabel("mapped phone")
    ax.set_ylabel("true phone")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
