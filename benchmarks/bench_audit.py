"""Audit overhead: `segrob audit` wall time against bare onnxruntime inference on the same batches.

The ratio is what perturbation, normalisation, metrics and bookkeeping add on top of the model's
own inference (target: <= 1.15 on a CPU). Also prints cases per second for a 2D and a 3D model.

    python benchmarks/bench_audit.py [--n2d 16] [--n3d 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from segrob.audit import AuditOptions, audit
from segrob.audit.data_source import resolve_audit_data
from segrob.audit.inference import InferencePlan, predict
from segrob.audit.records import CLEAN
from segrob.models import create_model
from segrob.onnx.export import export_model
from segrob.onnx.session import create_session, run
from segrob.perturb import apply_perturbation, derive_seed, resolve_suite


def bare_inference(model_path: Path, data, suite_name: str, *, seed: int, batch_size: int, plan) -> float:
    """Seconds onnxruntime alone spends on exactly the batches the audit runs."""
    session = create_session(model_path, device="cpu")
    suite = resolve_suite(suite_name)
    cells = [(CLEAN, 0)] + [(e.perturbation, s) for e in suite.entries for s in e.severities]
    batches = []
    for _, case in data:
        image = torch.from_numpy(case.image)[None]
        label = torch.from_numpy(case.label)[None]
        variants = []
        for name, severity in cells:
            if name == CLEAN:
                variants.append(image)
            else:
                out = apply_perturbation(name, image, label, severity=severity,
                                         seed=derive_seed(seed, case.name, name, severity))[0]
                variants.append(out)
        for begin in range(0, len(variants), batch_size):
            batches.append(torch.cat(variants[begin:begin + batch_size]))
    seconds = 0.0
    for batch in batches:
        start = time.perf_counter()
        predict(batch, plan, lambda x: run(session, x))
        seconds += time.perf_counter() - start
    return seconds


def trained_model(dims: int, size: int, epochs: int, workdir: Path):
    """A briefly trained U-Net: an untrained one predicts noise, whose ragged masks make the
    surface metrics far slower than any real model's would."""
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.training import TrainConfig, load_run, train

    data = workdir / f"train{dims}d"
    write_synthetic(SynthConfig(dims=dims, n=16 if dims == 2 else 6, size=size, blend=0.5, seed=1), data)
    run = workdir / f"run{dims}d"
    train(TrainConfig(data=str(data), out=str(run), arch="unet", epochs=epochs,
                      patch_size=None if dims == 2 else min(size, 64)))
    return load_run(run)


def measure(dims: int, n: int, size: int, suite: str, workdir: Path, epochs: int) -> dict:
    torch.manual_seed(0)
    if epochs > 0:
        model, config = trained_model(dims, size, epochs, workdir)
        config = config.to_dict()
    else:
        model = create_model("unet", spatial_dims=dims, in_channels=1, out_channels=2)
        config = {"normalization": {"method": "zscore"}}
    path = workdir / f"unet{dims}d.onnx"
    export_model(model, path, config=config)
    data = resolve_audit_data("synth:medium", n=n, size=size, spatial_dims=dims)
    options = AuditOptions(suite=suite, batch_size=8 if dims == 2 else 2, device="cpu")
    start = time.perf_counter()
    report = audit(path, data, options)
    audit_seconds = time.perf_counter() - start
    plan = InferencePlan(dims, 1, {"method": "zscore"}, batch_size=options.batch_size)
    bare = bare_inference(path, data, suite, seed=0, batch_size=options.batch_size, plan=plan)
    return {
        "dims": dims, "cases": n, "size": size, "suite": suite,
        "train_epochs": epochs,
        "clean_dice": report.summary.clean.mean("dice"),
        "cells": len(report.records), "audit_seconds": round(audit_seconds, 3),
        "bare_inference_seconds": round(bare, 3), "overhead_ratio": round(audit_seconds / bare, 3),
        "cases_per_second": round(n / audit_seconds, 3),
        "images_per_second": round(len(report.records) / audit_seconds, 2),
        "timings": report.timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n2d", type=int, default=16)
    parser.add_argument("--n3d", type=int, default=4)
    parser.add_argument("--size2d", type=int, default=128)
    parser.add_argument("--size3d", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=5,
                        help="train the model briefly first (0: random weights)")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(2, args.n2d, args.size2d, "noise", Path(tmp), args.train_epochs),
                measure(3, args.n3d, args.size3d, "blur", Path(tmp), args.train_epochs)]
    print(f"{'model':<10}{'cells':>7}{'audit s':>10}{'bare ORT s':>12}{'ratio':>8}{'cases/s':>9}")
    for row in rows:
        print(f"unet {row['dims']}D   {row['cells']:>7}{row['audit_seconds']:>10.2f}"
              f"{row['bare_inference_seconds']:>12.2f}{row['overhead_ratio']:>8.2f}{row['cases_per_second']:>9.2f}")
        print(f"          clean Dice {row['clean_dice']:.3f} after {row['train_epochs']} epochs; "
              f"audit timings: {row['timings']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    assert all(np.isfinite(r["overhead_ratio"]) for r in rows)


if __name__ == "__main__":
    main()
