"""HD95 time: segrob (cropped exact EDT) against the same EDT uncropped and MONAI, if installed.

    python benchmarks/bench_hd95.py [--size 128] [--repeats 3] [--json out.json]

MONAI is the ``bench`` extra (``pip install segrob[bench]``); without it its column is skipped.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from segrob.metrics import hd95


def spheres(size: int, radius: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A label sphere and a 5% larger prediction sphere shifted by ``shift`` voxels per axis."""
    grid = np.indices((size,) * 3, dtype=np.float32)
    centre = size / 2.0
    gt = ((grid - centre) ** 2).sum(axis=0) < radius**2
    pred = ((grid - centre - shift) ** 2).sum(axis=0) < (radius * 1.05) ** 2
    return pred, gt


def uncropped_hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The same definition over the whole volume: what the bounding-box crop saves."""
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    s_pred = pred & ~ndimage.binary_erosion(pred, structure=structure, border_value=0)
    s_gt = gt & ~ndimage.binary_erosion(gt, structure=structure, border_value=0)
    to_gt = ndimage.distance_transform_edt(~s_gt, sampling=spacing)[s_pred]
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)[s_gt]
    return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))


def _timed(function, *args, repeats: int) -> tuple[float, float]:
    """The function's value and its mean wall time in seconds over ``repeats`` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        value = function(*args)
    return float(value), (time.perf_counter() - start) / repeats


def _monai():
    try:
        import torch
        from monai.metrics import compute_hausdorff_distance
    except ImportError:
        return None

    def run(pred: np.ndarray, gt: np.ndarray) -> float:
        p = torch.from_numpy(pred)[None, None].float()
        g = torch.from_numpy(gt)[None, None].float()
        return float(compute_hausdorff_distance(p, g, percentile=95).item())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    # MONAI 1.5 warns about a deprecated argument of its own on every call
    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
    spacing = (1.0, 1.0, 1.0)
    monai = _monai()
    if monai is None:
        print("MONAI not installed: its comparison is skipped (pip install segrob[bench])")
    rows = []
    for radius in (8.0, 20.0, 40.0):
        pred, gt = spheres(args.size, radius, 2.0)
        ours, ours_s = _timed(partial(hd95, spacing=spacing), pred, gt, repeats=args.repeats)
        full, full_s = _timed(uncropped_hd95, pred, gt, spacing, repeats=args.repeats)
        row = {"size": args.size, "radius": radius, "segrob_hd95": ours, "segrob_seconds": ours_s,
               "uncropped_hd95": full, "uncropped_seconds": full_s, "crop_speedup": full_s / ours_s}
        line = (f"{args.size}^3, sphere radius {radius:.0f}: HD95 {ours:.3f} mm in "
                f"{ours_s * 1000:.1f} ms (uncropped {full_s * 1000:.1f} ms, "
                f"{row['crop_speedup']:.1f}x as long)")
        if monai is not None:
            theirs, theirs_s = _timed(monai, pred, gt, repeats=args.repeats)
            row.update(monai_hd95=theirs, monai_seconds=theirs_s, monai_ratio=theirs_s / ours_s)
            line += f"; MONAI {theirs:.3f} mm in {theirs_s * 1000:.1f} ms"
            line += f" ({theirs_s / ours_s:.2f}x as long)"
        rows.append(row)
        print(line)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
