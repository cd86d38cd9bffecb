"""Training: losses, patch/FBR sampling, the loop and the run folder (DESIGN.md section 5)."""

from segrob.training.checkpoint import RunConfig, load_run, read_run_config
from segrob.training.config import TrainConfig, TrainProgress, TrainResult, TrainSettings
from segrob.training.loop import train

__all__ = [
    "RunConfig",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainSettings",
    "load_run",
    "read_run_config",
    "train",
]
