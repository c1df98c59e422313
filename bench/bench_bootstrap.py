"""Identity-bootstrap intervals of EER + minDCF(0.01, 0.05) against one EER evaluation, in one run.

    python bench/bench_bootstrap.py [--trials 1000000] [--speakers 1251] [--resamples 1000] [--seed 0]

What is measured, printed with the numbers:
1. One `verification_summary` (EER and both minDCFs, one sort) of --trials scores:
   the cost of one evaluation, best of 3.
2. `verification_intervals` with --resamples identity resamples on the same
   scores (one sort, then each resample reweights the trials), one run; it
   includes its own point estimate. Goal: well under 30 s at 1M trials.
3. The ratio (2) / (1): what an interval costs in evaluations. A naive bootstrap
   re-evaluates every resample (ratio >= --resamples).
Scores: float64, half targets ~ N(2, 1), half non-targets ~ N(0, 1); each trial's
speakers uniform among --speakers (VoxCeleb1 has 1,251), non-targets between two
different speakers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from xmd_cli.metrics.bootstrap_verification import verification_intervals  # noqa: E402
from xmd_cli.metrics.verification import verification_summary  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--speakers", type=int, default=1251)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    labels = rng.random(args.trials) < 0.5
    enroll = rng.integers(0, args.speakers, args.trials)
    test = np.where(labels, enroll, (enroll + 1 + rng.integers(0, args.speakers - 1, args.trials)) % args.speakers)
    scores = rng.normal(np.where(labels, 2.0, 0.0), 1.0)
    print(f"machine: {os.cpu_count()} CPU cores visible, numpy {np.__version__}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"scores: {args.trials:,} float64 trials (seed {args.seed}), {int(labels.sum()):,} targets, "
          f"{args.speakers:,} speakers")

    times = []
    for _ in range(3):
        start = time.perf_counter()
        summary = verification_summary(scores, labels)
        times.append(time.perf_counter() - start)
    one = min(times)
    print(f"\n[1] one evaluation (EER + minDCF x2): best {one:.3f} s of 3")

    start = time.perf_counter()
    result = verification_intervals(scores, labels, enroll, test, resamples=args.resamples, seed=args.seed)
    interval = time.perf_counter() - start
    goal = "met" if interval < 30 else "NOT met"
    print(f"[2] identity bootstrap, {args.resamples:,} resamples: {interval:.2f} s "
          f"({1000 * interval / args.resamples:.1f} ms a resample; goal well under 30 s: {goal})")
    print(f"[3] ratio (2)/(1): {interval / one:.0f} evaluations' worth for {args.resamples:,} resamples "
          f"(a naive bootstrap: >= {args.resamples:,})")
    for name, entry in result["metrics"].items():
        scale, unit = (100, " %") if name == "eer" else (1, "")
        low, high = scale * entry["ci_low"], scale * entry["ci_high"]
        print(f"    {name}: {scale * entry['value']:.4f} [{low:.4f}, {high:.4f}]{unit}")
    assert result["metrics"]["eer"]["value"] == summary["eer"]  # the same point estimate


if __name__ == "__main__":
    main()
