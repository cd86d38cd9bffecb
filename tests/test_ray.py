"""Ray as the engine: the same records as the local run, resumable, and failures that name the cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.audit import AuditOptions
from segrob.audit import audit as run_audit
from segrob.audit.data_source import resolve_audit_data

MODEL = Path(__file__).parent / "data" / "tiny_unet.onnx"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_the_ray_address_may_be_left_out():
    from segrob_cli.ray_option import ray_address

    assert ray_address(None, ["m.onnx", "--ray"]) == ["m.onnx", "--ray", "local"]
    given = ["--ray", "m.onnx", "--data", "d"]
    assert ray_address(None, given) == ["--ray", "local", "m.onnx", "--data", "d"]
    assert ray_address(None, ["--ray", "--data", "d"]) == ["--ray", "local", "--data", "d"]
    assert ray_address(None, ["--ray", "auto", "m.onnx"]) == ["--ray", "auto", "m.onnx"]
    assert ray_address(None, ["--ray", "ray://head:10001"]) == ["--ray", "ray://head:10001"]


def test_without_ray_installed_ray_is_a_usage_error_saying_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = invoke("audit", MODEL, "--data", "synth:low", "--n", "1", "--size", "32", "--ray")
    assert result.exit_code == 2, result.output
    assert 'pip install "segrob[ray]"' in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def local_records(seed=0):
    data = resolve_audit_data("synth:low", n=3, size=32, spatial_dims=2, seed=seed)
    return run_audit(MODEL, data, AuditOptions(suite="texture", device="cpu", seed=seed)).records


def test_several_models_on_ray_give_the_local_records(ray, tmp_path):
    second = tmp_path / "copy.onnx"
    second.write_bytes(MODEL.read_bytes())
    result = invoke("audit", MODEL, second, "--data", "synth:low", "--n", "3", "--size", "32", "--suite",
                    "texture", "--device", "cpu", "--ray", "--out", tmp_path / "reports")
    assert result.exit_code == 0, result.output
    expected = local_records()
    for stem in ("tiny_unet", "copy"):
        report = json.loads((tmp_path / "reports" / f"{stem}.json").read_text())
        assert report["records"] == expected
    several = invoke("audit", MODEL, second, "--data", "synth:low", "--out", tmp_path / "one.json")
    assert several.exit_code == 2 and "--out is a folder" in several.output


def test_an_interrupted_ray_audit_is_continued_by_resume(ray, tmp_path):
    from segrob.ray_engine import RayAudit

    data = resolve_audit_data("synth:low", n=3, size=32, spatial_dims=2, seed=0)
    options = AuditOptions(suite="texture", device="cpu", partial_path=tmp_path / "r.json.partial.jsonl")

    def stop_after_the_first_case(done, total, name):
        raise KeyboardInterrupt  # Ctrl-C while the other blocks are still on the workers

    with pytest.raises(KeyboardInterrupt):
        run_audit(MODEL, data, options, progress=stop_after_the_first_case, engine=RayAudit(ray, block=1))
    kept = (tmp_path / "r.json.partial.jsonl").read_text().splitlines()
    assert 1 + 5 <= len(kept) < 1 + 15  # the header and at least the first case, not all three
    resumed = run_audit(MODEL, data, AuditOptions(**{**options.__dict__, "resume": True}),
                        engine=RayAudit(ray))
    assert resumed.records == local_records()


def test_a_failing_task_names_its_cases(ray):
    from segrob.audit.inference import InferencePlan
    from segrob.audit.units import CellSettings, ModelPlan
    from segrob.errors import SegrobError
    from segrob.ray_engine import RayAudit

    def broken(batch):
        raise RuntimeError("out of memory on the worker")

    plan = ModelPlan(source=broken, key="broken", classes=(1,),
                     inference=InferencePlan(spatial_dims=2, in_channels=1, normalization={"method": "none"}))
    cases = [case for _, case in resolve_audit_data("synth:low", n=1, size=32, spatial_dims=2)]
    with pytest.raises(SegrobError, match=r"case\(s\) case_0000 failed on Ray: .*out of memory"):
        list(RayAudit(ray)([(cases[0], [("clean", 0)])], plan, CellSettings()))


def test_a_worker_killed_mid_run_is_retried_and_the_records_are_the_local_ones(ray, tmp_path):
    """The first task to run kills its worker process outright; Ray retries the task elsewhere."""
    import numpy as np

    from segrob.audit.inference import InferencePlan
    from segrob.audit.units import CellSettings, ModelPlan, audit_cases
    from segrob.ray_engine import RayAudit

    marker = tmp_path / "killed-once"

    def dies_once(batch):
        import os

        if not marker.exists():
            marker.touch()
            os._exit(1)  # no exception, no cleanup: the worker process is simply gone
        return np.concatenate([-batch, batch], axis=1)

    inference = InferencePlan(spatial_dims=2, in_channels=1, normalization={"method": "zscore"})
    plan = ModelPlan(source=dies_once, key="dies-once", classes=(1,), inference=inference)
    work = [(case, [("clean", 0), ("gaussian_noise", 2)])
            for _, case in resolve_audit_data("synth:low", n=3, size=32, spatial_dims=2)]
    settings = CellSettings(seed=0)
    distributed = {r.case: r.records for r in RayAudit(ray, block=1)(work, plan, settings)}
    assert marker.exists()  # a worker did die
    local = {r.case: r.records for r in audit_cases(work, plan, settings)}
    assert distributed == local


def test_a_static_batch_model_with_two_outputs_audits_on_ray_as_it_does_here(ray, tmp_path):
    """Workers open their own session but read the graph as the driver does: batch 1, output 2."""
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            logits = self.conv(x)
            return torch.nn.functional.avg_pool2d(logits, 2), logits  # deep supervision first

    torch.manual_seed(0)
    path = tmp_path / "static.onnx"
    torch.onnx.export(TwoHeads().eval(), (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False,
                      input_names=["image"], output_names=["low", "full"])
    data = resolve_audit_data("synth:low", n=3, size=32, spatial_dims=2, seed=0)
    options = AuditOptions(suite="noise", device="cpu", batch_size=4)
    here = run_audit(path, data, options)
    from segrob.ray_engine import RayAudit

    there = run_audit(path, data, options, engine=RayAudit(ray, block=1))
    assert here.model["graph"]["static_batch"] == 1 and there.records == here.records


def test_a_skip_study_on_ray_gives_the_local_table(ray, tmp_path):
    from segrob.ray_engine import RayCells
    from segrob.studies.skip import SkipStudyConfig, run_skip_study

    def config(out):
        return SkipStudyConfig(out=out, levels=("low",), archs=("unet", "noskip"), n_train=6, n_test=3,
                               size=32, epochs=1, shift_suite="blur", channels=(4, 8))

    local = run_skip_study(config(tmp_path / "local"))
    steps: list[str] = []
    distributed = run_skip_study(config(tmp_path / "ray"), notify=steps.append, engine=RayCells(ray))
    assert distributed["table"] == local["table"]
    strip = [{k: v for k, v in cell.items() if k != "reports"} for cell in local["cells"]]
    assert [{k: v for k, v in cell.items() if k != "reports"} for cell in distributed["cells"]] == strip
    assert "trained and exported low-unet-s0 (on Ray)" in steps
    assert (tmp_path / "ray" / "runs" / "low-noskip-s0" / "config.json").is_file()
    again: list[str] = []
    assert run_skip_study(config(tmp_path / "ray"), notify=again.append, engine=RayCells(ray)) == distributed
    assert again == []  # resumed: every cell was finished
