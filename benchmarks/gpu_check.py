"""segrob's CUDA paths on a GPU, beside the CPU: every figure written to one JSON file.

    python benchmarks/gpu_check.py --out gpu-check [--deadline 480] [--skip-study]

CI has no GPU, so these are the checks only a GPU machine can make, each beside the same work on
the CPU of the same machine:

1. ``train``: training on CUDA and on the CPU from the same seed (loss per epoch, optimiser steps
   per second), and an interrupted CUDA run resumed (``resume=True``) against the uninterrupted one.
2. ``perturb``: every registered perturbation on CUDA tensors against the CPU result for the same
   seed, 2D and 3D (largest difference, parameters equal, label agreement), and the throughput.
3. ``torch_audit``: the audit of a ``torch.nn.Module`` through the Python API on CUDA and on the
   CPU: time per image and the largest difference between their records, and the CUDA audit
   again with one scoring thread (several score beside a GPU model). ``scoring_threads`` times
   the CUDA audit at each of several scoring-thread counts, in alternating rounds, beside the
   count segrob picks on this machine.
4. ``onnx_cuda``: onnxruntime's CUDA provider with IOBinding (``device="cuda"``): the providers it
   really used, the committed baseline audits (``tests/data/make_audit_baseline.py``) against their
   saved CPU records, and the time per image of a trained model beside the CPU provider. Skipped,
   and said so, when this onnxruntime has no CUDA provider. ``onnx_cuda_speed`` then splits
   onnxruntime's time on that model: session set-up, the first batch, the steady state and each
   batch as the batch size changes, under cuDNN's exhaustive and heuristic algorithm search,
   which provider ran each kind of node, torch on the same GPU and batch, and the model's audit
   under each search mode (segrob asks for the heuristic one), and under the heuristic one again
   with each batch at its own size (the audit fills a case's shorter last batch in on CUDA).
5. ``skip_study``: ``segrob study skip --protocol paper`` at the paper's 256 px and 100 epochs, one
   complexity level (``--study-levels``) at a time while ``--deadline`` (seconds from the start)
   leaves time, each
   in-domain Dice beside the published one (segrob/evidence.json, the authors' archive).

A failing step records its error and the next one runs; the JSON is rewritten after every step,
so a run cut short still leaves what it measured. onnxruntime-gpu finds CUDA's libraries through
the ``nvidia-*`` packages that PyTorch's CUDA build installs: the script puts their folders on
``LD_LIBRARY_PATH`` and starts itself again when they are missing there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
START = time.perf_counter()
#: The device measured against the CPU; ``--gpu cpu`` runs every step with the CPU in its place,
#: which checks this script on a machine without a GPU.
GPU = "cuda"


def cuda_library_dirs() -> list[str]:
    """The ``lib`` folders of the ``nvidia-*`` wheels beside torch (cuBLAS, cuDNN, cudart, ...)."""
    found = []
    for entry in sys.path:
        base = Path(entry) / "nvidia"
        if base.is_dir():
            found += sorted(str(p) for p in base.glob("**/lib") if any(p.glob("*.so*")))
    return list(dict.fromkeys(found))


def with_cuda_libraries() -> None:
    wanted = cuda_library_dirs()
    present = os.environ.get("LD_LIBRARY_PATH", "").split(":")
    if wanted and not set(wanted) <= set(present):
        os.environ["LD_LIBRARY_PATH"] = ":".join([*wanted, *filter(None, present)])
        os.execv(sys.executable, [sys.executable, *sys.argv])


def with_cli_package() -> None:
    """Make ``segrob_cli`` importable where the project is only on ``PYTHONPATH``, not installed
    (a bare GPU machine): the CLI lives in ``cli/`` and installs under that name, and the steps
    that run ``python -m segrob`` need it. A link in a temporary folder on the path stands in."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("segrob_cli") is not None:
        return
    folder = Path(tempfile.mkdtemp(prefix="segrob-cli-"))
    (folder / "segrob_cli").symlink_to(ROOT / "cli", target_is_directory=True)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


def elapsed() -> float:
    return time.perf_counter() - START


def median_seconds(work: Callable[[], object], repeats: int, cuda: bool) -> float:
    times = []
    for _ in range(repeats):
        if cuda and GPU == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        work()
        if cuda and GPU == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


# 1. training ---------------------------------------------------------------------------------


def train_timed(data: Path, out: Path, device: str, epochs: int, stop_after: int | None = None) -> dict:
    from segrob.training import TrainConfig, read_run_config, train

    stamps: list[float] = []

    def progress(event):
        if event.kind == "step":
            stamps.append(time.perf_counter())
        if stop_after is not None and event.kind == "epoch" and event.epoch == stop_after:
            raise KeyboardInterrupt

    config = TrainConfig(data=str(data), out=str(out), arch="unet", epochs=epochs, seed=0, device=device)
    try:
        result = train(config, progress=progress)
    except KeyboardInterrupt:
        return {"interrupted_after_epoch": stop_after}
    history = read_run_config(out).history
    gaps = np.diff(stamps)
    return {"device": result.device, "epochs": result.epochs_run, "steps": len(stamps),
            "steps_per_second": float(1.0 / np.median(gaps)) if len(gaps) else None,
            "loss": [h["loss"] for h in history], "val_dice": [h["val_dice"] for h in history],
            "seconds": result.seconds}


def check_training(work: Path) -> dict:
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.training import TrainConfig, read_run_config, train

    data = work / "train-data"
    write_synthetic(SynthConfig(dims=2, n=48, size=128, level="low", seed=0), data)
    epochs = 6
    report = {"data": "48 synthetic 2D cases, 128 px, level low", "epochs": epochs,
              "cpu_threads": torch.get_num_threads()}
    report["cpu"] = train_timed(data, work / "run-cpu", "cpu", epochs)
    report["cuda"] = train_timed(data, work / "run-cuda", GPU, epochs)
    report["steps_per_second_ratio"] = report["cuda"]["steps_per_second"] / report["cpu"]["steps_per_second"]
    train_timed(data, work / "run-cut", GPU, epochs, stop_after=2)
    resumed = train(TrainConfig(out=str(work / "run-cut"), resume=True, device=GPU))
    cut_loss = [h["loss"] for h in read_run_config(work / "run-cut").history]
    report["resume"] = {
        "resumed_from": resumed.resumed_from, "epochs_run": resumed.epochs_run,
        "status": read_run_config(work / "run-cut").status, "loss": cut_loss,
        "largest_loss_difference_to_uninterrupted": float(max(
            abs(a - b) for a, b in zip(cut_loss, report["cuda"]["loss"], strict=True))),
    }
    return report


# 2. perturbations ----------------------------------------------------------------------------


def synthetic_batch(dims: int, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from segrob.audit.data_source import resolve_audit_data

    cases = [case for _, case in resolve_audit_data("synth:medium", n=n, size=size, spatial_dims=dims)]
    image = torch.from_numpy(np.stack([c.image for c in cases])).float()
    label = torch.from_numpy(np.stack([c.label for c in cases])).long()
    return image, label


def check_perturbations(work: Path) -> dict:
    from segrob.perturb.registry import PERTURBATIONS, apply_perturbation, create_perturbation

    report = {}
    for dims, n, size in ((2, 16, 256), (3, 2, 96)):
        image, label = synthetic_batch(dims, n, size)
        on_gpu = image.to(GPU), label.to(GPU)
        rows = {}
        for name in PERTURBATIONS:
            severity = create_perturbation(name).n_levels
            cpu = apply_perturbation(name, image, label, severity=severity, seed=7)
            gpu = apply_perturbation(name, *on_gpu, severity=severity, seed=7)
            scale = float(image.abs().max())
            rows[name] = {
                "severity": severity,
                "params_equal": cpu[2].params == gpu[2].params,
                "largest_difference": float((gpu[0].cpu() - cpu[0]).abs().max()) / scale,
                "label_agreement": float((gpu[1].cpu() == cpu[1]).float().mean()),
                "cpu_ms": 1e3 * median_seconds(partial(apply_perturbation, name, image, label,
                                                       severity=severity, seed=7), 3, cuda=False),
                "cuda_ms": 1e3 * median_seconds(partial(apply_perturbation, name, *on_gpu,
                                                        severity=severity, seed=7), 5, cuda=True),
            }
            rows[name]["speedup"] = rows[name]["cpu_ms"] / rows[name]["cuda_ms"]
        report[f"{dims}d"] = {"batch": list(image.shape), "members": rows}
    return report


# 3. the audit of a torch module ---------------------------------------------------------------


def compare_records(a: list[dict], b: list[dict]) -> dict:
    """Largest difference per metric between two audits' records, matched cell by cell."""
    key = lambda r: (r["case"], r["perturbation"], r["severity"])  # noqa: E731
    other = {key(r): r for r in b}
    largest: dict[str, float] = {}
    identical = 0
    for record in a:
        twin = other[key(record)]
        identical += record["metrics"] == twin["metrics"]
        for metric, value in record["metrics"].items():
            mine, theirs = value, twin["metrics"].get(metric)
            both = isinstance(mine, float) and isinstance(theirs, float)
            if both and np.isfinite(mine) and np.isfinite(theirs):
                largest[metric] = max(largest.get(metric, 0.0), abs(mine - theirs))
            elif mine != theirs and not (mine is None and theirs is None):
                largest[metric] = float("inf")
    return {"records": len(a), "matched": len(other), "identical": identical, "largest_difference": largest}


AUDIT_CASES = 16


def per_image_ms(report) -> float:
    return 1e3 * report.timings["total"] / len(report.records)


def check_torch_audit(work: Path) -> dict:
    from segrob.training import load_run

    model, _ = load_run(work / "run-cuda")
    return {"model": "the CUDA-trained U-Net of step train, a torch.nn.Module"} | audit_side_by_side(model)


def noise_audit(model, device: str, *, warm_up: bool = True):
    """The audit these steps time: the noise suite on ``AUDIT_CASES`` synthetic 256 px cases in
    batches of 16, after an untimed two-case audit (``warm_up``)."""
    import segrob

    def run(n: int):
        return segrob.audit(model, "synth:low", suite="noise", device=device, n=n, size=256, batch_size=16)

    if warm_up:
        run(2)
    return run(AUDIT_CASES)


def audit_side_by_side(model) -> dict:
    """The same noise-suite audit on the CPU and on the GPU, each after a two-case warm-up."""
    runs = {device: noise_audit(model, GPU if device == "cuda" else device) for device in ("cpu", "cuda")}
    one_scorer = audit_with_scoring_threads(model, 1)
    return {"cases": AUDIT_CASES, "size": 256, "suite": "noise", "records": len(runs["cuda"].records),
            "providers": {d: r.settings.get("providers") for d, r in runs.items()},
            "cpu_ms_per_image": per_image_ms(runs["cpu"]), "cuda_ms_per_image": per_image_ms(runs["cuda"]),
            "speedup": per_image_ms(runs["cpu"]) / per_image_ms(runs["cuda"]),
            "cuda_vs_cpu": compare_records(runs["cuda"].records, runs["cpu"].records),
            "timings": {d: r.timings for d, r in runs.items()},
            "cuda_one_scoring_thread": {
                "ms_per_image": per_image_ms(one_scorer), "timings": one_scorer.timings,
                "same_records": one_scorer.records == runs["cuda"].records}}


def audit_with_scoring_threads(model, threads: int):
    """The GPU audit again with ``threads`` scoring threads in place of segrob's choice."""
    from segrob.audit import units

    with mock.patch.object(units, "scoring_threads", lambda on_gpu: threads):
        return noise_audit(model, GPU, warm_up=False)  # the audits before warmed it up


#: Scoring-thread counts ``scoring_threads`` compares, in alternating rounds.
THREAD_COUNTS = (1, 2, 4, 6, 8, 12)


def check_scoring_threads(work: Path, rounds: int = 3) -> dict:
    """The torch module's CUDA audit at each of :data:`THREAD_COUNTS` scoring threads."""
    from segrob.audit import units
    from segrob.training import load_run

    model, _ = load_run(work / "run-cuda")
    reference = noise_audit(model, GPU)
    times: dict[int, list[float]] = {n: [] for n in THREAD_COUNTS}
    same = {n: True for n in THREAD_COUNTS}
    for _ in range(rounds):
        for n in THREAD_COUNTS:
            report = audit_with_scoring_threads(model, n)
            times[n].append(per_image_ms(report))
            same[n] = same[n] and report.records == reference.records
    return {"picked_here": units.scoring_threads(True), "cpu_count": os.cpu_count(), "rounds": rounds,
            "ms_per_image": {n: {"median": statistics.median(t), "all": t} for n, t in times.items()},
            "same_records": same}


# 4. onnxruntime's CUDA provider --------------------------------------------------------------


def check_onnx_cuda(work: Path) -> dict:
    import importlib.util
    import subprocess

    import onnxruntime as ort

    from segrob.audit import audit

    report = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers()}
    if GPU == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return report | {"skipped": "this onnxruntime build has no CUDA execution provider"}
    spec = importlib.util.spec_from_file_location("baseline", ROOT / "tests/data/make_audit_baseline.py")
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    for dims in (2, 3):
        options = replace(baseline.SETUPS[dims][2], device=GPU, threads=None)
        result = audit(baseline.model_path(dims), baseline.baseline_data(dims), options)
        saved = json.loads(baseline.records_path(dims).read_text())
        records = json.loads(json.dumps(result.to_dict()["records"]))
        report[f"baseline_{dims}d"] = {"providers": result.settings.get("providers"),
                                       "cuda_vs_saved_cpu": compare_records(records, saved)}
    model = work / "trained.onnx"
    cli = [sys.executable, "-m", "segrob"]
    export = subprocess.run([*cli, "export", str(work / "run-cuda"), "--out", str(model)],
                            capture_output=True, text=True)
    if export.returncode:
        return report | {"export_error": export.stdout[-2000:] + export.stderr[-2000:]}
    check = subprocess.run([*cli, "check", str(model), "--device", GPU, "--run", str(work / "run-cuda")],
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    report["check_cli"] = {"rc": check.returncode, "output": check.stdout[-4000:] + check.stderr[-2000:]}
    report["trained_audit"] = audit_side_by_side(model)
    return report


def node_placement(model: Path, providers: list) -> dict[str, list[str]]:
    """Which execution provider ran each kind of node, from one profiled run."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(model.with_suffix(""))
    session = ort.InferenceSession(str(model), options, providers=providers)
    feed = np.zeros((1, 1, 256, 256), dtype=np.float32)
    session.run(None, {session.get_inputs()[0].name: feed})
    events = json.loads(Path(session.end_profiling()).read_text())
    placed: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            placed.setdefault(args["provider"], set()).add(args.get("op_name", "?"))
    return {provider: sorted(ops) for provider, ops in placed.items()}


def check_onnx_cuda_speed(work: Path) -> dict:
    """Where onnxruntime's time goes on the GPU: session set-up, the first batch (cuDNN's
    algorithm search), the steady state, with each search mode, beside torch on the same GPU."""
    import onnxruntime as ort

    from segrob.training import load_run

    model = work / "trained.onnx"
    batch = np.random.default_rng(0).standard_normal((16, 1, 256, 256)).astype(np.float32)
    configs = {"cpu": ["CPUExecutionProvider"]}
    if GPU == "cuda":
        configs |= {"cuda exhaustive": [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"})],
                    "cuda heuristic": [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]}
    report: dict = {"batch": list(batch.shape), "configs": {}}
    for name, providers in configs.items():
        began = time.perf_counter()
        session = ort.InferenceSession(str(model), providers=providers)
        created = time.perf_counter() - began
        feed = {session.get_inputs()[0].name: batch}
        first = median_seconds(lambda session=session, feed=feed: session.run(None, feed), 1, cuda=False)
        steady = median_seconds(lambda session=session, feed=feed: session.run(None, feed), 20, cuda=False)
        report["configs"][name] = {"providers": session.get_providers(), "create_s": created,
                                   "first_batch_s": first, "steady_ms_per_batch": 1e3 * steady,
                                   "nodes": node_placement(model, providers)}
        report["configs"][name]["new_shapes_ms"] = batch_sizes_in_turn(session, batch)
    torch_model = load_run(work / "run-cuda")[0].to(GPU)
    on_device = torch.from_numpy(batch).to(GPU)
    with torch.inference_mode():
        first = median_seconds(lambda: torch_model(on_device), 1, cuda=True)
        steady = median_seconds(lambda: torch_model(on_device), 20, cuda=True)
    report["torch"] = {"device": GPU, "first_batch_s": first, "steady_ms_per_batch": 1e3 * steady}
    if GPU == "cuda":
        options = {mode: {"cudnn_conv_algo_search": mode} for mode in ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")}
        audits = {mode: audit_with_cuda_options(model, options[mode]) for mode in options}
        as_they_come = audit_with_cuda_options(model, options["HEURISTIC"], steady_batches=False)
        report["audit_by_search_mode"] = {mode: audit_summary(run, options[mode])
                                          for mode, run in audits.items()}
        report["audit_batches_as_they_come"] = audit_summary(as_they_come, options["HEURISTIC"]) | {
            "vs_steady_batches": compare_records(as_they_come.records, audits["HEURISTIC"].records)}
    return report


#: An audit's batches: full ones, then a case's remainder (a batch size onnxruntime has not seen).
SHAPE_SEQUENCE = (16, 16, 13, 13, 7, 16, 7)


def batch_sizes_in_turn(session, batch: np.ndarray) -> list[dict]:
    """Each batch's time as the batch size changes: cuDNN's search runs again for every new shape."""
    name = session.get_inputs()[0].name
    times = []
    for size in SHAPE_SEQUENCE:
        began = time.perf_counter()
        session.run(None, {name: batch[:size]})
        times.append({"batch": size, "ms": 1e3 * (time.perf_counter() - began)})
    return times


def audit_with_cuda_options(model: Path, options: dict, *, steady_batches: bool = True):
    """The trained model's noise audit on onnxruntime's CUDA provider with these provider options
    in place of segrob's own (``CUDA_OPTIONS``); ``steady_batches=False``: each batch goes in at
    its own size, as before the audit filled a case's shorter last batch in to the full size."""
    from segrob.onnx import graph
    from segrob.onnx import session as sessions

    guarded_run = graph.guarded_run

    def as_they_come(*args, **kwargs):
        return guarded_run(*args, **kwargs | {"steady_batches": False})

    with mock.patch.object(sessions, "CUDA_OPTIONS", options), \
            mock.patch.object(graph, "guarded_run", guarded_run if steady_batches else as_they_come):
        return noise_audit(model, GPU)


def audit_summary(report, options: dict) -> dict:
    return {"options": options, "providers": report.settings.get("providers"),
            "ms_per_image": per_image_ms(report), "timings": report.timings}


# 5. the skip study at the paper's size -------------------------------------------------------


def cpu_in_domain(study: Path, level: str, arch: str) -> float:
    """The cell's in-domain Dice again, audited by onnxruntime's CPU provider: the study's own
    audits ran on the GPU, and the two must agree."""
    import segrob

    study = Path(study)
    report = segrob.audit(study / "models" / f"{level}-{arch}-s0.onnx", study / "data" / f"{level}-test",
                          suite="texture", device="cpu")
    return report.summary.clean.mean("dice")


def check_skip_study(work: Path, deadline: float, save: Callable[[dict], None], size: int = 256,
                     epochs: int = 100, levels: tuple[str, ...] = ("low", "medium", "high")) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reproduce_skip_paper import ARCHS, published

    from segrob.studies.skip import SkipStudyConfig, run_skip_study

    paper = published()
    report: dict = {"size": size, "epochs": epochs, "archs": list(ARCHS), "levels": {}}
    level_seconds = 150.0  # a first guess; then the last level's time
    for level in levels:
        if deadline - elapsed() < 1.2 * level_seconds:
            report["levels"][level] = {"skipped": f"{deadline - elapsed():.0f} s left of the deadline"}
            break
        began = time.perf_counter()
        config = SkipStudyConfig.paper(work / f"study-{level}", archs=ARCHS, levels=(level,), size=size,
                                       epochs=epochs, shift_suite=None,
                                       device="auto" if GPU == "cuda" else "cpu")
        result = run_skip_study(config)
        level_seconds = time.perf_counter() - began
        report["levels"][level] = {
            "seconds": level_seconds,
            "rows": [{"arch": row["arch"], "in_domain": row["in_domain"],
                      "in_domain_cpu": cpu_in_domain(config.out, level, row["arch"]),
                      "val_dice": row.get("val_dice"), "published": paper.get((level, row["arch"]))}
                     for row in result["table"]],
            "audit_providers": sorted({json.loads(Path(path).read_text())["settings"]["providers"][0]
                                       for c in result["cells"] for path in c["reports"].values()}),
        }
        save(report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check", help="work folder (data, runs, models)")
    parser.add_argument("--json", dest="json_path", help="where the results go (default OUT/gpu_check.json)")
    parser.add_argument("--deadline", type=float, default=480.0)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--only", help="comma-separated steps to run (default: all)")
    parser.add_argument("--study-size", type=int, default=256)
    parser.add_argument("--study-epochs", type=int, default=100)
    parser.add_argument("--study-levels", default="low,medium,high",
                        help="complexity levels to study, in this order, while the deadline allows")
    parser.add_argument("--gpu", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args()
    global GPU
    GPU = args.gpu
    with_cuda_libraries()
    with_cli_package()
    if GPU == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device here")
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort

    results: dict = {"torch": torch.__version__,
                     "gpu": torch.cuda.get_device_name(0) if GPU == "cuda" else "none (--gpu cpu)",
                     "onnxruntime": ort.__version__, "cpu_count": os.cpu_count(), "steps": {}}

    def save(partial: dict | None = None, name: str | None = None) -> None:
        if name is not None:
            results["steps"][name] = partial
        target = Path(args.json_path or work / "gpu_check.json")
        target.with_suffix(".tmp").write_text(json.dumps(results, indent=1, default=str))
        target.with_suffix(".tmp").replace(target)

    steps: list[tuple[str, Callable[[], dict]]] = [
        ("train", lambda: check_training(work)),
        ("perturb", lambda: check_perturbations(work)),
        ("torch_audit", lambda: check_torch_audit(work)),
        ("scoring_threads", lambda: check_scoring_threads(work)),
        ("onnx_cuda", lambda: check_onnx_cuda(work)),
        ("onnx_cuda_speed", lambda: check_onnx_cuda_speed(work)),
    ]
    if not args.skip_study:
        steps.append(("skip_study", lambda: check_skip_study(
            work, args.deadline, lambda partial: save(partial, "skip_study"), args.study_size,
            args.study_epochs, tuple(args.study_levels.split(",")))))
    for name, step in steps:
        if args.only and name not in args.only.split(","):
            continue
        began = time.perf_counter()
        print(f"[{elapsed():5.0f} s] {name}", flush=True)
        try:
            outcome = step()
        except Exception as error:  # a failed step is a finding; the next one runs
            outcome = {"error": f"{type(error).__name__}: {error}",
                       "traceback": traceback.format_exc()[-3000:]}
        outcome["step_seconds"] = time.perf_counter() - began
        save(outcome, name)
        print(json.dumps(outcome, default=str)[:1500], flush=True)
    print(f"[{elapsed():5.0f} s] done", flush=True)


if __name__ == "__main__":
    main()
