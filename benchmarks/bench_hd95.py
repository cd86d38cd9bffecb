"""HD95 time: segrob (cropped exact EDT) against MONAI's compute_hausdorff_distance, if installed.

    python benchmarks/bench_hd95.py [--size 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from segrob.metrics import hd95


def spheres(size: int, radius: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    grid = np.indices((size,) * 3, dtype=np.float32)
    centre = size / 2.0
    gt = ((grid - centre) ** 2).sum(axis=0) < radius**2
    pred = ((grid - centre - shift) ** 2).sum(axis=0) < (radius * 1.05) ** 2
    return pred, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    rows = []
    for radius in (8.0, 20.0, 40.0):
        pred, gt = spheres(args.size, radius, 2.0)
        start = time.perf_counter()
        for _ in range(args.repeats):
            ours = hd95(pred, gt, spacing=(1.0, 1.0, 1.0))
        ours_s = (time.perf_counter() - start) / args.repeats
        row = {"size": args.size, "radius": radius, "segrob_hd95": ours, "segrob_seconds": ours_s}
        try:
            import torch
            from monai.metrics import compute_hausdorff_distance

            p = torch.from_numpy(pred)[None, None].float()
            g = torch.from_numpy(gt)[None, None].float()
            start = time.perf_counter()
            for _ in range(args.repeats):
                theirs = float(compute_hausdorff_distance(p, g, percentile=95).item())
            row["monai_hd95"] = theirs
            row["monai_ratio"] = ((time.perf_counter() - start) / args.repeats) / ours_s
        except ImportError:
            pass
        rows.append(row)
    for row in rows:
        extra = (f", MONAI {row['monai_hd95']:.3f} mm, MONAI takes {row['monai_ratio']:.2f}x as long"
                 if "monai_ratio" in row else ", MONAI not installed (skipped)")
        print(f"{row['size']}^3, sphere radius {row['radius']:.0f}: HD95 {row['segrob_hd95']:.3f} mm in "
              f"{row['segrob_seconds'] * 1000:.1f} ms{extra}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
