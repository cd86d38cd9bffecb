"""Texture distance against blend on segrob's own generator: the calibration of the levels.

Prints the median TD per blend and image size (and writes JSON with --json). The level
thresholds in segrob/data/complexity.py come from this table at 128 px.

    python benchmarks/calibrate_complexity.py [--n 60] [--sizes 64,128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from segrob.data.complexity import LEVEL_THRESHOLDS, measure_complexity
from segrob.data.synth import SynthConfig, generate

BLENDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    table: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for size in sizes:
        row = {}
        for blend in BLENDS:
            cases = generate(SynthConfig(dims=args.dims, n=args.n, size=size, blend=blend, seed=args.seed))
            row[f"{blend:.1f}"] = measure_complexity(cases).summary["median"]
        table[str(size)] = row
    print(f"median texture distance (bits), {args.dims}D, {args.n} cases per cell")
    print("size  " + " ".join(f"{b:>6.1f}" for b in BLENDS))
    for size, row in table.items():
        print(f"{size:>4}  " + " ".join(f"{v:6.3f}" for v in row.values()))
    print(f"thresholds: low >= {LEVEL_THRESHOLDS['low']}, high < {LEVEL_THRESHOLDS['medium']}")
    print(f"took {time.perf_counter() - start:.1f} s")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"dims": args.dims, "n": args.n, "median_td": table,
                       "thresholds": LEVEL_THRESHOLDS, "seed": args.seed}, handle, indent=2)
    assert all(np.isfinite(v) for row in table.values() for v in row.values())


if __name__ == "__main__":
    main()
