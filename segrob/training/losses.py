"""The training loss: soft Dice + cross-entropy, and the hard Dice used for validation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segrob.metrics.overlap import dice


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1e-5
) -> torch.Tensor:
    """``1 - mean_k (2 sum p_k y_k + s) / (sum p_k + sum y_k + s)`` over foreground classes.

    Sums run over the whole batch and all voxels ("batch Dice", as nnU-Net), so patches without
    foreground do not make the loss explode; ``p = softmax(logits)``, ``y`` one-hot.

    Args:
        logits: ``(N, K, *spatial)``.
        target: integer classes ``(N, *spatial)``.
    """
    classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target.long(), classes).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, logits.ndim))
    intersection = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    foreground = dice[1:] if classes > 1 else dice
    return 1.0 - foreground.mean()


class DiceCELoss(nn.Module):
    """``L = CE(logits, y) + w_dice * (1 - softDice(logits, y))``."""

    def __init__(self, *, dice_weight: float = 1.0, ce_weight: float = 1.0):
        super().__init__()
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target.long())
        return self.ce_weight * ce + self.dice_weight * soft_dice_loss(logits, target)


def case_dice(prediction: np.ndarray, label: np.ndarray, classes: int) -> float:
    """Mean Dice over foreground classes ``1..classes-1`` of one case (the metrics' own Dice,
    so validation follows the empty-mask policy: a class empty in both scores 1)."""
    return float(np.mean([dice(prediction == k, label == k) for k in range(1, max(classes, 2))]))
