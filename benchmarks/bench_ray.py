"""Ray as the engine: per-task overhead, the audit's speed-up from 1 to 2 workers, and the projected
wall time of the paper-size skip study on N nodes from cell times measured here.

    python benchmarks/bench_ray.py [--cases 8] [--size 64] [--steps 5] [--json out.json]

Projection (see the README's "Ray" section for the assumptions):

    wall(N) = ceil(M / N) * S * t_step + M * n_test * t_case / (N * w) + (M + M * ceil(n_test / b)) * o / N

M models (levels x archs x seeds), S optimiser steps each at t_step seconds (measured at the
paper's 128 px with the paper-size options), n_test audited cases per model at t_case seconds each
(shift suite), w audit workers per node, b cases per audit task, o the per-task overhead of Ray.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from segrob.audit import AuditOptions, audit
from segrob.audit.data_source import resolve_audit_data
from segrob.models import create_model
from segrob.models.registry import get_spec
from segrob.onnx.export import export_model


def task_overhead(ray, count: int) -> tuple[float, float]:
    """Seconds per empty task: submitted in one wave (throughput) and one at a time (latency)."""

    @ray.remote(num_cpus=1)
    def noop(x):
        return x

    ray.get([noop.remote(i) for i in range(8)])  # workers started before timing
    start = time.perf_counter()
    ray.get([noop.remote(i) for i in range(count)])
    wave = (time.perf_counter() - start) / count
    start = time.perf_counter()
    for i in range(count // 4):
        ray.get(noop.remote(i))
    return wave, (time.perf_counter() - start) / (count // 4)


def audit_seconds(model: Path, cases: int, size: int, engine=None) -> float:
    data = resolve_audit_data("synth:medium", n=cases, size=size, spatial_dims=2)
    start = time.perf_counter()
    audit(model, data, AuditOptions(suite="shift", device="cpu", threads=1), engine=engine)
    return time.perf_counter() - start


def with_workers(workers: int, model: Path, cases: int, size: int) -> dict:
    import ray

    from segrob.ray_engine import RayAudit

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        wave, latency = task_overhead(ray, 200)
        engine = RayAudit(ray, block=1)
        audit_seconds(model, workers, size, engine)  # warm: sessions opened in each worker
        return {"workers": workers, "task_wave_s": wave, "task_latency_s": latency,
                "audit_s": audit_seconds(model, cases, size, engine)}
    finally:
        ray.shutdown()


def train_step_seconds(arch: str, steps: int, size: int = 128, batch: int = 8) -> float:
    """Seconds per optimiser step (forward, backward, Adam) at the paper's size and options."""
    torch.manual_seed(0)
    net = create_model(arch, spatial_dims=2, in_channels=1, out_channels=2, **get_spec(arch).paper_options)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    images, labels = torch.randn(batch, 1, size, size), torch.randint(0, 2, (batch, size, size))
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()  # the first step allocates: not timed
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimiser.step()
    return (time.perf_counter() - start) / steps


def project(nodes: int, m: int, train_s: float, n_test: int, case_s: float, workers: int,
            block: int, overhead: float) -> float:
    tasks = m + m * math.ceil(n_test / block)
    return math.ceil(m / nodes) * train_s + m * n_test * case_s / (nodes * workers) + tasks * overhead / nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="Training steps timed per architecture.")
    parser.add_argument("--paper-steps", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "unet.onnx"
        torch.manual_seed(0)
        net = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32))
        export_model(net, model, config={"normalization": {"method": "zscore"}})
        local = audit_seconds(model, args.cases, args.size)
        runs = [with_workers(w, model, args.cases, args.size) for w in (1, 2)]
        paper_model = Path(folder) / "paper.onnx"
        export_model(create_model("unet", spatial_dims=2, in_channels=1, out_channels=2,
                                  **get_spec("unet").paper_options), paper_model)
        case_s = audit_seconds(paper_model, 2, 128) / 2
    step = {arch: train_step_seconds(arch, args.steps) for arch in ("unet", "noskip", "attention")}
    print(f"Ray per-task overhead: {runs[1]['task_wave_s'] * 1e3:.2f} ms in a wave of 200, "
          f"{runs[1]['task_latency_s'] * 1e3:.2f} ms one at a time (2 workers)")
    print(f"audit of {args.cases} cases at {args.size} px, shift suite:  local {local:.2f} s | "
          f"Ray 1 worker {runs[0]['audit_s']:.2f} s | Ray 2 workers {runs[1]['audit_s']:.2f} s | "
          f"speed-up 1 -> 2 workers x{runs[0]['audit_s'] / runs[1]['audit_s']:.2f}, "
          f"Ray 1 worker / local x{runs[0]['audit_s'] / local:.2f}")
    steps = ", ".join(f"{arch} {s * 1e3:.0f} ms/step" for arch, s in step.items())
    print(f"paper-size cells on this machine (one thread): {steps}; audit {case_s:.2f} s/case at 128 px")
    train_s = args.paper_steps * max(step.values())
    print(f"projected skip study (9 models = 3 levels x 3 archs x 1 seed, {args.paper_steps} steps, "
          f"{args.n_test} test cases, nodes like this one's single thread):")
    projection = {n: project(n, 9, train_s, args.n_test, case_s, 1, 2, runs[1]["task_wave_s"])
                  for n in (1, 2, 3, 9, 18)}
    for nodes, seconds in projection.items():
        print(f"  {nodes:>2} node(s): {seconds / 3600:6.2f} h  (x{projection[1] / seconds:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"local_s": local, "ray": runs, "train_step_s": step,
                                         "audit_case_s": case_s, "projection_s": projection}, indent=2))


if __name__ == "__main__":
    main()
