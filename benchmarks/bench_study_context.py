"""The context vs foreground-ratio study at a small size: prints its table and run time.

    python benchmarks/bench_study_context.py [--out bench-context] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from segrob.studies.context import ContextStudyConfig, run_context_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-context")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--patches", default="16,32")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run_context_study(ContextStudyConfig(
        out=Path(args.out), patches=tuple(int(p) for p in args.patches.split(",")),
        archs=("unet", "attention", "unetr"), n_train=8, n_test=4, size=args.size, epochs=args.epochs,
    ), notify=lambda message: print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True))
    seconds = time.perf_counter() - start
    print(f"{'patch':>5}  {'arch':<10}{'same FBR':>10}{'smaller FBR':>13}{'larger FBR':>12}")
    for row in result["table"]:
        same, smaller, larger = row["dice_same_fbr"], row["dice_smaller_fbr"], row["dice_larger_fbr"]
        print(f"{row['patch']:>5}  {row['arch']:<10}{same:>10.3f}{smaller:>13.3f}{larger:>12.3f}")
    print(f"run time {seconds:.0f} s (steps already in {args.out} are reused)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"seconds": seconds, **result}, indent=2))


if __name__ == "__main__":
    main()
