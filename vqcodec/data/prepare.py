"""From a config's [data] section to training items for the tasks (tasks.py):
(sequence, speaker index) pairs for train and valid, and the speaker list.

VQ-VAE: corpus -> deterministic split -> preprocessing cache (resampled once, int16 memory-maps,
or 8-bit mu-law shards carried to a GPU box) -> crops drawn by the task.
Prior: a tree of .vqc files made by one VQ-VAE -> the same split rule, by utterance.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import VqcodecError
from .corpora import Utterance, load_corpus
from .split import speaker_index, split, subset_of
from .tokens import load_token_corpus
from .windows import INDEX, build_cache, open_cache, read_entry


def cache_dir_of(cfg: Config) -> Path:
    return Path(cfg.data.cache_dir or Path(cfg.train.out_dir) / "cache")


def vqvae_items(cfg: Config, progress: bool = True):
    """(train_items, valid_items, speakers). A cache dir that already holds an index (e.g. mu-law
    shards exported for a GPU machine) is used as it is, without the original audio."""
    d = cfg.data
    cache_dir = cache_dir_of(cfg)
    if not d.root and (cache_dir / INDEX).exists():
        entries = open_cache(cache_dir)
        utts = [Utterance(Path(e.source or e.key), e.speaker, e.key.split("/", 1)[-1]) for e in entries]
        by_key = {e.key: e for e in entries}
    else:
        if not d.root:
            raise VqcodecError("config [data] root is empty: point it at the corpus")
        utts = corpus_utterances(cfg)
        by_key = None
    parts = split(utts, d.valid_fraction, d.test_fraction, d.seed, d.holdout_speakers, d.valid_speakers)
    # a model with a voice encoder takes the voice from a reference clip, not from a table: its
    # validation may be whole speakers it never trained on
    speakers = speaker_index(parts["train"] + (parts["valid"] if cfg.model.voice.dim else []))
    if not speakers:
        raise VqcodecError("no training utterances after the split")
    if by_key is None:
        entries = build_cache(parts["train"] + parts["valid"], cache_dir, cfg.model.sample_rate,
                              jobs=os.cpu_count() or 1, progress=progress)
        by_key = {e.key: e for e in entries}

    def items(subset):
        out = []
        for u in parts[subset]:
            e = by_key.get(f"{u.speaker}/{u.utt_id}")
            if e is None or u.speaker not in speakers:
                continue  # unreadable audio (skipped when caching) or a speaker unseen in training
            if e.dtype == "int16":  # memory-mapped: no copy of the corpus in RAM
                arr = np.load(e.path, mmap_mode="r")[e.offset:e.offset + e.length]
            else:
                arr = read_entry(e)
            out.append((arr, speakers.index(u.speaker)))
        return out

    train_items, valid_items = items("train"), items("valid")
    if not train_items:
        raise VqcodecError("no training audio could be read")
    return train_items, valid_items, speakers


def corpus_utterances(cfg: Config) -> list[Utterance]:
    """The corpus as [data] names it: root (of kind `corpus`) plus any extra `folders` roots, mixed
    by hours (crops are drawn in proportion to length). Speaker names must not collide."""
    d = cfg.data
    if not d.root:
        raise VqcodecError("config [data] root is empty: point it at the corpus")
    utts = load_corpus(d.corpus, d.root, **({"mic": d.vctk_mic} if d.corpus == "vctk" else {}))
    for extra in d.extra_roots:
        more = load_corpus("folders", extra)
        clash = {u.speaker for u in more} & {u.speaker for u in utts}
        if clash:
            raise VqcodecError(f"{extra}: speaker names also in another corpus: {', '.join(sorted(clash)[:5])}")
        utts = utts + more
    if d.max_utterances:
        utts = utts[:d.max_utterances]
    return utts


def utterances_to_encode(cfg: Config) -> list[Utterance]:
    """The utterances a VQ-VAE config trained on (its train and valid subsets: the corpus as the
    config reads it, one VCTK microphone, held-out speakers and the test subset left out), for
    encoding to the tokens its prior trains on."""
    d = cfg.data
    parts = split(corpus_utterances(cfg), d.valid_fraction, d.test_fraction, d.seed, d.holdout_speakers,
                  d.valid_speakers)
    return parts["train"] + parts["valid"]


def prior_items(cfg: Config, codec):
    """(train_items, valid_items, speakers) of token sequences made by `codec`'s model."""
    d = cfg.data
    if d.corpus != "tokens":
        raise VqcodecError("a prior trains on tokens: set [data] corpus = \"tokens\" and root = a .vqc tree")
    records = load_token_corpus(d.root, expect_model_id=codec.model_id)
    speakers = list(codec.speakers)
    train_items, valid_items = [], []
    for utt_id, speaker, tokens in records:
        if speaker not in speakers:
            raise VqcodecError(f"{utt_id}: speaker {speaker!r} is unknown to the VQ-VAE")
        subset = subset_of(Utterance(Path(utt_id), speaker, utt_id), d.valid_fraction, d.test_fraction, d.seed)
        if subset == "train":
            train_items.append((tokens, speakers.index(speaker)))
        elif subset == "valid":
            valid_items.append((tokens, speakers.index(speaker)))
    if not train_items:
        raise VqcodecError(f"{d.root}: no training token files")
    return train_items, valid_items, speakers
