"""EER + minDCF(0.01, 0.05): xmd against speechbrain's functions, in one run.

    python bench/bench_eer.py [--trials 1000000] [--sb-trials 10000] [--repeats 5] [--seed 0]

What is measured, printed with the numbers:
1. xmd's `verification_summary` (one sort: EER and both minDCFs) on --trials
   scores, best and median of --repeats runs. Goal: under 1 s on 2 cores.
2. speechbrain's `EER` + `minDCF(p=0.01)` + `minDCF(p=0.05)` and xmd on the *same*
   first --sb-trials scores; the ratio is speechbrain time / xmd time at that size.
   speechbrain cannot run at 1M: its EER loops in Python over 2n thresholds
   (O(n^2) work) and its minDCF builds a (thresholds x trials) matrix (O(n^2)
   memory, ~180 GB at 100k). A 1M-trial figure for speechbrain is an
   extrapolation from its O(n^2) scaling and is labelled as such.
3. That both give the same numbers on the shared subset.
Scores: float64, unrounded, half targets ~ N(2, 1), half non-targets ~ N(0, 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xmd_cli.metrics.verification import verification_summary  # noqa: E402


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, min(times), statistics.median(times)


def speechbrain_metrics(scores, labels):
    import torch
    from speechbrain.utils.metric_stats import EER, minDCF
    positive = torch.from_numpy(scores[labels])
    negative = torch.from_numpy(scores[~labels])
    eer, _ = EER(positive, negative)
    dcf_01, _ = minDCF(positive, negative, p_target=0.01)
    dcf_05, _ = minDCF(positive, negative, p_target=0.05)
    return {"eer": eer, "min_dcf_raw@0.01": dcf_01, "min_dcf_raw@0.05": dcf_05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--sb-trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import speechbrain.utils.metric_stats  # noqa: F401
    import torch  # imported before timing anything, so no import cost is timed

    rng = np.random.default_rng(args.seed)
    labels = rng.random(args.trials) < 0.5
    scores = rng.normal(np.where(labels, 2.0, 0.0), 1.0)
    print(f"machine: {os.cpu_count()} CPU cores visible, torch threads {torch.get_num_threads()}, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print(f"scores: {args.trials:,} float64 trials (seed {args.seed}), {int(labels.sum()):,} targets, "
          f"{np.unique(scores).size:,} distinct values")

    result, best, median = timed(lambda: verification_summary(scores, labels), args.repeats)
    print(f"\n[1] xmd EER + minDCF(0.01, 0.05), {args.trials:,} trials: best {best:.3f} s, "
          f"median {median:.3f} s of {args.repeats} runs  (goal < 1 s: {'met' if best < 1 else 'NOT met'})")
    print(f"    EER {100 * result['eer']:.3f} %, minDCF(0.01) {result['min_dcf@0.01']:.4f}, "
          f"minDCF(0.05) {result['min_dcf@0.05']:.4f}")

    n = args.sb_trials
    sub_scores, sub_labels = scores[:n], labels[:n]
    start = time.perf_counter()
    reference = speechbrain_metrics(sub_scores, sub_labels)
    sb_time = time.perf_counter() - start
    ours, ours_best, _ = timed(lambda: verification_summary(sub_scores, sub_labels), args.repeats)
    print(f"\n[2] same {n:,} trials (the first {n:,}): speechbrain EER + minDCF x2 {sb_time:.3f} s (one run), "
          f"xmd {ours_best * 1000:.2f} ms (best of {args.repeats})")
    print(f"    ratio speechbrain / xmd at {n:,} trials: {sb_time / ours_best:,.0f}x")
    print(f"    xmd at {args.trials:,} trials vs speechbrain at {n:,}: "
          f"{sb_time / best:,.1f}x faster on {args.trials // n}x the trials (both measured)")
    estimate = sb_time * (args.trials / n) ** 2
    print(f"    speechbrain at {args.trials:,} trials, EXTRAPOLATED (not measured) from O(n^2): "
          f"~{estimate / 3600:,.0f} h; its minDCF would need O(n^2) memory and cannot run")

    worst = max(abs(ours[key] - value) for key, value in reference.items())
    print(f"\n[3] agreement on the {n:,} shared trials: max |xmd - speechbrain| over EER and raw minDCFs "
          f"= {worst:.2e} (speechbrain computes in float32)")
    for key, value in reference.items():
        print(f"    {key}: xmd {ours[key]:.6f}  speechbrain {value:.6f}")


if __name__ == "__main__":
    main()
