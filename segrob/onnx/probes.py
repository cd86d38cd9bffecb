"""What an onnxruntime session accepts and how it behaves: shapes, latency, determinism.

Used by :func:`segrob.onnx.checks.check_model_file`; each function takes a
:class:`~segrob.onnx.session.SessionInfo` and returns plain data.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segrob.errors import SegrobError, first_line
from segrob.onnx.session import SessionInfo

DEFAULT_SIZE = {2: 64, 3: 32}
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
               "tensor(double)": np.float64}


@dataclass
class ShapeProbe:
    """One input shape tried: did it run, and was it expected to (``None``: unknown)?"""

    shape: list[int]
    ok: bool
    expected: bool | None
    output_shape: list[int] | None = None
    error: str | None = None


def base_shape(info: SessionInfo, values: dict[str, Any], batch_size: int) -> list[int]:
    """The shape to time: static dims as they are; the batch, metadata channels, and a spatial
    size from the metadata (fixed size, 3D patch) or a default rounded to the size multiple."""
    shape = list(info.input_shape)
    dims = max(0, len(shape) - 2)
    fixed = values.get("fixed_size")
    patch = values.get("patch_size") if dims == 3 else None
    multiple = int(values.get("size_multiple") or 16)
    minimum = int(values.get("min_size") or 1)
    out = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int):
            out.append(dim)
        elif axis == 0:
            out.append(batch_size)
        elif axis == 1:
            out.append(int(values.get("in_channels") or 1))
        elif fixed:
            out.append(int(fixed[axis - 2]))
        else:
            size = int(patch[axis - 2]) if patch else DEFAULT_SIZE.get(dims, 32)
            out.append(max(minimum, -(-size // multiple) * multiple))
    return out


def probe_shapes(info: SessionInfo, values: dict[str, Any], base: list[int]) -> list[ShapeProbe]:
    """Try ``base`` first, then a bigger batch and other spatial sizes on dynamic axes."""
    shape = info.input_shape
    multiple = int(values.get("size_multiple") or 0)
    tries: list[tuple[list[int], bool | None]] = [(base, True)]
    if not isinstance(shape[0], int):
        tries.append(([base[0] + 1, *base[1:]], True))
    dynamic = [axis for axis in range(2, len(shape)) if not isinstance(shape[axis], int)]
    if dynamic:
        step = multiple or 16
        grown = list(base)
        for rank, axis in enumerate(dynamic):
            grown[axis] = base[axis] + step * (rank + 1)  # a different size per axis
        tries.append((grown, True if multiple else None))
        if multiple > 1:
            odd = list(base)
            odd[dynamic[0]] = base[dynamic[0]] + 1
            tries.append((odd, False))
    probes = []
    for trial, expected in tries:
        try:
            output = run_once(info, random_input(info, trial))
            probes.append(ShapeProbe(trial, True, expected, list(output.shape)))
        except Exception as error:  # onnxruntime's own exception types
            probes.append(ShapeProbe(trial, False, expected, error=short_error(error)))
    return probes


#: Largest spatial size multiple probed (2**_MAX_EXPONENT); a U-Net with 6 poolings needs 64.
_MAX_EXPONENT = 6


def probe_outputs(info: SessionInfo, shape: list[int]) -> list[list[int] | None]:
    """The shape of every graph output for one ``shape`` input (``None``s when it does not run)."""
    try:
        outputs = info.session.run(None, {info.input_name: random_input(info, shape)})
    except Exception:  # onnxruntime's own exception types: the shape is not accepted
        return [None] * len(info.output_names)
    return [list(np.shape(o)) for o in outputs]


def probe_size_multiple(info: SessionInfo, *, batch: int, channels: int) -> int | None:
    """The smallest power of two every dynamic spatial size must be a multiple of, or ``None``.

    Sizes ``base + m`` (base a multiple of 64 that runs) are multiples of ``m`` and of no larger
    power of two, and such a size runs exactly when ``m`` is at least what the network needs; a
    binary search over ``m`` per axis finds it in three runs. A run counts only if some output
    has the input's spatial size (a network without skips may silently crop instead).
    """
    dims = list(info.input_shape)
    axes = [axis for axis in range(2, len(dims)) if not isinstance(dims[axis], int)]
    base = next((b for b in (64, 128) if _runs_at(info, sized_input(dims, batch, channels, b))), None)
    if base is None:
        return None
    needed = 1
    for axis in axes:
        low, high = 0, _MAX_EXPONENT  # the answer's exponent lies in [low, high]
        while low < high:
            middle = (low + high) // 2
            shape = sized_input(dims, batch, channels, base)
            shape[axis] = base + 2 ** middle
            low, high = (low, middle) if _runs_at(info, shape) else (middle + 1, high)
        needed = max(needed, 2 ** low)
    return needed


def sized_input(dims: list, batch: int, channels: int, size: int) -> list[int]:
    """An input shape for graph dims ``dims``: its static axes, ``size`` on every dynamic spatial
    axis."""
    spatial = [d if isinstance(d, int) else size for d in dims[2:]]
    return [batch, channels, *spatial]


def _runs_at(info: SessionInfo, shape: list[int]) -> bool:
    shapes = probe_outputs(info, shape)
    return any(s is not None and s[2:] == shape[2:] for s in shapes)


def measure_latency(info: SessionInfo, sample: np.ndarray, *, runs: int,
                    warmup: int) -> dict[str, Any]:
    """Wall time per run: p50, p95, mean (ms); throughput = batch / mean time (images/s)."""
    for _ in range(warmup):
        run_once(info, sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_once(info, sample)
        times.append(time.perf_counter() - start)
    seconds = np.asarray(times)
    return {
        "shape": list(sample.shape),
        "runs": runs,
        "warmup": warmup,
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p95_ms": float(np.percentile(seconds, 95) * 1e3),
        "mean_ms": float(seconds.mean() * 1e3),
        "min_ms": float(seconds.min() * 1e3),
        "throughput": float(sample.shape[0] / seconds.mean()),
    }


def alternating_median_ms(calls: Sequence[Callable[[], object]], *, rounds: int) -> list[float]:
    """Median milliseconds of each of ``calls``, timed one after another in ``rounds`` rounds so
    that machine load weighs on each alike (warm them up first)."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(max(1, rounds)):
        for call, record in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            record.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(record) for record in times]


def measure_determinism(info: SessionInfo, sample: np.ndarray, *, repeats: int) -> dict:
    """Run ``sample`` ``repeats`` times; bitwise equality and the largest difference."""
    first = run_once(info, sample)
    equal = True
    worst = 0.0
    for _ in range(repeats - 1):
        again = run_once(info, sample)
        equal = equal and first.tobytes() == again.tobytes()
        worst = max(worst, float(np.max(np.abs(again.astype(np.float64) - first))))
    return {"repeats": repeats, "bitwise_equal": equal, "max_abs_diff": worst}


def run_once(info: SessionInfo, batch: np.ndarray) -> np.ndarray:
    from segrob.onnx.session import run

    if batch.dtype == np.float32:
        return run(info, batch)
    return np.asarray(info.session.run([info.output_name], {info.input_name: batch})[0])


def random_input(info: SessionInfo, shape: list[int]) -> np.ndarray:
    dtype = NUMPY_TYPES.get(info.input_type)
    if dtype is None:
        raise SegrobError(f"{info.path}: input type {info.input_type} is not a float image")
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def shape_text(shape: list[int]) -> str:
    return "x".join(str(s) for s in shape)


def short_error(error: BaseException) -> str:
    """onnxruntime's reason for a failed run, in one line of at most 200 characters."""
    text = first_line(error)
    # onnxruntime prefixes "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : "; keep the reason.
    text = text.split(" : ")[-1] if "ONNXRuntimeError" in text else text
    if "Status Message: " in text:
        node = re.search(r"running (\w+) node", text)
        reason = re.sub(r"^\S+\.(?:h|cc):\d+ \S+ ", "", text.split("Status Message: ", 1)[1])
        text = f"{node.group(1)}: {reason}" if node else reason
    return text if len(text) <= 200 else text[:197] + "..."
