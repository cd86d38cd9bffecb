"""`segrob demo`: the whole loop on built-in defaults, in a few minutes on a laptop CPU.

Low- and high-complexity synthetic data -> their measured complexity -> U-Net, no-skip and
attention U-Net trained briefly on each -> ONNX export with parity -> audits under the paper's
texture shifts and a noise suite -> the skip study's table -> a recommendation from the audits.
Everything lands in one folder; rerunning reuses what is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from segrob.data.complexity import measure_complexity
from segrob.data.dataset import load_dataset
from segrob.studies.skip import SkipStudyConfig, run_skip_study


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("segrob-demo")
    levels: tuple[str, ...] = ("low", "high")
    archs: tuple[str, ...] = ("unet", "noskip", "attention")
    n_train: int = 48
    n_test: int = 16
    size: int = 64
    epochs: int = 20
    shift_suite: str = "noise"
    device: str = "auto"


def run_demo(config: DemoConfig, *, notify: Callable[[str], None] | None = None) -> dict:
    """Run the demo; returns the study result, the complexity per level and the recommendation."""
    from segrob.recommend import recommend
    from segrob.report import load_report

    study = run_skip_study(
        SkipStudyConfig(
            out=config.out, levels=config.levels, archs=config.archs, n_train=config.n_train,
            n_test=config.n_test, size=config.size, epochs=config.epochs,
            shift_suite=config.shift_suite, device=config.device,
        ),
        notify=notify,
    )
    complexity = {}
    for level in config.levels:
        report = measure_complexity(load_dataset(config.out / "data" / f"{level}-train"))
        complexity[level] = {"measured_level": report.level, "median_td": report.summary["median"],
                             "warnings": list(report.warnings)}
    hardest = config.levels[-1]
    paths = [str(config.out / "audits" / f"{hardest}-{arch}-s0-texture.json") for arch in config.archs]
    advice = recommend(
        complexity=hardest, dims=2, reports=[load_report(p) for p in paths], report_paths=paths
    )
    return {"study": study, "complexity": complexity, "recommendation": advice, "report_paths": paths}
