"""The HTML report in a real browser, the gallery's examples, and the markdown and JUnit outputs."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from browser import loaded_dom, needs_chromium, screenshot
from PIL import Image
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.data.synth import SynthConfig, write_synthetic
from segrob.report import load_report

runner = CliRunner()
SCHEMA_1_0 = Path(__file__).parent / "data" / "report_schema_1_0.json"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Two tiny models audited on the same data with pages, examples and a gate."""
    import torch

    from segrob.models import create_model
    from segrob.onnx.export import export_model

    root = tmp_path_factory.mktemp("pages")
    write_synthetic(SynthConfig(dims=2, n=3, size=32, blend=0.1, level="low", seed=1), root / "data")
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
        export_model(model, root / f"{name}.onnx", config={"normalization": {"method": "zscore"}})
        result = invoke("audit", root / f"{name}.onnx", "--data", root / "data", "--suite", "texture",
                        "--out", root / f"{name}.json", "--html", root / f"{name}.html", "--examples", 3,
                        "--markdown", root / f"{name}.md", "--junit", root / f"{name}.xml",
                        "--fail-under", "dice=0.99,nsd=0.0")
        assert result.exit_code == 1, result.output  # random weights: the Dice gate fails
    return root


def test_the_audit_keeps_its_worst_cells_beside_the_report(audited):
    report = load_report(audited / "a.json")
    assert 1 <= len(report.examples) <= 3
    losses = [e.loss for e in report.examples]
    assert losses == sorted(losses, reverse=True)
    first = report.examples[0].load(report.folder)
    assert first.file.startswith("a.examples/") and first.arrays["image"].shape == (32, 32)
    assert np.array_equal(first.arrays["label"], first.arrays["clean_label"])  # texture keeps labels
    assert not list(audited.glob(".*"))  # no staging left behind


def test_the_report_carries_the_calibration_of_every_scored_voxel(audited):
    report = load_report(audited / "a.json")
    clean, perturbed = report.reliability["clean"], report.reliability["perturbed"]
    assert sum(clean["count"]) == 3 * 32 * 32  # every voxel of the 3 clean images, once
    assert sum(perturbed["count"]) == 4 * 3 * 32 * 32  # 2 members x 2 severities x 3 cases
    # Bins hold what they say: no more right than counted, confidences within the bin's range.
    for index, (confidence, right, count) in enumerate(zip(*clean.values(), strict=True)):
        assert 0 <= right <= count
        if count:
            assert index / 15 - 1e-9 <= confidence / count <= (index + 1) / 15 + 1e-9


@needs_chromium
def test_the_html_report_renders_offline_in_a_browser(audited, tmp_path):
    page = audited / "a.html"
    text = page.read_text()
    # The only URLs are the XML namespaces of the inline SVG, which name vocabularies, not files.
    assert "https://" not in text and "http://" not in re.sub(r'xmlns(:\w+)?="[^"]+"', "", text)
    dom, probe = loaded_dom(page, tmp_path)
    assert probe["resources"] == []  # nothing was fetched: no CDN, no external file
    assert probe["images"] == probe["decoded"] >= 2  # the gallery's thumbnails decode
    for section in ("verdict", "curves", "heatmap", "details", "gallery"):
        assert f'id="{section}"' in dom
    assert 'id="reliability-clean"' in dom and 'id="reliability-perturbed"' in dom
    for name in ("texture_blur_background", "texture_speckle"):
        assert f'id="curve-{name}-0"' in dom
    assert "gate failed" in dom
    shot = np.asarray(Image.open(screenshot(page, tmp_path / "shot.png")).convert("L"))
    assert shot.std() > 20 and (shot < 100).mean() > 0.01  # not blank: text and plots drawn


@needs_chromium
def test_report_compares_models_on_one_page(audited, tmp_path):
    page = tmp_path / "both.html"
    result = invoke("report", audited / "a.json", audited / "b.json", "--html", page, "--metric", "hd95")
    assert result.exit_code == 0, result.output
    dom, probe = loaded_dom(page, tmp_path)
    assert probe["resources"] == []
    assert 'id="curve-texture_speckle-0"' in dom and 'id="curve-texture_speckle-1"' in dom
    assert 'id="heatmap-0"' in dom and 'id="heatmap-1"' in dom and "HD95 against severity" in dom


def test_markdown_summary_carries_the_reports_numbers(audited):
    report = load_report(audited / "a.json")
    text = (audited / "a.md").read_text()
    clean = report.summary.clean.stat("dice")
    assert f"{clean.mean:.3f} [{clean.ci_low:.3f}, {clean.ci_high:.3f}]" in text
    for row in report.summary.perturbations:
        assert re.search(rf"\| {row.perturbation} \| {row.relative_robustness:.3f} / {row.worst_dice:.3f} \|",
                         text)
    assert "**failed**" in text and "Gate failures" in text


def test_junit_has_one_case_per_bound_and_names_the_failing_rows(audited):
    report = load_report(audited / "a.json")
    root = ElementTree.parse(audited / "a.xml").getroot()
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["dice >= 0.99", "nsd >= 0.0"]
    failure = cases[0].find("failure")
    rows = [f["row"] for f in report.gates["failures"] if f["key"] == "dice"]
    assert failure is not None and all(row in failure.text for row in rows)
    assert cases[1].find("failure") is None
    assert root.get("tests") == "2" and root.get("failures") == "1"


def test_a_report_without_a_gate_shows_a_skipped_case_and_old_reports_render(tmp_path):
    result = invoke("report", SCHEMA_1_0, "--junit", tmp_path / "j.xml", "--markdown", tmp_path / "s.md",
                    "--html", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    root = ElementTree.parse(tmp_path / "j.xml").getroot()
    assert root.find(".//testcase") is not None
    assert "No examples were kept" in (tmp_path / "r.html").read_text()


def test_an_unknown_second_metric_is_a_usage_error(tmp_path):
    result = invoke("report", SCHEMA_1_0, "--html", tmp_path / "r.html", "--metric", "dice")
    assert result.exit_code == 2 and "--metric" in result.output
    assert not (tmp_path / "r.html").exists()


def test_progress_on_a_non_terminal_is_plain_lines_every_few_percent():
    from segrob_cli import output
    from segrob_cli.output import progress_bar

    lines = []
    original = output.err_console.print
    output.err_console.print = lambda text, **_: lines.append(text)
    try:
        with progress_bar("audit", 200) as bar:
            for done in range(1, 201):
                bar(done, status=f"case {done}")
    finally:
        output.err_console.print = original
    assert 18 <= len(lines) <= 21  # one every 5%, not one per step
    assert lines[-1].startswith("audit: 100% (200/200) case 200")
    assert all("eta" in line for line in lines)


def test_the_page_names_classes_as_the_dataset_does(audited):
    from segrob.render.html_report import html_report

    report = load_report(audited / "a.json")
    assert "<td>1</td>" in html_report([report], ["a"])  # no names: the class id alone
    report.settings.setdefault("labels", {})["names"] = {"0": "background", "1": "tumour"}
    assert "<td>1 (tumour)</td>" in html_report([report], ["a"])


def test_pages_of_several_models_state_each_pair_paired(audited):
    from segrob.render.ci import markdown_summary
    from segrob.render.html_report import html_report

    reports = [load_report(audited / f"{name}.json") for name in "ab"]
    page, summary = html_report(reports, ["a", "b"]), markdown_summary(reports, ["a", "b"])
    for figure in ("clean Dice", "mean perturbed Dice"):
        assert f"in {figure} (a - b " in page and f"in {figure} (a - b " in summary
    assert 'id="pairwise"' in page and "3 shared cases" in page
    assert "**Paired comparisons**" in summary and summary.count("3 shared cases") == 2
    assert 'id="pairwise"' not in html_report(reports[:1], ["a"])  # one model: nothing to pair


def test_the_console_shows_the_main_stages_and_the_report_keeps_every_timing(audited):
    result = invoke("report", audited / "a.json")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("time: "))
    assert [part.split()[0] for part in line[len("time: "):].split(", ")] == [
        "perturbation", "inference", "metrics", "total"]
    timings = load_report(audited / "a.json").timings
    assert {"metrics_cpu", "scorer_wait"} <= set(timings) and timings["metrics_cpu"] > 0
