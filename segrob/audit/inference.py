"""From raw image batches to logits through any predict function (onnxruntime in the audit).

Order, as in deployment: the raw (perturbed) image -> the model's own normalisation -> padding
to a size the network accepts, or a sliding window for fixed-size models and large images ->
logits cropped back to the image (:mod:`segrob.tiling`, as in validation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from segrob.data.normalize import normalize
from segrob.metrics.calibration import class_argmax
from segrob.preprocessing import PreprocessingSpec, resample, resampled_shape
from segrob.tiling import DEFAULT_OVERLAP, tiled_logits

#: A batch (a torch tensor, on the GPU when the session runs there) in, logits on the host out.
PredictFn = Callable[[torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class InferencePlan:
    """How to feed a model: its normalisation, accepted sizes and window."""

    spatial_dims: int
    in_channels: int
    normalization: dict
    size_multiple: int = 16
    window: tuple[int, ...] | None = None
    fixed_size: bool = False
    overlap: float = DEFAULT_OVERLAP
    batch_size: int = 8
    #: Resampling and channel order; its intensity part is ``normalization``, kept apart because
    #: models without a spec (callables, older exports) have a normalisation only.
    preprocessing: PreprocessingSpec | None = None

    def to_dict(self) -> dict:
        return {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "normalization": self.normalization,
            "size_multiple": self.size_multiple,
            "window": list(self.window) if self.window else None,
            "fixed_size": self.fixed_size,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
        }


def predict(images: torch.Tensor, plan: InferencePlan, run: PredictFn,
            spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """Logits ``(B, K, *spatial)`` for a raw batch ``(B, C, *spatial)`` at ``spacing`` (mm).

    With a ``target_spacing`` in ``plan.preprocessing`` the normalised batch is resampled to it
    (linear) and the logits back to the batch's own grid (linear), so they are scored against
    the label as stored.

    The batch stays a torch tensor on its device until ``run``: on CUDA the session binds it in
    place (IOBinding), so perturbed batches never travel to the host and back. ``run`` returns
    host arrays, so windows are stitched on the host, where the scores are computed.
    """
    batch = normalize(images, plan.normalization).float()
    prep = plan.preprocessing
    if prep is not None and prep.channel_order is not None:
        batch = batch[:, list(prep.channel_order)]
    grid = tuple(batch.shape[2:])
    if prep is not None and prep.target_spacing is not None and spacing is not None:
        batch = resample(batch, resampled_shape(grid, spacing, prep.target_spacing))
    logits = tiled_logits(
        batch,
        lambda tiles: torch.from_numpy(np.asarray(run(tiles), dtype=np.float32)),
        window=plan.window,
        fixed_size=plan.fixed_size,
        size_multiple=plan.size_multiple,
        overlap=plan.overlap,
        batch_size=plan.batch_size,
    )
    return resample(logits, grid).numpy()


@dataclass(frozen=True)
class OutputHead:
    """From the model's output to class probabilities and a label map.

    ``activation`` is what segrob applies (``none``: the graph already ends in Softmax or
    Sigmoid). A binary head has one channel, the foreground: probabilities ``[1 - p, p]`` and
    foreground where ``p >= threshold``. Several sigmoid channels are rescaled to sum to one.
    """

    activation: str = "softmax"
    binary: bool = False
    threshold: float = 0.5

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        if self.activation == "softmax":
            return softmax(output)
        values = sigmoid(output) if self.activation == "sigmoid" else np.clip(output, 0.0, 1.0)
        if self.binary:
            return np.concatenate([1.0 - values, values], axis=1)
        return values / np.maximum(values.sum(axis=1, keepdims=True), 1e-12)

    @property
    def labels_are_argmax(self) -> bool:
        """Whether :meth:`labels` is the most probable class (a binary head thresholds instead)."""
        return not self.binary

    def labels(self, probabilities: np.ndarray) -> np.ndarray:
        if self.binary:
            return (probabilities[:, 1] >= self.threshold).astype(np.int64)
        return class_argmax(probabilities, axis=1)


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))  # no overflow warning for large |values|


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
