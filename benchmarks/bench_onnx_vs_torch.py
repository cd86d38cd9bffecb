"""onnxruntime (CPU) against PyTorch eager: inference time per architecture, side by side.

Every registered architecture at its default (CPU-sized) width is exported with segrob's
exporter and timed on the same batch in the same process, with the same thread count, in
alternating rounds so that machine load affects both alike. The ratio is
``torch_ms / onnx_ms`` (above 1: onnxruntime is faster). Weights are random: speed does not
depend on training. ``--deployed`` adds, for the U-Net family, the files a deployment would ship:
fp32 with onnxruntime's offline optimisation (``segrob export --optimize``) and INT8 (static QDQ,
calibrated on synthetic inputs; the export's choice of float32 nodes at full resolution and its own
two timings are printed; "int8 all convs" is the same with every convolution in INT8), each with
its argmax agreement with PyTorch on the timed batch.
``--trained EPOCHS`` trains each model on synthetic data first and times it on unseen synthetic
images (INT8 then calibrated on the run's training cases), where agreement means what it does in a
deployment.

    python benchmarks/bench_onnx_vs_torch.py [--dims 2,3] [--archs unet,unetr] \\
        [--size2d 128] [--size3d 64] [--batch2d 4] [--batch3d 1] [--repeats 10] \\
        [--threads 2] [--deployed] [--trained EPOCHS] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from segrob.models import MODELS, create_model
from segrob.onnx.session import create_session, read_metadata, run
from segrob.onnx.trace import example_input, to_onnx


def build(name: str, dims: int, size: int) -> torch.nn.Module:
    options = {"img_size": size} if MODELS[name].fixed_size else {}
    torch.manual_seed(0)
    return create_model(name, spatial_dims=dims, in_channels=1, out_channels=2, **options).eval()


def time_pair(model: torch.nn.Module, session, batch: np.ndarray, repeats: int) -> dict:
    """Median milliseconds of each runtime over ``repeats`` alternating rounds (after warm-up)."""
    tensor = torch.from_numpy(batch)
    torch_times: list[float] = []
    onnx_times: list[float] = []
    with torch.no_grad():
        model(tensor)
        run(session, batch)
        for _ in range(repeats):
            start = time.perf_counter()
            expected = model(tensor)
            torch_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = run(session, batch)
            onnx_times.append(time.perf_counter() - start)
    torch_ms = statistics.median(torch_times) * 1e3
    onnx_ms = statistics.median(onnx_times) * 1e3
    return {
        "torch_ms": round(torch_ms, 3),
        "onnx_ms": round(onnx_ms, 3),
        "ratio": round(torch_ms / onnx_ms, 3),
        "max_abs_diff": float(np.max(np.abs(expected.numpy() - got))),
        "agreement": float(np.mean(expected.numpy().argmax(axis=1) == got.argmax(axis=1))),
    }


def trained(name: str, dims: int, size: int, batch_size: int, epochs: int, scratch: Path):
    """``name`` trained ``epochs`` on synthetic data, its run configuration, and a batch of unseen
    synthetic images normalised as it expects: a trained model's confident logits are what a
    deployment's agreement is about (random weights sit near 0.5, where any rounding flips the
    argmax)."""
    from segrob.audit.data_source import resolve_audit_data
    from segrob.data.normalize import normalize
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.training import TrainConfig, load_run, train

    data, run = scratch / f"train-{name}-{dims}d", scratch / f"run-{name}-{dims}d"
    write_synthetic(SynthConfig(dims=dims, n=16 if dims == 2 else 8, size=size, blend=0.5, seed=1), data)
    train(TrainConfig(data=str(data), out=str(run), arch=name, epochs=epochs, seed=0,
                      patch_size=None if dims == 2 else size))
    model, config = load_run(run)
    unseen = resolve_audit_data("synth:medium", n=batch_size, size=size, spatial_dims=dims, seed=7)
    images = torch.stack([torch.from_numpy(case.image) for _, case in unseen])
    batch = normalize(images, config.normalization).float().numpy()
    return model.eval(), config.to_dict(), batch


def deployed_rows(model: torch.nn.Module, name: str, dims: int, batch: np.ndarray, scratch: Path,
                  args, config: dict | None = None) -> list[dict]:
    """The optimised fp32 and the INT8 export of ``model`` against PyTorch eager on ``batch``
    (INT8 calibrated on the run's training cases when ``config`` is a trained run's)."""
    from segrob.onnx.export import ExportOptions, export_model

    rows = []
    int8 = {"precision": "int8", "min_agreement": 0.0, "min_dice": 0.0}
    for label, options in (("fp32 optimised", ExportOptions(optimize=True)),
                           ("int8", ExportOptions(**int8)),
                           ("int8 all convs", ExportOptions(**int8, int8_full_resolution="int8"))):
        path = scratch / f"{name}-{dims}d-{label.replace(' ', '-')}.onnx"
        export_model(model, path, config=config, options=options)
        session = create_session(path, device="cpu", threads=args.threads)
        row = {"arch": name, "dims": dims, "variant": label, "shape": list(batch.shape),
               **time_pair(model, session, batch, args.repeats)}
        if options.precision == "int8":
            # The export's own choice: which nodes it left in float32, and its two timings.
            row["int8_choice"] = read_metadata(path)["int8"]
        rows.append(row)
    return rows


def _choice_text(row: dict) -> str:
    from segrob.onnx.quantize import describe_int8_choice

    return f"  ({describe_int8_choice(row['int8_choice'])})" if "int8_choice" in row else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,3")
    parser.add_argument("--archs", default=",".join(MODELS))
    parser.add_argument("--size2d", type=int, default=128)
    parser.add_argument("--size3d", type=int, default=64)
    parser.add_argument("--batch2d", type=int, default=4)
    parser.add_argument("--batch3d", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--deployed", action="store_true",
                        help="also time the optimised fp32 and the INT8 exports (U-Net family)")
    parser.add_argument("--trained", type=int, default=0, metavar="EPOCHS",
                        help="train each model this many epochs on synthetic data and time it on "
                             "unseen synthetic images (0: random weights on noise)")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segrob-bench-") as scratch:
        for dims in (int(d) for d in args.dims.split(",")):
            size = args.size2d if dims == 2 else args.size3d
            batch_size = args.batch2d if dims == 2 else args.batch3d
            for name in args.archs.split(","):
                if dims not in MODELS[name].dims:
                    continue
                config = None
                if args.trained:
                    model, config, batch = trained(name, dims, size, batch_size, args.trained, Path(scratch))
                else:
                    model = build(name, dims, size)
                    rng = np.random.default_rng(0)
                    batch = rng.standard_normal((batch_size, 1) + (size,) * dims).astype(np.float32)
                path = Path(scratch) / f"{name}-{dims}d.onnx"
                proto = to_onnx(model, example_input(model, 2), opset=18,
                                fixed_spatial=MODELS[name].fixed_size)
                onnx.save(proto, path)
                session = create_session(path, device="cpu", threads=args.threads)
                timing = time_pair(model, session, batch, args.repeats)
                found = [{"arch": name, "dims": dims, "variant": "fp32", "shape": list(batch.shape),
                          **timing}]
                if args.deployed and not MODELS[name].fixed_size:
                    found += deployed_rows(model, name, dims, batch, Path(scratch), args, config)
                for row in found:
                    print(f"{name:>10} {row['variant']:>14} {dims}D {'x'.join(map(str, batch.shape)):>14}  "
                          f"torch {row['torch_ms']:9.2f} ms  onnx {row['onnx_ms']:9.2f} ms  "
                          f"ratio {row['ratio']:5.2f}  agreement {row['agreement']:.4f}  "
                          f"max|diff| {row['max_abs_diff']:.1e}" + _choice_text(row))
                rows.extend(found)
    result = {
        "benchmark": "onnxruntime CPU vs PyTorch eager (median ms, ratio = torch / onnx)",
        "threads": args.threads,
        "repeats": args.repeats,
        "trained_epochs": args.trained,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__,
                     "onnx": onnx.__version__, "python": platform.python_version()},
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"took {result['seconds']} s with {args.threads} thread(s)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
