"""Score checkpoints of the conversion study with the project's own commands, one table row each.

For every checkpoint: `vqcodec eval-convert` on the parallel set (four voices no model heard, each
reading the same held-out sentences; each voice's first clips up to 10 s are its reference) and
`vqcodec analyze phonemes` on data/synth/eval_unseen (same four voices, exact alignments); the
training log's quality monitor and valid mel at that step. Reports are kept under
reports/conv/VARIANT/STEP/.

    python recipes/real/conversion/score.py runs/conv/none/checkpoint-500.pt runs/conv/perturb/checkpoint-*.pt
    python recipes/real/conversion/score.py --align runs/conv/dvector/checkpoint.pt   # + intelligibility
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PARALLEL = "data/parallel"
PHONES = "data/synth/eval_unseen"
HEADER = ("| variant | step | valid mel | q PESQ | q STOI | par. win | MCD tgt / src (before) | clf tgt / src "
          "| resemblyzer tgt / src | tgt>src | swap | F0 <=1 st | phone seq. | mapping (MFCC) | PNMI | spk from hist. |")


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def log_at(run_dir: Path, step: int) -> dict:
    """The last validation record at or before `step` in the run's log.jsonl."""
    best: dict = {}
    if not (run_dir / "log.jsonl").is_file():  # a shipped model: no training log
        return best
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "valid_mel" in rec and rec["step"] <= step:
            best = {**best, **rec}  # the quality monitor's last values stay until it runs again
    return best


def score(ckpt: Path, align: bool, out_root: Path) -> str:
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    step = int(state.get("step", 0))
    # a run's checkpoint is named by its run folder; an exported model by its file name
    variant = ckpt.parent.name if (ckpt.parent / "log.jsonl").is_file() else ckpt.stem
    out = out_root / variant / str(step)
    ec, ph = out / "convert", out / "phonemes"
    if not (ec / "convert.json").is_file():
        run(["vqcodec", "eval-convert", PARALLEL, "--like-refs", PARALLEL, "-m", str(ckpt), "-q", "--listen", "6",
             "-o", str(ec)] + ([] if align else ["--no-align"]))
    if not (ph / "report.json").is_file():
        run(["vqcodec", "analyze", "phonemes", PHONES, "-m", str(ckpt), "--no-ze-kmeans", "-q", "-o", str(ph)])
    c = json.loads((ec / "convert.json").read_text())
    p = json.loads((ph / "report.json").read_text())["side_by_side"]
    lg = log_at(ckpt.parent, step)
    m = c["mean"]

    def f(v, spec=".3f"):
        return "-" if v is None else format(v, spec)
    intel = c["intelligibility"].get("phone_sequence_match")
    return (f"| {variant} | {step} | {f(lg.get('valid_mel'))} | {f(lg.get('q_pesq_wb'), '.2f')} | "
            f"{f(lg.get('q_stoi'))} | {f(c['parallel_win_rate'], '.0%')} | "
            f"{f(m['mcd_target'], '.2f')} / {f(m['mcd_source'], '.2f')} ({f(m['mcd_original_target'], '.2f')}) | "
            f"{f(c['classifier_target_rate'], '.0%')} / {f(c['classifier_source_rate'], '.0%')} | "
            f"{f(m['sim_target'])} / {f(m['sim_source'])} | {f(c['fraction_closer_to_target'], '.0%')} | "
            f"{f(m['swap_sensitivity'], '.2f')} | {f(c['f0_within_1_semitone'], '.0%')} | {f(intel, '.0%')} | "
            f"{f(p['mapping_accuracy_test']['tokens'], '.1%')} ({f(p['mapping_accuracy_test']['mfcc_kmeans'], '.1%')}) | "
            f"{f(p['pnmi']['tokens'])} | {f(p['speaker_from_histogram']['tokens'], '.0%')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--align", action="store_true", help="eval-convert's intelligibility check (slower)")
    ap.add_argument("-o", "--out", type=Path, default=Path("reports/conv"))
    args = ap.parse_args()
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for ckpt in args.checkpoints:
        print(score(ckpt, args.align, args.out), flush=True)


if __name__ == "__main__":
    main()
