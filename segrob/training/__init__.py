"""Training: losses, patch sampling at a set positive ratio, the loop and the run folder.

The loop records the foreground ratio (FBR) of every patch, so a run knows the FBR range its
model was trained on; export writes that range into the ONNX metadata and the audit reports
Dice inside and outside it.
"""

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
