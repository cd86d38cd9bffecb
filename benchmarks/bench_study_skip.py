"""The skip-connection study at a small size: prints the Table-1-style result and its run time.

    python benchmarks/bench_study_skip.py [--out bench-skip] [--epochs 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from segrob.studies.skip import SkipStudyConfig, run_skip_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-skip")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run_skip_study(SkipStudyConfig(
        out=Path(args.out), levels=("low", "medium", "high"), archs=("unet", "noskip", "attention"),
        n_train=args.n_train, n_test=12, size=args.size, epochs=args.epochs, shift_suite="noise",
    ), notify=lambda message: print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True))
    seconds = time.perf_counter() - start
    print(f"{'level':<8}{'arch':<11}{'in-domain':>10}{'easier':>8}{'harder':>8}{'noise rR':>10}")
    for row in result["table"]:
        values = [row[k] for k in ("in_domain", "easier", "harder", "shift_rr")]
        print(f"{row['level']:<8}{row['arch']:<11}" + "".join(
            f"{v:>{w}.3f}" for v, w in zip(values, (10, 8, 8, 10), strict=True)))
    print(f"run time {seconds:.0f} s (steps already in {args.out} are reused)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"seconds": seconds, **result}, indent=2))


if __name__ == "__main__":
    main()
