"""The perturbation contract: draw parameters for a severity, then apply them (TorchIO-style).

A perturbation maps a batch ``(N, C, *spatial)`` (float, any device) and its label map
``(N, *spatial)`` (integer, or ``None``) to the same shapes, dtypes and device. Intensity
parameters are relative to each image's robust range (0.5 to 99.5 percentile), so one suite means
the same on CT, MRI and 8-bit images. Severity 0 is the identity; 1..levels grow in strength.

Randomness: parameters (signs, directions, coefficients) are drawn from a CPU generator seeded
with the call's seed, and every random field (noise, displacement) from a CPU generator seeded with
the recorded ``field_seed``, then moved to the batch's device. Drawing on the CPU costs a copy on
a GPU, but the same seed then gives the same perturbation on every machine, with or without a
GPU, which is what the audit's "results do not depend on how work is split" rests on.

Spacing: parameters that are lengths (``units`` says ``mm``) are in millimetres and follow the
voxel spacing passed to :func:`~segrob.perturb.registry.apply_perturbation`; a spacing other than
isotropic 1 mm is recorded in the applied ``params`` (``spacing``), so the record still
reproduces the perturbation. No spacing (``None``) means isotropic 1 mm: lengths in voxels.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from segrob.errors import SegrobError
from segrob.perturb.seeding import derive_seed, generator, sub_seed
from segrob.perturb.stats import ImageStats, stats_for

KINDS = ("intensity", "geometric")
FIELD_BLOCK = 1 << 17


@dataclass(frozen=True)
class AppliedPerturbation:
    """What was applied: enough to reproduce it exactly (``params`` are JSON-ready)."""

    name: str
    severity: int
    seed: int
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Perturbation:
    """Base class. Subclasses set the class attributes and implement :meth:`apply`.

    ``levels`` maps each parameter to its nominal value at severity 1..n (ROOD-MRI, ImageNet-C
    and the papers' reference points). :meth:`make_params` draws the applied values (random
    signs, directions, the seed of a random field) from a generator; :meth:`apply` is then a
    deterministic function of the image and those parameters.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    kind: ClassVar[str] = "intensity"
    spatial_dims: ClassVar[tuple[int, ...]] = (2, 3)
    description: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    levels: ClassVar[dict[str, tuple[float, ...]]] = {}
    # False where apply() uses no random field: no field_seed is drawn or recorded then.
    draws_field: ClassVar[bool] = True
    #: The unit of every parameter in ``levels`` (the catalogue shows them).
    units: ClassVar[dict[str, str]] = {}
    #: True where apply() reads the voxel spacing (its lengths are in mm).
    uses_spacing: ClassVar[bool] = False
    #: True where the arithmetic goes through Intel MKL, which torch calls on x86 CPUs for its
    #: FFTs, its matrix products and its vector math (exp, log, sqrt): MKL picks its code by the
    #: CPU, so such a member's last bits, and the audit records made from them, can differ between
    #: machines (never between thread counts on one machine). The others give the same bits on
    #: every x86 CPU (``tests/test_perturb_fast_paths.py`` runs them under another MKL code path).
    cpu_dependent_bits: ClassVar[bool] = False

    @property
    def n_levels(self) -> int:
        """The highest severity (5 for most members, 2 for the paper's texture protocol)."""
        return len(next(iter(self.levels.values())))

    def severity_params(self, severity: int) -> dict[str, float]:
        """The nominal parameters at ``severity`` (for `segrob suites`)."""
        return {key: values[severity - 1] for key, values in self.levels.items()}

    def make_params(
        self, severity: int, generator: torch.Generator, *, image_shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """Draw the applied parameters: the nominal ones, plus the seed of a random field where
        :attr:`draws_field`. Members that draw more (signs, directions) extend this."""
        params: dict[str, Any] = dict(self.severity_params(severity))
        if self.draws_field:
            params["field_seed"] = sub_seed(generator)
        return params

    def with_spacing(self, params: dict[str, Any], spacing: tuple[float, ...] | None) -> dict[str, Any]:
        """Record ``spacing`` in ``params`` where :attr:`uses_spacing` and it is not isotropic
        1 mm (which is what no record means, so today's records on 1 mm data stay as they are)."""
        if self.uses_spacing and not is_unit_spacing(spacing):
            params["spacing"] = [float(s) for s in spacing]
        return params

    def apply(
        self, image: torch.Tensor, label: torch.Tensor | None, params: dict[str, Any],
        stats: ImageStats | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Apply drawn ``params`` to ``image`` (N, C, *spatial) and ``label`` (N, *spatial);
        ``stats``: the image's :func:`~segrob.perturb.stats.image_stats`, computed if not given."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "kind": self.kind,
            "spatial_dims": list(self.spatial_dims),
            "description": self.description,
            "modalities": list(self.modalities),
            "n_levels": self.n_levels,
            "severities": {s: self.severity_params(s) for s in range(1, self.n_levels + 1)},
            "units": {key: self.units[key] for key in self.levels},
            "cpu_dependent_bits": self.cpu_dependent_bits,
        }


def is_unit_spacing(spacing: tuple[float, ...] | list[float] | None) -> bool:
    return spacing is None or all(float(s) == 1.0 for s in spacing)


def voxel_spacing(params: dict[str, Any], dims: int) -> tuple[float, ...]:
    """The spacing recorded in ``params`` (mm per voxel along each spatial axis), or 1 mm."""
    return tuple(float(s) for s in params.get("spacing") or (1.0,) * dims)


def check_spacing(perturbation: Perturbation, image: torch.Tensor,
                  spacing: tuple[float, ...] | None) -> None:
    """Refuse a spacing that is not one positive finite value (mm) per spatial axis."""
    if spacing is None:
        return
    dims = image.ndim - 2
    if len(spacing) != dims or not all(0 < float(s) < float("inf") for s in spacing):
        raise SegrobError(f"{perturbation.name}: spacing must be {dims} positive numbers (mm per "
                          f"voxel along each spatial axis), got {tuple(spacing)}")


def spatial_axes(image: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, image.ndim))


def to_unit(
    image: torch.Tensor, stats: ImageStats | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x - low) / span`` per image and channel (a new tensor), with ``low`` and ``span`` to map
    back, from ``stats`` or the image's own :class:`~segrob.perturb.stats.ImageStats`."""
    stats = stats_for(image, stats)
    return (image - stats.low).div_(stats.span), stats.low, stats.span


def from_unit(
    unit: torch.Tensor, low: torch.Tensor, span: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """The inverse of :func:`to_unit`, cast to ``like``'s dtype; ``unit`` is overwritten (every
    caller passes a temporary, and a 3D volume is not copied twice more)."""
    return unit.mul_(span).add_(low).to(like.dtype)


def random_field(params: dict[str, Any], shape: tuple[int, ...], like: torch.Tensor,
                 kind: str = "normal",
                 finish: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """A float32 random field from the recorded ``field_seed``, drawn on the CPU and moved to
    ``like``'s device, so the same seed gives the same perturbation on a CPU and on a GPU.

    The field is drawn in blocks of ``FIELD_BLOCK`` values, block ``k > 0`` from its own seed
    derived from ``field_seed`` and ``k``, on parallel threads: drawing, not arithmetic, bounds
    noise. The values depend on the seed alone, never on the thread count; a field of one block
    is exactly ``torch.randn(shape)`` (or ``rand``) from ``field_seed``.

    ``finish(start, block)``, where given, runs on each block as soon as it is drawn, on the
    drawing thread (``start``: the block's offset in the flattened field): arithmetic there
    reads the block while it is still in cache and runs in parallel with the other draws.
    """
    field = torch.empty(shape, dtype=torch.float32)
    flat = field.view(-1)
    starts = range(0, flat.numel(), FIELD_BLOCK)

    def draw(start: int) -> None:
        seed = params["field_seed"] if start == 0 else \
            derive_seed(params["field_seed"], "block", start // FIELD_BLOCK)
        block = flat[start:start + FIELD_BLOCK]
        if kind == "normal":
            block.normal_(generator=generator(seed, "cpu"))
        else:
            block.uniform_(generator=generator(seed, "cpu"))
        if finish is not None:
            finish(start, block)

    blocks = iter(starts)  # shared: each thread takes the next block as it comes free

    def take() -> None:
        for start in blocks:
            draw(start)

    # torch releases the GIL while it draws: the caller and its helpers draw side by side.
    helpers = min(len(starts), torch.get_num_threads()) - 1
    running = [_draw_pool(helpers).submit(take) for _ in range(helpers)]
    take()
    for helper in running:
        helper.result()
    return field.to(device=like.device)


@contextmanager
def at_most_torch_threads(limit: int) -> Iterator[None]:
    """torch on at most ``limit`` threads inside, as set for the calling thread; restored after."""
    before = torch.get_num_threads()
    if before <= limit:
        yield
        return
    torch.set_num_threads(limit)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_torch_thread() -> AbstractContextManager[None]:
    """torch on one thread inside: for a reduction or a product whose rounding depends on how
    torch splits it among threads, and which is cheap enough to run on one."""
    return at_most_torch_threads(1)


def forward_fft(values: torch.Tensor, dims: tuple[int, ...], *, half: bool) -> torch.Tensor:
    """The FFT of real ``values`` over ``dims`` (``rfftn`` for the ``half`` spectrum, else
    ``fftn``) on one torch thread, for the same reason as :func:`inverse_fft`: on a CPU with
    AVX-512 FP16 and AMX (2.1 GHz, two cores), ``rfftn`` of a batch on two threads rounded
    differently from one thread for 13 of 300 random 2D and 3D shapes, ``fftn`` for 2 (on an
    older AVX-512 CPU for none: MKL picks its code by the CPU)."""
    with one_torch_thread():
        if half:
            return torch.fft.rfftn(values, dim=dims)
        return torch.fft.fftn(values, dim=dims)


def inverse_fft(spectrum: torch.Tensor, dims: tuple[int, ...],
                size: tuple[int, ...] | None = None) -> torch.Tensor:
    """The inverse FFT of ``spectrum`` over ``dims`` (``irfftn`` to ``size`` for a half spectrum,
    else ``ifftn``) on one torch thread: on several, a batch's inverse transforms round
    differently for some shapes (``irfftn`` for 60 of 300 random shapes on two to four threads,
    ``ifftn`` for 3)."""
    with one_torch_thread():
        if size is None:
            return torch.fft.ifftn(spectrum, dim=dims)
        return torch.fft.irfftn(spectrum, s=size, dim=dims)


#: torch's CPU kernels run a tensor of at most this many elements on one thread
#: (``at::internal::GRAIN_SIZE``).
TORCH_GRAIN = 32768
#: A multiple of the values in one step of torch's vectorised CPU loops (two vectors: 32 float32
#: with AVX-512, 16 with AVX2): a loop that starts at a multiple of it splits into vector steps and
#: a scalar rest exactly as the loop over the whole tensor does there.
VECTOR_STEP = 64


def thread_independent(values: torch.Tensor, work: Callable[[torch.Tensor], object]) -> torch.Tensor:
    """``work`` applied in place to ``values``, giving the bits one thread gives at any number of
    threads; ``values`` back (a contiguous copy if it was not contiguous).

    For ``pow`` and the like, whose vector and scalar routines differ in the last bit: torch's
    threads each take a chunk and finish it with a scalar rest, so which values take the scalar
    routine depends on the thread count. Here the chunks are whole vector steps (see
    :func:`_in_whole_steps`). ``tests/test_perturb_fast_paths.py`` checks it against one thread.
    """
    values = values.contiguous()
    if values.device.type != "cpu":  # a GPU's result does not depend on the CPU's threads
        work(values)
        return values
    flat = values.view(-1)
    _in_whole_steps(flat.numel(), lambda part: work(flat[part]))
    return values


def thread_independent_product(batch: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``batch * factor`` for a ``factor`` shaped like one image of ``batch`` ``(N, C, *S)``,
    with one thread's bits on any thread count (a complex product's vector and scalar routines
    round differently, like ``pow``'s). One thread multiplies image by image, each from its
    start, so this does too, each image in whole vector steps."""
    spatial = batch.shape[2:]
    if tuple(factor.shape) != tuple(spatial):
        raise SegrobError(f"factor of shape {tuple(factor.shape)} does not match images {tuple(spatial)}")
    if batch.device.type != "cpu":
        return batch * factor
    images = batch.reshape(-1, factor.numel())
    plane = factor.contiguous().view(-1)
    out = torch.empty(images.shape, dtype=torch.result_type(batch, factor))
    for source, target in zip(images, out, strict=True):
        _in_whole_steps(plane.numel(), lambda part, s=source, t=target: torch.mul(
            s[part], plane[part], out=t[part]))
    return out.view(*batch.shape[:2], *spatial)


def _in_whole_steps(n: int, work: Callable[[slice], object]) -> None:
    """``work`` over ``[0, n)`` in slices that round as one thread's loop over the whole does: the
    head in equal chunks of whole vector steps (on torch's threads, as fast as one call), the few
    whole steps left on one thread, and the last partial step alone in the scalar routine."""
    if n <= TORCH_GRAIN or torch.get_num_threads() == 1:  # torch runs it whole on one thread
        work(slice(0, n))
        return
    rest = n - n % VECTOR_STEP
    head = rest
    while head:  # torch splits ``head`` into ``tasks`` chunks of ceil(head / tasks): whole steps
        tasks = min(torch.get_num_threads(), -(-head // TORCH_GRAIN))
        if head % (tasks * VECTOR_STEP) == 0:
            break
        head -= VECTOR_STEP
    for start, end in ((0, head), (head, rest), (rest, n)):
        if end > start:
            work(slice(start, end))


_DRAW_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_DRAW_POOLS_LOCK = threading.Lock()


def _draw_pool(helpers: int) -> ThreadPoolExecutor:
    """Threads that help draw random fields, kept from one field to the next (starting them took
    a fifth of a 3D Gaussian noise's time); one pool per process, so a forked child has its own."""
    key = (os.getpid(), max(1, helpers))
    with _DRAW_POOLS_LOCK:
        if key not in _DRAW_POOLS:
            _DRAW_POOLS[key] = ThreadPoolExecutor(key[1], thread_name_prefix="segrob-draw")
        return _DRAW_POOLS[key]


def check_severity(perturbation: Perturbation, severity: int) -> None:
    """Refuse a severity outside ``0..n_levels`` with a message naming the valid range."""
    if isinstance(severity, bool) or not isinstance(severity, int) \
            or not 0 <= severity <= perturbation.n_levels:
        raise SegrobError(
            f"severity {severity!r} is out of range for {perturbation.name} "
            f"(0 = clean, 1..{perturbation.n_levels})"
        )


def check_batch(
    perturbation: Perturbation, image: torch.Tensor, label: torch.Tensor | None
) -> None:
    """Refuse inputs a perturbation cannot take, naming what was given and what is expected."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        kind = image.dtype if isinstance(image, torch.Tensor) else type(image).__name__
        raise SegrobError(f"{perturbation.name}: image must be a float tensor, got {kind}")
    dims = image.ndim - 2
    if dims not in perturbation.spatial_dims:
        valid = " or ".join(f"{d}D" for d in perturbation.spatial_dims)
        raise SegrobError(
            f"{perturbation.name}: takes {valid} batches shaped (N, C, *spatial), "
            f"got an image of shape {tuple(image.shape)} ({dims}D)"
        )
    expected = (image.shape[0], *image.shape[2:])
    if label is not None and tuple(label.shape) != expected:
        raise SegrobError(
            f"{perturbation.name}: label of shape {tuple(label.shape)} does not match image "
            f"{tuple(image.shape)} (expected {expected})"
        )

