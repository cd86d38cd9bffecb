"""HD95 time on 3D spheres: segrob (k-d tree over the surfaces) against a distance transform of
the bounding box (segrob's previous method, MONAI's too) and MONAI itself, if installed.

Each round times every method once on the same masks, in turn, so that machine load affects all
alike; the table gives each method's median time and the median time ratio over rounds with its
spread (lowest-highest round), ``x = other time / segrob time`` (above 1: segrob is faster).

    python benchmarks/bench_hd95.py [--size 128] [--rounds 7] [--json out.json]

MONAI is the ``bench`` extra (``pip install segrob[bench]``); without it its column is skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from segrob.metrics import hd95

RADII = (8.0, 20.0, 40.0)


def spheres(size: int, radius: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A label sphere and a 5% larger prediction sphere shifted by ``shift`` voxels per axis."""
    grid = np.indices((size,) * 3, dtype=np.float32)
    centre = size / 2.0
    gt = ((grid - centre) ** 2).sum(axis=0) < radius**2
    pred = ((grid - centre - shift) ** 2).sum(axis=0) < (radius * 1.05) ** 2
    return pred, gt


def edt_hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The same definition by exact distance transforms of the joint bounding box (plus one voxel)."""
    box = ndimage.find_objects((pred | gt).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
    pred, gt = pred[box], gt[box]
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    s_pred = pred & ~ndimage.binary_erosion(pred, structure=structure, border_value=0)
    s_gt = gt & ~ndimage.binary_erosion(gt, structure=structure, border_value=0)
    to_gt = ndimage.distance_transform_edt(~s_gt, sampling=spacing)[s_pred]
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)[s_gt]
    return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))


def monai_hd95():
    """MONAI's HD95 on the same masks, or None if MONAI is not installed."""
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


def alternate(methods: dict, pred: np.ndarray, gt: np.ndarray, rounds: int) -> dict:
    """Each method's value and per-round seconds, every round timing all methods in turn."""
    values = {name: method(pred, gt) for name, method in methods.items()}  # also the warm-up
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            method(pred, gt)
            seconds[name].append(time.perf_counter() - start)
    return {"values": values, "seconds": seconds}


def ratio_summary(other: list[float], ours: list[float]) -> dict:
    """Median and spread (lowest, highest) of the per-round ratios ``other / ours``."""
    ratios = [a / b for a, b in zip(other, ours, strict=True)]
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    # MONAI 1.5 warns about a deprecated argument of its own on every call
    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
    spacing = (1.0, 1.0, 1.0)
    methods = {"segrob": partial(hd95, spacing=spacing),
               "edt": partial(edt_hd95, spacing=spacing)}
    if (monai := monai_hd95()) is not None:
        methods["monai"] = monai
    print(f"{args.size}^3 spheres, {args.rounds} alternating rounds; median ms, and "
          "x = other / segrob time: median [lowest-highest round]")
    rows = []
    for radius in RADII:
        pred, gt = spheres(args.size, radius, 2.0)
        timing = alternate(methods, pred, gt, args.rounds)
        row = {"size": args.size, "radius": radius, **timing,
               "ratios": {name: ratio_summary(timing["seconds"][name], timing["seconds"]["segrob"])
                          for name in methods if name != "segrob"}}
        rows.append(row)
        cells = [f"radius {radius:>4.0f}: HD95 {timing['values']['segrob']:.3f} mm",
                 f"segrob {statistics.median(timing['seconds']['segrob']) * 1e3:7.1f} ms"]
        for name, ratio in row["ratios"].items():
            cells.append(f"{name} {statistics.median(timing['seconds'][name]) * 1e3:7.1f} ms "
                         f"x {ratio['median']:5.2f} [{ratio['low']:.2f}-{ratio['high']:.2f}]"
                         f" (HD95 {timing['values'][name]:.3f})")
        print("  ".join(cells))
    if monai is None:
        print("MONAI not installed: its comparison is skipped (pip install segrob[bench])")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
