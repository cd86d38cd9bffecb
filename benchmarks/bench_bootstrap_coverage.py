"""Coverage of segrob's bootstrap intervals at audit sizes: percentile vs BCa vs scipy's BCa.

Draws many samples of n Dice-like values (1 - Beta(1, 8), a left-skewed distribution with a
known mean of 8/9), builds a 95% interval of the mean from each and counts how often it holds
the true mean. A well-calibrated interval covers 0.95 of the time.

    python benchmarks/bench_bootstrap_coverage.py --trials 1000
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from segrob.metrics import bootstrap_ci

TRUE_MEAN = 8.0 / 9.0


def coverage(n: int, trials: int, resamples: int) -> dict[str, float]:
    rng = np.random.default_rng(n)
    hits = {"percentile": 0, "bca": 0, "scipy BCa": 0}
    for trial in range(trials):
        values = 1.0 - rng.beta(1.0, 8.0, size=n)
        for method in ("percentile", "bca"):
            low, high = bootstrap_ci(values, n_resamples=resamples, seed=trial, method=method)
            hits[method] += low <= TRUE_MEAN <= high
        ci = stats.bootstrap((values,), np.mean, n_resamples=resamples, method="BCa",
                             random_state=trial).confidence_interval
        hits["scipy BCa"] += ci.low <= TRUE_MEAN <= ci.high
    return {k: v / trials for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    print(f"coverage of nominal 95% intervals, {args.trials} trials, {args.resamples} resamples")
    print(f"{'n':>4} {'percentile':>11} {'bca':>6} {'scipy BCa':>10}")
    for n in (10, 20, 30):
        row = coverage(n, args.trials, args.resamples)
        print(f"{n:4d} {row['percentile']:11.3f} {row['bca']:6.3f} {row['scipy BCa']:10.3f}")


if __name__ == "__main__":
    main()
