"""3D inference: the whole volume in one pass against the sliding window, in time and in Dice.

A 3D U-Net trained on patches is audited on larger unseen volumes twice, with ``--inference
window`` (patch-sized windows, Gaussian weighting, the given overlap: how it was validated) and
``--inference whole`` (one pass over each volume: a fully convolutional model accepts it), in
alternating rounds in one process so that machine load affects both alike. Prints each mode's
audit time and inference time (median and spread over rounds), the ratio whole / window, each
mode's clean Dice, and the per-case Dice difference (whole - window): the scores are not the same,
as the model sees other context and no stitching, and this says by how much.

    python benchmarks/bench_inference_mode.py [--cases 6] [--size 96] [--train-size 64] \\
        [--patch 32] [--epochs 15] [--suite clean] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from bench_audit import _range, spread  # the same median-and-spread figures as the audit benchmark

from segrob.audit import AuditOptions, audit
from segrob.audit.data_source import resolve_audit_data
from segrob.audit.records import CLEAN
from segrob.onnx.export import export_model


def trained_model(workdir: Path, *, size: int, patch: int, epochs: int) -> Path:
    """A 3D U-Net trained on ``patch``-sized crops of synthetic volumes, exported to ONNX."""
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.training import TrainConfig, load_run, train

    data = workdir / "train"
    write_synthetic(SynthConfig(dims=3, n=8, size=size, blend=0.5, seed=1), data)
    run = workdir / "run"
    train(TrainConfig(data=str(data), out=str(run), arch="unet", epochs=epochs, patch_size=patch, seed=0))
    model, config = load_run(run)
    path = workdir / "unet3d.onnx"
    export_model(model, path, config=config.to_dict())
    return path


def clean_dice(report) -> dict[str, float]:
    """Each case's clean Dice."""
    return {r["case"]: r["metrics"]["dice"] for r in report.records if r["perturbation"] == CLEAN}


def measure(model: Path, data, options: AuditOptions, rounds: int) -> dict:
    modes = {"window": options, "whole": replace(options, inference="whole")}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    inference: dict[str, list[float]] = {mode: [] for mode in modes}
    reports = {mode: audit(model, data, opts) for mode, opts in modes.items()}  # also the warm-up
    for _ in range(rounds):
        for mode, opts in modes.items():
            start = time.perf_counter()
            reports[mode] = audit(model, data, opts)
            seconds[mode].append(time.perf_counter() - start)
            inference[mode].append(reports[mode].timings["inference"])
    dice = {mode: clean_dice(report) for mode, report in reports.items()}
    differences = [dice["whole"][case] - dice["window"][case] for case in dice["window"]]
    return {
        "window": reports["window"].settings["inference"]["window"],
        "overlap": options.overlap,
        "seconds": {mode: spread(values) for mode, values in seconds.items()},
        "inference_seconds": {mode: spread(values) for mode, values in inference.items()},
        "time_ratio_whole_over_window": spread(
            [w / s for w, s in zip(seconds["whole"], seconds["window"], strict=True)]),
        "clean_dice": {mode: round(float(np.mean(list(values.values()))), 4)
                       for mode, values in dice.items()},
        "dice_difference": {"mean": round(float(np.mean(differences)), 4),
                            "min": round(float(np.min(differences)), 4),
                            "max": round(float(np.max(differences)), 4)},
        "cells": len(reports["window"].records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--size", type=int, default=96, help="edge of the audited volumes")
    parser.add_argument("--train-size", type=int, default=64, help="edge of the training volumes")
    parser.add_argument("--patch", type=int, default=32, help="training patch (and window) edge")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--suite", default="clean")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model = trained_model(Path(tmp), size=args.train_size, patch=args.patch, epochs=args.epochs)
        data = resolve_audit_data("synth:medium", n=args.cases, size=args.size, spatial_dims=3)
        options = AuditOptions(suite=args.suite, batch_size=1, device="cpu", overlap=args.overlap)
        row = measure(model, data, options, args.rounds)
    row.update(cases=args.cases, size=args.size, patch=args.patch, epochs=args.epochs, suite=args.suite,
               rounds=args.rounds)
    print(f"3D U-Net trained {args.epochs} epochs on {args.patch}^3 patches; {args.cases} unseen "
          f"{args.size}^3 volumes, suite {args.suite} ({row['cells']} cells), {args.rounds} "
          "alternating rounds (median, min-max)")
    for mode in ("window", "whole"):
        label = (f"window {'x'.join(map(str, row['window']))} (overlap {row['overlap']})"
                 if mode == "window" else "whole volume")
        print(f"  {label:<28} audit s {_range(row['seconds'][mode])}, inference s "
              f"{_range(row['inference_seconds'][mode])}, clean Dice {row['clean_dice'][mode]:.4f}")
    difference = row["dice_difference"]
    print(f"  whole / window time {_range(row['time_ratio_whole_over_window'])}; clean Dice whole - "
          f"window per case: mean {difference['mean']:+.4f} (min {difference['min']:+.4f}, "
          f"max {difference['max']:+.4f})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
