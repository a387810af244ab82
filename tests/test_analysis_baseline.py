"""Issue 11 items 2 and 12: the MFCC k-means baseline (scikit-learn MiniBatchKMeans; its speed is
benched in bench/analysis_speed.py) and the token-agreement skip message saying what is missing."""
from __future__ import annotations

import numpy as np

from vqcodec.analysis.alignments import Interval
from vqcodec.analysis.baseline import MFCCKMeans, fit_mfcc_kmeans
from vqcodec.analysis.metrics import TokenizedUtterance, token_agreement


def test_kmeans_finds_separated_clusters_and_assigns_the_nearest_centroid():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (5, 39))
    labels = rng.integers(0, 5, 3000)
    feats = centres[labels] + rng.normal(0, 0.3, (3000, 39))
    km = fit_mfcc_kmeans([], 16000, 64, k=5, seed=0, feats=feats)
    codes = km.encode_features(feats)
    # one code per blob, up to relabelling
    assert len({(a, b) for a, b in zip(labels.tolist(), codes.tolist())}) == 5
    brute = np.argmin(((feats[:, None, :] - km.centroids[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(codes, brute)
    again = fit_mfcc_kmeans([], 16000, 64, k=5, seed=0, feats=feats)
    np.testing.assert_array_equal(again.centroids, km.centroids)  # seeded: reproducible


def test_kmeans_on_fewer_distinct_frames_than_k():
    feats = np.repeat(np.eye(3, 39), 4, axis=0)  # 3 distinct frames, k=8
    km = fit_mfcc_kmeans([], 16000, 64, k=8, seed=0, feats=feats)
    assert isinstance(km, MFCCKMeans) and km.codebook_size == 3
    assert len(set(km.encode_features(feats).tolist())) == 3


def _utt(speaker, text, labels=("AA", "B", "K")):
    ivs = [Interval(0.1 * i, 0.1 * (i + 1), lab) for i, lab in enumerate(labels)]
    return TokenizedUtterance(np.arange(80) % 7, ivs, speaker, text)


def test_agreement_skip_says_what_is_missing():
    no_text = token_agreement([_utt("a", None), _utt("b", None)], 64, 16000)
    assert "none of the 2 utterances has a transcript" in no_text["skipped"]
    distinct = token_agreement([_utt("a", "one two"), _utt("b", "three four"), _utt("a", "one two")], 64, 16000)
    assert distinct["skipped"].startswith("3 of 3 utterances have a transcript, but none of their 2 distinct "
                                          "texts is read by two different speakers")
    no_phones = token_agreement([_utt("a", "one", ("AA",)), _utt("b", "One!", ("IY",))], 64, 16000)
    assert "share no phone" in no_phones["skipped"]
    ok = token_agreement([_utt("a", "one"), _utt("b", "one")], 64, 16000)
    assert ok["utterance_pairs"] == 1 and ok["phones_compared"] == 3
