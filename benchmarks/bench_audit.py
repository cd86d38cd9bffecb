"""Audit overhead: `segrob audit` wall time against bare onnxruntime inference on the same batches.

The ratio is what perturbation, normalisation, metrics and bookkeeping add on top of the model's
own inference (target: <= 1.05). The audit and the bare inference run in alternating rounds in
one process, so machine load affects both alike; each figure is the median over the rounds, with
the spread (min-max). Also prints where the audit's time went (its report's timings: inference,
perturbation and metrics on their helper threads, the scoring CPU time, the main thread waiting
on the helpers) and the scoring cost per image (the scoring thread's CPU time; its wall time is
longer, as it shares the cores with onnxruntime; the same scoring done again on the main thread
with nothing beside it; and done again once more on a helper thread at the audit's scoring
priority beside onnxruntime inferring the bare batches, without the perturbing thread), for a 2D
and a 3D model. The bare inference uses onnxruntime's default session; the audit's own sessions
wait asleep instead of spinning.

    python benchmarks/bench_audit.py [--dims 2 3] [--n2d 16] [--n3d 4] [--rounds 5] [--json out.json]

``--compare-scheduling`` instead alternates audits scheduled as built (images perturbed on a
helper thread one batch ahead of inference, scored on another; both helpers at the lowest
priority, working only while the model runs or the main thread waits for them) with earlier
schedules (perturbing on the main thread between inferences; the helpers ungated, at normal
priority), each beside the bare inference.

``--compare-scoring-threads`` instead audits a model that answers at once (a record of its own
answers stands in for a GPU, where scoring bounds the audit) with one scoring thread and with
two, in alternating rounds, and says whether their records are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from segrob.audit import AuditOptions, audit
from segrob.audit.data_source import AuditData, resolve_audit_data
from segrob.audit.inference import InferencePlan, predict
from segrob.audit.records import CLEAN
from segrob.models import create_model
from segrob.onnx.export import export_model
from segrob.onnx.session import create_session, run
from segrob.perturb import apply_perturbation, derive_seed, resolve_suite


def bare_batches(data, suite_name: str, *, seed: int, batch_size: int) -> list[torch.Tensor]:
    """Exactly the batches the audit runs, perturbed once up front (not part of the timing)."""
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
    return batches


def in_memory(data: AuditData) -> AuditData:
    """The same cases, made once before any timing: the bare inference gets ready batches, so
    the audit gets ready cases (making synthetic data, or reading files, is neither's cost)."""
    cases = list(data)

    class Ready(AuditData):
        def __iter__(self):
            return iter(cases)

    return Ready(**{f.name: getattr(data, f.name) for f in fields(data)})


def bare_inference(session, batches: list[torch.Tensor], plan) -> float:
    """Seconds onnxruntime alone spends on ``batches``."""
    start = time.perf_counter()
    for batch in batches:
        predict(batch, plan, lambda x: run(session, x))
    return time.perf_counter() - start


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


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


def prepare(dims: int, n: int, size: int, suite: str, workdir: Path, epochs: int):
    """The model file, the cases, the audit options and plan, the bare batches and session."""
    torch.manual_seed(0)
    if epochs > 0:
        model, config = trained_model(dims, size, epochs, workdir)
        config = config.to_dict()
    else:
        model = create_model("unet", spatial_dims=dims, in_channels=1, out_channels=2)
        config = {"normalization": {"method": "zscore"}}
    path = workdir / f"unet{dims}d.onnx"
    export_model(model, path, config=config)
    data = in_memory(resolve_audit_data("synth:medium", n=n, size=size, spatial_dims=dims))
    options = AuditOptions(suite=suite, batch_size=8 if dims == 2 else 2, device="cpu")
    # The audit's own plan (a 3D model trained on patches infers in patch-sized windows).
    plan = audit(path, data, options).settings["inference"]
    plan = InferencePlan(**{**plan, "window": tuple(plan["window"]) if plan["window"] else None})
    batches = bare_batches(data, suite, seed=0, batch_size=options.batch_size)
    session = create_session(path, device="cpu")
    bare_inference(session, batches[:1], plan)  # warm-up
    return path, data, options, plan, batches, session


def measure(dims: int, n: int, size: int, suite: str, workdir: Path, epochs: int, rounds: int) -> dict:
    path, data, options, plan, batches, session = prepare(dims, n, size, suite, workdir, epochs)
    audits, bares, timings = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        report = audit(path, data, options)
        audits.append(time.perf_counter() - start)
        bares.append(bare_inference(session, batches, plan))
        timings.append(report.timings)
    cells = len(report.records)
    stages = {key: spread([t[key] for t in timings]) for key in timings[0]}
    alone, beside = scoring_replayed(path, data, options, session, batches, plan)
    return {
        "dims": dims, "cases": n, "size": size, "suite": suite, "rounds": rounds,
        "train_epochs": epochs, "clean_dice": report.summary.clean.mean("dice"), "cells": cells,
        "audit_seconds": spread(audits), "bare_inference_seconds": spread(bares),
        "overhead_ratio": spread([a / b for a, b in zip(audits, bares, strict=True)]),
        "scoring_ms_per_image": spread([t["metrics"] / cells * 1e3 for t in timings]),
        "scoring_cpu_ms_per_image": spread([t["metrics_cpu"] / cells * 1e3 for t in timings]),
        "scoring_alone_cpu_ms_per_image": spread(alone),
        "scoring_beside_inference_cpu_ms_per_image": spread(beside),
        "timings": stages,
    }


def scoring_replayed(path: Path, data, options: AuditOptions, session, batches: list[torch.Tensor],
                     plan, repeats: int = 3) -> tuple[list[float], list[float]]:
    """One audit's scoring done again ``repeats`` times on this thread with nothing beside it, then
    ``repeats`` times on a helper thread at the audit's scoring priority while this thread runs
    the bare inference (the perturbing thread left out): CPU milliseconds per image for each,
    what scoring costs alone and what two cores shared with onnxruntime add to it."""
    from segrob.audit import units

    kept, score = [], units._score_chunk

    def keeping(chunk, logits, work, before):
        kept.append((chunk, np.array(logits), work))
        return score(chunk, logits, work, before)

    with mock.patch.object(units, "_score_chunk", keeping):
        audit(path, data, options)
    images = sum(len(chunk) for chunk, *_ in kept)

    def replay() -> float:
        start = time.thread_time()
        for chunk, logits, work in kept:  # the audit is over: its gate is open for good
            score(chunk, logits, work, None)
        return (time.thread_time() - start) / images * 1e3

    alone = [replay() for _ in range(repeats)]
    beside: list[float] = []

    def replay_beside() -> None:
        units._yield_to_inference()
        beside.extend(replay() for _ in range(repeats))

    helper = threading.Thread(target=replay_beside)
    bare_inference(session, batches[:2], plan)  # onnxruntime's threads busy before scoring starts
    helper.start()
    while helper.is_alive():
        bare_inference(session, batches[:2], plan)
    helper.join()
    return alone, beside


#: The audit's scheduling, as built and with its parts taken away: the helper threads' priority
#: (niceness), whether they wait while the main thread normalises and stitches (the gate), and
#: whether images are perturbed one batch ahead on a helper or between inferences on the main
#: thread.
SCHEDULES = {"niceness 0, ungated, perturbing on main": (0, False, False),
             "niceness 19, gated, perturbing on main": (19, True, False),
             "niceness 19, gated, perturbing ahead (built)": (19, True, True)}


def compare_scheduling(dims: int, n: int, size: int, suite: str, workdir: Path, epochs: int,
                       rounds: int) -> dict:
    """The audit / bare ratio, the main thread's time outside inference and the scoring CPU for
    each of :data:`SCHEDULES`, in alternating rounds."""
    from segrob.audit import units

    class Ungated(units._HelperGate):
        def wait(self) -> None:
            pass

        def while_open(self, call, *args):
            return call(*args)

    path, data, options, plan, batches, session = prepare(dims, n, size, suite, workdir, epochs)
    figures: dict[str, dict[str, list[float]]] = {
        name: {"overhead_ratio": [], "outside_inference_s": [], "waiting_s": [],
               "scoring_cpu_ms_per_image": []}
        for name in SCHEDULES}
    for _ in range(rounds):
        for name, (niceness, gated, ahead) in SCHEDULES.items():
            with mock.patch.multiple(units, HELPER_NICENESS=niceness, PERTURB_AHEAD=ahead,
                                     _HelperGate=units._HelperGate if gated else Ungated):
                start = time.perf_counter()
                report = audit(path, data, options)
                seconds = time.perf_counter() - start
            figures[name]["overhead_ratio"].append(seconds / bare_inference(session, batches, plan))
            figures[name]["outside_inference_s"].append(seconds - report.timings["inference"])
            figures[name]["waiting_s"].append(report.timings["scorer_wait"])
            figures[name]["scoring_cpu_ms_per_image"].append(
                report.timings["metrics_cpu"] / len(report.records) * 1e3)
    return {"dims": dims, "rounds": rounds, "schedules": {
        name: {key: spread(values) for key, values in measured.items()}
        for name, measured in figures.items()}}


@contextlib.contextmanager
def replayed_model(path: Path, data, options: AuditOptions) -> Iterator[None]:
    """Within it, the audit's model answers from a record of its own answers (one audit first
    records every batch's logits): inference then costs next to nothing, as on a GPU, where
    scoring bounds the audit."""
    from segrob.audit import runner

    adopt, answers = runner.adopt_runtime, {}

    def key(batch: torch.Tensor) -> bytes:
        return hashlib.blake2b(batch.numpy().tobytes(), digest_size=16).digest()

    def recorded(run):
        def recording(batch):
            answers[key(batch)] = out = np.array(run(batch))
            return out
        return recording

    def adopting(model):  # the runtime the runner adopts, with ``model(run)`` in place of ``run``
        return lambda plan, run, device, **where: adopt(plan, model(run), device, **where)

    with mock.patch.object(runner, "adopt_runtime", adopting(recorded)):
        audit(path, data, options)
    def replayed(_run):
        return lambda batch: answers[key(batch)].copy()

    with mock.patch.object(runner, "adopt_runtime", adopting(replayed)):
        yield


def compare_scoring_threads(dims: int, n: int, size: int, suite: str, workdir: Path, epochs: int,
                            rounds: int) -> dict:
    """A model that answers at once (see :func:`replayed_model`), audited with one scoring thread
    and with two, in alternating rounds: wall seconds, scoring CPU per image, and whether the
    records are the same."""
    from segrob.audit import units

    path, data, options, *_ = prepare(dims, n, size, suite, workdir, epochs)
    figures: dict[int, dict[str, list[float]]] = {
        threads: {"audit_s": [], "waiting_s": [], "scoring_cpu_ms_per_image": []} for threads in (1, 2)}
    records: dict[int, list] = {}
    with replayed_model(path, data, options):
        for _ in range(rounds):
            for threads in figures:
                with mock.patch.object(units, "scoring_threads", lambda on_gpu, threads=threads: threads):
                    start = time.perf_counter()
                    report = audit(path, data, options)
                figures[threads]["audit_s"].append(time.perf_counter() - start)
                figures[threads]["waiting_s"].append(report.timings["scorer_wait"])
                figures[threads]["scoring_cpu_ms_per_image"].append(
                    report.timings["metrics_cpu"] / len(report.records) * 1e3)
                records[threads] = report.records
    ratios = [a / b for a, b in zip(figures[1]["audit_s"], figures[2]["audit_s"], strict=True)]
    return {"dims": dims, "rounds": rounds, "cases": n, "size": size, "cells": len(records[1]),
            "same_records": records[1] == records[2], "one_thread_over_two": spread(ratios),
            "threads": {str(k): {key: spread(v) for key, v in m.items()} for k, m in figures.items()}}


def _range(figure: dict, digits: int = 2) -> str:
    return f"{figure['median']:.{digits}f} ({figure['min']:.{digits}f}-{figure['max']:.{digits}f})"


def show(row: dict) -> None:
    print(f"unet {row['dims']}D, {row['cells']} cells, {row['rounds']} alternating rounds "
          f"(median, min-max); clean Dice {row['clean_dice']:.3f} after {row['train_epochs']} epochs")
    print(f"  audit s {_range(row['audit_seconds'])}   bare onnxruntime s "
          f"{_range(row['bare_inference_seconds'])}   audit / bare {_range(row['overhead_ratio'])}")
    print(f"  scoring per image: {_range(row['scoring_cpu_ms_per_image'])} ms CPU "
          f"({_range(row['scoring_alone_cpu_ms_per_image'])} done again alone on one thread, "
          f"{_range(row['scoring_beside_inference_cpu_ms_per_image'])} beside onnxruntime alone), "
          f"{_range(row['scoring_ms_per_image'])} ms wall beside onnxruntime; stages (s): "
          + ", ".join(f"{k} {_range(v)}" for k, v in row["timings"].items()))


def show_scheduling(row: dict) -> None:
    print(f"unet {row['dims']}D, {row['rounds']} alternating rounds (median, min-max)")
    for name, figures in row["schedules"].items():
        print(f"  {name:<44} audit / bare {_range(figures['overhead_ratio'])}, outside inference "
              f"{_range(figures['outside_inference_s'])} s, of it waiting on helpers "
              f"{_range(figures['waiting_s'])} s, scoring "
              f"{_range(figures['scoring_cpu_ms_per_image'])} ms CPU per image")


def show_scoring_threads(row: dict) -> None:
    print(f"{row['dims']}D, {row['cells']} cells, a model that answers at once, {row['rounds']} alternating "
          f"rounds (median, min-max); records the same: {row['same_records']}")
    for threads, figures in row["threads"].items():
        print(f"  {threads} scoring thread(s): audit {_range(figures['audit_s'])} s, waiting on helpers "
              f"{_range(figures['waiting_s'])} s, scoring {_range(figures['scoring_cpu_ms_per_image'])} ms "
              "CPU per image")
    print(f"  one thread / two: {_range(row['one_thread_over_two'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n2d", type=int, default=16)
    parser.add_argument("--n3d", type=int, default=4)
    parser.add_argument("--size2d", type=int, default=128)
    parser.add_argument("--size3d", type=int, default=64)
    parser.add_argument("--train-epochs", type=int, default=5,
                        help="train the model briefly first (0: random weights)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3],
                        help="which rows: 2 (the 2D audit), 3 (the 3D audit) or both")
    parser.add_argument("--compare-scheduling", action="store_true",
                        help="instead: the audit as built against earlier schedules")
    parser.add_argument("--compare-scoring-threads", action="store_true",
                        help="instead: one scoring thread against two, beside a model that answers at once")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run, show_row = ((compare_scheduling, show_scheduling) if args.compare_scheduling else
                     (compare_scoring_threads, show_scoring_threads) if args.compare_scoring_threads else
                     (measure, show))
    setups = {2: (args.n2d, args.size2d, "noise"), 3: (args.n3d, args.size3d, "blur")}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(d, *setups[d], Path(tmp), args.train_epochs, args.rounds) for d in sorted(set(args.dims))]
    for row in rows:
        show_row(row)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    assert all(np.isfinite(r["overhead_ratio"]["median"]) for r in rows if "overhead_ratio" in r)


if __name__ == "__main__":
    main()
