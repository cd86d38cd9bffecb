"""Texture distance against blend on segrob's own generator: the calibration of the levels.

Prints the median TD per blend and image size (and writes JSON with --json). The level
thresholds in segrob/data/complexity.py come from this table at 128 px, one set per resize
setting (0: the images' own size; 256: every image resized to 256 x 256 as the authors' code
does), each the geometric mean of the medians at neighbouring level blends.

    python benchmarks/calibrate_complexity.py [--n 60] [--sizes 64,128] [--resize 0,256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from segrob.data.blend import COMPLEXITY_LEVELS
from segrob.data.complexity import THRESHOLDS_BY_RESIZE, measure_complexity
from segrob.data.synth import SynthConfig, generate

BLENDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def suggested(row: dict[str, float]) -> dict[str, float]:
    """Geometric means of the medians at the low/medium and medium/high blends."""
    at = {level: row[f"{blend:.1f}"] for level, blend in COMPLEXITY_LEVELS.items()}
    return {"low": round(float(np.sqrt(at["low"] * at["medium"])), 3),
            "medium": round(float(np.sqrt(at["medium"] * at["high"])), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--resize", default="0,256", help="0: the images' own size")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    resizes = [int(r) or None for r in args.resize.split(",")]
    table: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for size in sizes:
        for blend in BLENDS:
            cases = generate(SynthConfig(dims=args.dims, n=args.n, size=size, blend=blend, seed=args.seed))
            for resize in resizes:
                median = measure_complexity(cases, resize=resize).summary["median"]
                table.setdefault(f"{size} px, resize {resize or 'none'}", {})[f"{blend:.1f}"] = median
    print(f"median texture distance (bits), {args.dims}D, {args.n} cases per cell")
    print(f"{'':<22}" + " ".join(f"{b:>6.1f}" for b in BLENDS))
    for name, row in table.items():
        print(f"{name:<22}" + " ".join(f"{v:6.3f}" for v in row.values()))
        print(f"{'':<22}suggested thresholds: {suggested(row)}")
    print(f"stored thresholds: {THRESHOLDS_BY_RESIZE}")
    print(f"took {time.perf_counter() - start:.1f} s")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"dims": args.dims, "n": args.n, "median_td": table, "seed": args.seed,
                       "thresholds": {str(k): v for k, v in THRESHOLDS_BY_RESIZE.items()}}, handle, indent=2)
    assert all(np.isfinite(v) for row in table.values() for v in row.values())


if __name__ == "__main__":
    main()
