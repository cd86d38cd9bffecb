"""Which spatial input sizes a model accepts, and a check that says how to fix a wrong one.

Every segrob model carries three attributes:

* ``size_multiple``: each spatial size must be a multiple of it (``2 ** poolings``);
* ``min_size``: the smallest size per axis (normalisation needs more than one voxel at the
  bottleneck);
* ``fixed_size``: a tuple when the model takes exactly one size (UNETR), else ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from segrob.errors import SegrobError


def size_rule(model: nn.Module) -> str:
    """The accepted sizes in words, e.g. ``"a multiple of 8, at least 16"``."""
    fixed = getattr(model, "fixed_size", None)
    if fixed is not None:
        return "exactly " + "x".join(str(s) for s in fixed) + " (img_size)"
    multiple = int(getattr(model, "size_multiple", 1))
    minimum = int(getattr(model, "min_size", 1))
    return f"a multiple of {multiple}, at least {minimum}"


def nearest_valid_size(model: nn.Module, size: int) -> int:
    """The largest accepted size ``<= size`` (or the smallest accepted one)."""
    multiple = int(getattr(model, "size_multiple", 1))
    minimum = int(getattr(model, "min_size", 1))
    return max(minimum, (size // multiple) * multiple)


def input_size_problem(model: nn.Module, spatial_shape: Sequence[int]) -> str | None:
    """Why ``spatial_shape`` does not fit ``model``, or ``None`` when it does."""
    shape = tuple(int(s) for s in spatial_shape)
    dims = int(getattr(model, "spatial_dims", len(shape)))
    name = getattr(model, "arch", type(model).__name__)
    if len(shape) != dims:
        return f"{name} is a {dims}D model; got a {len(shape)}D input of size {_x(shape)}"
    fixed = getattr(model, "fixed_size", None)
    if fixed is not None:
        if shape != tuple(fixed):
            return (
                f"{name} takes a fixed input size of {_x(fixed)} (its img_size option); "
                f"got {_x(shape)}"
            )
        return None
    multiple = int(getattr(model, "size_multiple", 1))
    minimum = int(getattr(model, "min_size", 1))
    bad = [s for s in shape if s % multiple or s < minimum]
    if bad:
        levels = getattr(model, "levels", None)
        why = f" for {levels} levels" if levels else ""
        return (
            f"spatial size must be a multiple of {multiple} and at least {minimum}{why}; "
            f"got {_x(shape)} (e.g. {nearest_valid_size(model, bad[0])} works)"
        )
    return None


def check_input_size(model: nn.Module, spatial_shape: Sequence[int]) -> None:
    """Raise :class:`SegrobError` when ``model`` cannot take inputs of ``spatial_shape``."""
    problem = input_size_problem(model, spatial_shape)
    if problem is not None:
        raise SegrobError(problem)


def check_input(model: nn.Module, x_shape: Sequence[int]) -> None:
    """Check a full ``(N, C, *spatial)`` input shape: rank, channels and spatial size."""
    dims = int(getattr(model, "spatial_dims", len(x_shape) - 2))
    in_channels = getattr(model, "in_channels", None)
    name = getattr(model, "arch", type(model).__name__)
    if len(x_shape) != dims + 2:
        raise SegrobError(
            f"{name} expects a batch (N, C, {', '.join('S' * dims)}) of {dims}D images; "
            f"got shape {tuple(x_shape)}"
        )
    if in_channels is not None and int(x_shape[1]) != int(in_channels):
        raise SegrobError(
            f"{name} was built for {in_channels} input channel(s); got {int(x_shape[1])}"
        )
    check_input_size(model, tuple(x_shape[2:]))


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)
