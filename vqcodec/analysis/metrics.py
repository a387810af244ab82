"""How phonetic are the tokens? Frame pairing and the metrics of the paper and of HuBERT.

Every metric here works on *paired frames*: one token (code z) and one phone label (y) per token
position. `frame_labels` makes the pairing: token i covers samples [i*hop, (i+1)*hop) and is
labelled with the phone whose interval contains the token's centre, (i + 0.5) * hop / sr seconds.

From the joint counts n(y, z) over N frames, with p(y, z) = n(y, z) / N (Hsu et al. 2021, HuBERT,
section IV-F):

* phone purity    = E_z[max_y p(y | z)] = sum_z max_y p(y, z)
  (the frame accuracy of labelling each code with its most frequent phone, fitted and scored on
  the same frames; rises with K).
* cluster purity  = E_y[max_z p(z | y)] = sum_y max_z p(y, z)
  (how concentrated each phone is on one code; falls with K).
* PNMI            = I(y; z) / H(y)
  = sum_{y,z} p(y,z) log(p(y,z) / (p(y) p(z))) / (-sum_y p(y) log p(y))
  (the fraction of phone uncertainty removed by knowing the code: 1 for a tokenizer whose codes
  determine the phone, 0 for codes independent of the phones).

The paper's number (van den Oord et al. 2017, section 4.3: 49.3% vs 7.2%) is the *majority-mapping
accuracy*: each code is mapped to its most frequent phone on a fitting split and the mapping is
scored on held-out frames; codes unseen while fitting map to the fitting split's majority phone.
The baseline is that majority phone alone. Both train and test accuracies are reported.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .alignments import Interval

SILENCE = "sil"


# --------------------------------------------------------------------------- frame pairing
def token_centres(num_tokens: int, hop: int, sample_rate: int) -> np.ndarray:
    """Centre of each token in seconds: token i covers samples [i*hop, (i+1)*hop)."""
    return (np.arange(num_tokens) + 0.5) * hop / float(sample_rate)


def labels_at(intervals: Sequence[Interval], times: np.ndarray) -> np.ndarray:
    """Label of the interval containing each time (start <= t < end); "" where none does."""
    out = np.full(len(times), "", dtype=object)
    if not intervals or len(times) == 0:
        return out
    ivs = sorted(intervals, key=lambda iv: iv.start)
    starts = np.array([iv.start for iv in ivs])
    ends = np.array([iv.end for iv in ivs])
    idx = np.searchsorted(starts, times, side="right") - 1
    ok = (idx >= 0)
    ok[ok] &= times[ok] < ends[idx[ok]]
    labels = np.array([iv.label for iv in ivs], dtype=object)
    out[ok] = labels[idx[ok]]
    return out


def frame_labels(intervals: Sequence[Interval], num_tokens: int, hop: int, sample_rate: int) -> np.ndarray:
    """Phone label of each of `num_tokens` tokens: the interval containing the token's centre
    ((i + 0.5) * hop / sample_rate seconds). Tokens outside every interval get "" (callers drop
    them). Returns an object array of str, length num_tokens."""
    return labels_at(intervals, token_centres(num_tokens, hop, sample_rate))


# --------------------------------------------------------------------------- metrics
def contingency(codes: np.ndarray, phone_ids: np.ndarray, num_codes: int, num_phones: int) -> np.ndarray:
    """Joint counts n[z, y] (codes x phones), int64."""
    counts = np.zeros((num_codes, num_phones), dtype=np.int64)
    np.add.at(counts, (np.asarray(codes, dtype=np.int64), np.asarray(phone_ids, dtype=np.int64)), 1)
    return counts


def phone_purity(counts: np.ndarray) -> float:
    """sum_z max_y p(y, z) for counts[z, y]."""
    n = counts.sum()
    return float(counts.max(axis=1).sum() / n) if n else float("nan")


def cluster_purity(counts: np.ndarray) -> float:
    """sum_y max_z p(y, z) for counts[z, y]."""
    n = counts.sum()
    return float(counts.max(axis=0).sum() / n) if n else float("nan")


def pnmi(counts: np.ndarray) -> float:
    """Phone-normalised mutual information I(y; z) / H(y) (natural logs cancel)."""
    n = counts.sum()
    if not n:
        return float("nan")
    p = counts / n
    pz = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / (pz @ py)[nz])))
    hy = float(-np.sum(py[py > 0] * np.log(py[py > 0])))
    if hy == 0.0:
        return float("nan")
    return max(0.0, mi / hy)


def majority_mapping(counts: np.ndarray) -> np.ndarray:
    """Code -> its most frequent phone id under counts[z, y]; codes never seen map to the overall
    most frequent phone."""
    overall = int(counts.sum(axis=0).argmax())
    mapping = counts.argmax(axis=1)
    mapping[counts.sum(axis=1) == 0] = overall
    return mapping


def split_utterances(num: int, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask, True = test utterance. Deterministic in `seed`; with >= 2 utterances both
    sides get at least one. Splitting by utterance (never by frame) keeps neighbouring, strongly
    correlated frames out of both sides."""
    is_test = np.zeros(num, dtype=bool)
    if num < 2 or test_fraction <= 0:
        return is_test
    n_test = min(num - 1, max(1, int(round(num * test_fraction))))
    order = np.random.default_rng(seed).permutation(num)
    is_test[order[:n_test]] = True
    return is_test


@dataclass
class CodeStat:
    code: int
    count: int
    phone: str      # majority phone
    purity: float   # max_y p(y | code)


@dataclass
class PhoneAnalysis:
    """Result of `analyze_tokens`; `to_dict()` is JSON-ready (the count matrices are kept out)."""
    codebook_size: int
    codes_used: int                 # distinct codes among all analysed frames
    code_perplexity: float          # exp(entropy of the code distribution)
    phones: list[str]               # column order of the count matrices
    num_utterances: dict[str, int]  # {"train": .., "test": ..}
    num_frames: dict[str, int]
    phone_purity: float             # on all frames
    cluster_purity: float
    pnmi: float
    mapping_accuracy: dict[str, float]   # {"train": .., "test": ..}: code -> majority phone
    majority_baseline: dict[str, float]  # majority phone of train, scored on train/test
    majority_phone: str
    phone_recall: dict[str, dict]        # test split: phone -> {"recall", "count"}
    most_phonetic_codes: list[CodeStat]
    least_phonetic_codes: list[CodeStat]
    notes: list[str] = field(default_factory=list)
    counts: np.ndarray | None = field(default=None, repr=False)     # [codes, phones], all frames
    confusion: np.ndarray | None = field(default=None, repr=False)  # [true, mapped], test frames

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("counts")
        d.pop("confusion")
        return _jsonable(d)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) else round(x, 6)
    return x


def pair_frames(items: Iterable[tuple[np.ndarray, Sequence[Interval]]], hop: int, sample_rate: int,
                ignore: Sequence[str] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per utterance (codes, labels) with unlabelled frames ("" labels, or labels in `ignore`)
    removed."""
    out = []
    for codes, intervals in items:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        labels = frame_labels(intervals, len(codes), hop, sample_rate)
        keep = labels != ""
        for lab in ignore:
            keep &= labels != lab
        out.append((codes[keep], labels[keep]))
    return out


def analyze_tokens(items: Sequence[tuple[np.ndarray, Sequence[Interval]]], hop: int, sample_rate: int,
                   codebook_size: int | None = None, test_fraction: float = 0.2, seed: int = 0,
                   is_test: np.ndarray | None = None, ignore: Sequence[str] = (),
                   phone_order: Sequence[str] | None = None, min_count: int = 20,
                   top: int = 10) -> PhoneAnalysis:
    """All metrics for tokens paired with phone alignments; independent of any model.

    items: one (codes, phone intervals) per utterance, codes at one per `hop` samples.
    is_test: utterance-level split mask (default `split_utterances(len(items), test_fraction,
    seed)`). With a single utterance the test scores are computed on the training frames and a
    note says so. ignore: labels dropped before analysis (e.g. ["sil"]). phone_order: column
    order (default: `phones.PHONES` order, unknown labels appended). Codes with fewer than
    `min_count` frames are left out of the most/least phonetic lists.
    """
    notes: list[str] = []
    paired = pair_frames(items, hop, sample_rate, ignore)
    if is_test is None:
        is_test = split_utterances(len(paired), test_fraction, seed)
    is_test = np.asarray(is_test, dtype=bool)
    all_codes = np.concatenate([c for c, _ in paired]) if paired else np.zeros(0, np.int64)
    all_labels = np.concatenate([lab for _, lab in paired]) if paired else np.zeros(0, object)
    if len(all_codes) == 0:
        raise ValueError("no labelled frames to analyse (do the alignments cover the audio?)")
    if phone_order is None:
        phone_order = _default_order()
    present = set(all_labels.tolist())
    phones = [p for p in phone_order if p in present] + sorted(present - set(phone_order))
    pid = {p: i for i, p in enumerate(phones)}
    K = int(max(codebook_size or 0, int(all_codes.max()) + 1))

    def ids(labels):
        return np.array([pid[lab] for lab in labels], dtype=np.int64)

    train = [p for p, t in zip(paired, is_test) if not t]
    test = [p for p, t in zip(paired, is_test) if t]
    if not test:
        notes.append("fewer than 2 utterances: test scores are computed on the training frames")
        test = train
    tr_c = np.concatenate([c for c, _ in train])
    tr_y = ids(np.concatenate([lab for _, lab in train]))
    te_c = np.concatenate([c for c, _ in test])
    te_y = ids(np.concatenate([lab for _, lab in test]))

    counts = contingency(all_codes, ids(all_labels), K, len(phones))
    tr_counts = contingency(tr_c, tr_y, K, len(phones))
    mapping = majority_mapping(tr_counts)
    majority = int(tr_counts.sum(axis=0).argmax())

    def acc(pred, true):
        return float(np.mean(pred == true)) if len(true) else float("nan")

    confusion = contingency(te_y, mapping[te_c], len(phones), len(phones))
    recall = {}
    for i, p in enumerate(phones):
        n = int(confusion[i].sum())
        if n:
            recall[p] = {"recall": float(confusion[i, i] / n), "count": n}

    code_n = counts.sum(axis=1)
    used = np.flatnonzero(code_n)
    pz = code_n[used] / code_n.sum()
    stats = [CodeStat(int(z), int(code_n[z]), phones[int(counts[z].argmax())],
                      float(counts[z].max() / code_n[z])) for z in used if code_n[z] >= min_count]
    if not stats and len(used):
        notes.append(f"no code has >= {min_count} frames: most/least phonetic lists use all codes")
        stats = [CodeStat(int(z), int(code_n[z]), phones[int(counts[z].argmax())],
                          float(counts[z].max() / code_n[z])) for z in used]
    by_purity = sorted(stats, key=lambda s: (-s.purity, -s.count))
    least = sorted(stats, key=lambda s: (s.purity, -s.count))

    return PhoneAnalysis(
        codebook_size=K, codes_used=int(len(used)),
        code_perplexity=float(np.exp(-np.sum(pz * np.log(pz)))),
        phones=phones,
        num_utterances={"train": len(train), "test": int(is_test.sum())},
        num_frames={"train": int(len(tr_c)), "test": int(len(te_c))},
        phone_purity=phone_purity(counts), cluster_purity=cluster_purity(counts), pnmi=pnmi(counts),
        mapping_accuracy={"train": acc(mapping[tr_c], tr_y), "test": acc(mapping[te_c], te_y)},
        majority_baseline={"train": acc(np.full(len(tr_y), majority), tr_y),
                           "test": acc(np.full(len(te_y), majority), te_y)},
        majority_phone=phones[majority], phone_recall=recall,
        most_phonetic_codes=by_purity[:top], least_phonetic_codes=least[:top],
        notes=notes, counts=counts, confusion=confusion)


def _default_order() -> list[str]:
    try:
        from .phones import PHONES
        return list(PHONES)
    except ImportError:  # pragma: no cover - phones.py is part of the package
        return []


# --------------------------------------------------------------------------- speaker independence
@dataclass
class TokenizedUtterance:
    codes: np.ndarray
    intervals: Sequence[Interval]
    speaker: str
    transcript: str | None = None   # None: not used for the agreement check


def _norm_text(text: str) -> str:
    return " ".join("".join(ch.lower() if ch.isalnum() or ch == "'" else " " for ch in text).split())


def token_agreement(utts: Sequence[TokenizedUtterance], hop: int, sample_rate: int, seed: int = 0,
                    ignore: Sequence[str] = (SILENCE,)) -> dict:
    """Do two speakers saying the same words get the same tokens?

    Utterances with identical (normalised) transcripts from different speakers are paired. Their
    phone sequences (labels in `ignore` dropped) are matched with difflib's longest-matching-blocks
    alignment, which leaves out phones where the two alignments disagree. For each matched phone
    pair, the tokens at the two phones' centres are compared. `agreement` is the fraction equal;
    `chance` is the same fraction after shuffling which phone pair each B-side token belongs to
    (the agreement expected from the two code distributions alone)."""
    import difflib
    import itertools

    groups: dict[str, list[TokenizedUtterance]] = {}
    for u in utts:
        if u.transcript:
            groups.setdefault(_norm_text(u.transcript), []).append(u)
    a_tok, b_tok, n_pairs = [], [], 0

    def centre_tokens(u, ivs):
        t = np.array([(iv.start + iv.end) / 2 for iv in ivs])
        idx = np.clip((t * sample_rate / hop).astype(np.int64), 0, len(u.codes) - 1)
        return np.asarray(u.codes)[idx]

    for group in groups.values():
        for ua, ub in itertools.combinations(group, 2):
            if ua.speaker == ub.speaker or not len(ua.codes) or not len(ub.codes):
                continue
            pa = [iv for iv in ua.intervals if iv.label and iv.label not in ignore]
            pb = [iv for iv in ub.intervals if iv.label and iv.label not in ignore]
            sm = difflib.SequenceMatcher(a=[iv.label for iv in pa], b=[iv.label for iv in pb], autojunk=False)
            ia, ib = [], []
            for blk in sm.get_matching_blocks():
                ia.extend(range(blk.a, blk.a + blk.size))
                ib.extend(range(blk.b, blk.b + blk.size))
            if not ia:
                continue
            n_pairs += 1
            a_tok.append(centre_tokens(ua, [pa[i] for i in ia]))
            b_tok.append(centre_tokens(ub, [pb[i] for i in ib]))
    if not n_pairs:
        return {"skipped": _why_no_pairs(utts, groups)}
    a, b = np.concatenate(a_tok), np.concatenate(b_tok)
    perm = np.random.default_rng(seed).permutation(len(b))
    return {"utterance_pairs": n_pairs, "phones_compared": int(len(a)),
            "agreement": float(np.mean(a == b)), "chance": float(np.mean(a == b[perm]))}


def _why_no_pairs(utts: Sequence[TokenizedUtterance], groups: dict[str, list[TokenizedUtterance]]) -> str:
    """What was actually missing when token_agreement found no utterance pair to compare."""
    with_text = sum(1 for u in utts if u.transcript)
    if not with_text:
        return (f"none of the {len(utts)} utterances has a transcript (a .txt next to each audio "
                "file); pairs of the same text read by two speakers are needed")
    shared = [g for g in groups.values() if len({u.speaker for u in g}) > 1]
    if not shared:
        return (f"{with_text} of {len(utts)} utterances have a transcript, but none of their "
                f"{len(groups)} distinct texts is read by two different speakers")
    return (f"{len(shared)} text(s) are read by two or more speakers, but their phone alignments "
            "share no phone (or their token sequences are empty)")


def speaker_classification(utts: Sequence[TokenizedUtterance], codebook_size: int,
                           is_test: np.ndarray) -> dict:
    """How much speaker identity do the token *counts* carry? Each utterance becomes its code
    histogram (normalised to sum 1, square-rooted: the Hellinger embedding); a nearest-centroid
    classifier (Euclidean) is fitted on the training utterances and scored on test utterances of
    speakers seen in training. Near `chance` (the test set's most frequent speaker) = the token
    distribution does not reveal the speaker."""
    speakers = sorted({u.speaker for u in utts})
    if len(speakers) < 2:
        return {"skipped": f"needs >= 2 speakers (found {len(speakers)})"}
    is_test = np.asarray(is_test, dtype=bool)
    K = max(codebook_size, max((int(np.max(u.codes)) + 1 for u in utts if len(u.codes)), default=1))

    def embed(u):
        h = np.bincount(np.asarray(u.codes, dtype=np.int64), minlength=K).astype(np.float64)
        return np.sqrt(h / max(h.sum(), 1))

    train = [u for u, t in zip(utts, is_test) if not t]
    train_spk = sorted({u.speaker for u in train})
    test = [u for u, t in zip(utts, is_test) if t and u.speaker in train_spk]
    if len(train_spk) < 2 or not test:
        return {"skipped": "the split leaves < 2 training speakers or no test utterance of a training speaker"}
    cents = np.stack([np.mean([embed(u) for u in train if u.speaker == s], axis=0) for s in train_spk])
    x = np.stack([embed(u) for u in test])
    pred = np.argmin(((x[:, None, :] - cents[None]) ** 2).sum(-1), axis=1)
    truth = np.array([train_spk.index(u.speaker) for u in test])
    return {"speakers": len(train_spk), "test_utterances": len(test),
            "accuracy": float(np.mean(pred == truth)),
            "chance": float(np.bincount(truth).max() / len(truth)),
            "uniform_chance": 1.0 / len(train_spk)}


def speaker_independence(utts: Sequence[TokenizedUtterance], hop: int, sample_rate: int, codebook_size: int,
                         is_test: np.ndarray, seed: int = 0) -> dict:
    """Both checks of issue 6 item 5: cross-speaker token agreement on the same text and a
    speaker classifier on token histograms. Each part says why when it is skipped."""
    if len({u.speaker for u in utts}) < 2:
        return {"skipped": f"needs >= 2 speakers (found {len({u.speaker for u in utts})})"}
    return {"token_agreement": token_agreement(utts, hop, sample_rate, seed),
            "speaker_classifier": speaker_classification(utts, codebook_size, is_test)}
