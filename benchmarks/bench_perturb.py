"""Perturbation throughput per member on a batch of 3D volumes and a batch of 2D images.

Compares with the closest TorchIO and MONAI transforms (3D) when they are installed (the
``bench`` extra: ``pip install -e ".[bench]"``; a missing library prints "skipped"). Every round
times each contender once on the same batch, in turn, so that machine load affects all alike,
each timing once the previous contender's OpenMP threads have stopped spinning. The table gives
segrob's median time and, per library, the median over rounds of the time ratio
``x = library time / segrob time`` with its spread [lowest-highest round] (``x > 1``: segrob is
faster). The libraries transform one volume at a time (their API); segrob the batch at once.

segrob is timed as the audit calls it, with the clean image's statistics (its robust range)
computed once per case and passed in (``stats``); ``own`` repeats the ratio with segrob finding
them on every call. Gaussian noise is also set against a plain ``x + torch.randn_like(x)`` on the
same batch (``x = segrob time / plain time``: what the generator alone costs). The plain intensity
maps are set against their arithmetic alone on the same batch (gamma: torch's ``pow``; brightness:
one add), the kernel that segrob and MONAI both run: ``segrob / arithmetic`` says how close segrob
comes to it, and ``MONAI / arithmetic`` is the most that any implementation computing those same
values could reach against MONAI.

    python benchmarks/bench_perturb.py [--batch3d 2] [--size3d 96] [--rounds 5] [--only a,b]
        [--full] [--json out.json]

``--full`` uses the reference size, 8 x 128^3 (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from segrob.perturb import PERTURBATIONS, apply_perturbation
from segrob.perturb.stats import image_stats

LIBRARIES = ("torchio", "monai")
MIN_TIMING_S = 0.01  # a fast contender is called several times per timing, to rise above jitter
# After a parallel region OpenMP's worker threads spin for several milliseconds (4-9 ms of CPU
# measured here). A contender timed next shares the cores with them unless it runs only OpenMP
# work (which reuses them); segrob's random fields are drawn on threads of its own. Each timing
# therefore starts after the previous contender's workers have gone to sleep: a busy wait, as a
# sleep lets an idle virtual machine slow the next timing down instead.
SETTLE_S = 0.02


def torchio_transforms() -> dict | None:
    """segrob name -> the closest TorchIO transform at severity 3, or None if not installed."""
    try:
        import torchio as tio
    except ImportError:
        return None
    return {
        "gaussian_noise": tio.RandomNoise(std=(0.32, 0.32)),
        "gaussian_blur": tio.RandomBlur(std=(2.2, 2.2)),
        "gamma_compression": tio.RandomGamma(log_gamma=(-0.6, -0.6)),
        "bias_field": tio.RandomBiasField(coefficients=0.9),
        "resolution_loss": tio.RandomAnisotropy(downsampling=(3, 3)),
        "ghosting": tio.RandomGhosting(intensity=0.5),
        "spike": tio.RandomSpike(),
        "mri_motion": tio.RandomMotion(),
        "affine": tio.RandomAffine(degrees=18),
        "elastic": tio.RandomElasticDeformation(),
    }


def monai_transforms() -> dict | None:
    """segrob name -> the closest MONAI array transform at severity 3, or None if not installed."""
    try:
        import monai.transforms as mt
    except ImportError:
        return None
    return {
        "gaussian_noise": mt.RandGaussianNoise(prob=1.0, std=0.32),
        "rician_noise": mt.RandRicianNoise(prob=1.0, std=0.15),
        "gaussian_blur": mt.GaussianSmooth(sigma=2.2),
        "gamma_expansion": mt.AdjustContrast(gamma=2.2),
        "contrast": mt.RandAdjustContrast(prob=1.0, gamma=(0.5, 0.5)),
        "brightness": mt.RandShiftIntensity(prob=1.0, offsets=(0.3, 0.3)),
        "bias_field": mt.RandBiasField(prob=1.0, coeff_range=(0.9, 0.9)),
        "histogram_warp": mt.RandHistogramShift(prob=1.0),
        "spike": mt.RandKSpaceSpikeNoise(prob=1.0),
        "gibbs_ringing": mt.GibbsNoise(alpha=0.5),
        "affine": mt.RandAffine(prob=1.0, rotate_range=0.31),
        "elastic": mt.Rand3DElastic(prob=1.0, sigma_range=(5, 7), magnitude_range=(50, 150)),
    }


def library_call(library: str, transform, images: torch.Tensor, labels: torch.Tensor):
    """Apply a library transform volume by volume (their API); TorchIO warps the label too."""
    def run() -> None:
        for image, label in zip(images, labels, strict=True):
            if library == "torchio":
                import torchio as tio

                transform(tio.Subject(image=tio.ScalarImage(tensor=image),
                                      label=tio.LabelMap(tensor=label[None])))
            else:
                transform(image)

    return run


def settle() -> None:
    end = time.perf_counter() + SETTLE_S
    while time.perf_counter() < end:
        pass


# The arithmetic alone of the plain intensity maps at their nominal parameters, as torch computes it
# for segrob and for MONAI alike.
def _gamma(batch: torch.Tensor, params: dict) -> torch.Tensor:
    return batch.pow(params["gamma"])


ARITHMETIC = {
    "gamma_compression": _gamma,
    "gamma_expansion": _gamma,
    "brightness": lambda batch, params: batch + params["offset"],
}


def alternate(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of every contender, one timing of each per round, in turn."""
    calls = {}
    for name, fn in contenders.items():  # warm-up, and how many calls make one timing
        settle()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, math.ceil(MIN_TIMING_S / max(time.perf_counter() - start, 1e-6)))
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            settle()
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            seconds[name].append((time.perf_counter() - start) / calls[name])
    return seconds


def ratio(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """Median and spread (lowest, highest) of the per-round ratios."""
    values = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def contenders_for(name: str, batch: torch.Tensor, label: torch.Tensor, references: dict) -> dict:
    """segrob with the case's statistics given and computed per call, then every library."""
    severity = min(3, PERTURBATIONS[name]().n_levels)
    stats = image_stats(batch)
    contenders = {
        "segrob": lambda: apply_perturbation(name, batch, label, severity=severity, seed=1,
                                             stats=stats),
        "own": lambda: apply_perturbation(name, batch, label, severity=severity, seed=1),
    }
    for library, transforms in references.items():
        if batch.ndim == 5 and transforms and name in transforms:
            contenders[library] = library_call(library, transforms[name], batch, label)
    if name == "gaussian_noise":
        contenders["plain"] = lambda: batch + torch.randn_like(batch)
    if name in ARITHMETIC:
        params = PERTURBATIONS[name]().severity_params(severity)
        contenders["arithmetic"] = lambda: ARITHMETIC[name](batch, params)
    return contenders


def measure(name: str, batch: torch.Tensor, label: torch.Tensor, references: dict,
            rounds: int) -> dict:
    """One table row: segrob's median time, throughput and every ratio."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries' own deprecation notices
        seconds = alternate(contenders_for(name, batch, label, references), rounds)
    ours = seconds["segrob"]
    row = {"perturbation": name, "dims": batch.ndim - 2, "seconds": statistics.median(ours),
           "voxels_per_second": batch.numel() / statistics.median(ours),
           "own": ratio(seconds["own"], ours)}
    for library in LIBRARIES:
        if library in seconds:
            row[library] = ratio(seconds[library], ours)
            row[f"{library}_own"] = ratio(seconds[library], seconds["own"])
    if "plain" in seconds:
        row["plain"] = ratio(ours, seconds["plain"])
    if "arithmetic" in seconds:
        row["arithmetic"] = ratio(ours, seconds["arithmetic"])
        if "monai" in seconds:
            row["monai_arithmetic"] = ratio(seconds["monai"], seconds["arithmetic"])
    return row


def render(rows: list[dict], references: dict) -> None:
    print(f"{'perturbation':<24}{'dims':>4}{'ms':>8}{'Mvox/s':>8}"
          f"{'torchio x [spread]':>22}{'own':>6}{'monai x [spread]':>22}{'own':>6}")
    for row in rows:
        cells = []
        for library in LIBRARIES:
            if references[library] is None and row["dims"] == 3:
                cells += ["skipped", ""]
            elif library in row:
                r = row[library]
                cells += [f"{r['median']:.2f} [{r['low']:.2f}-{r['high']:.2f}]",
                          f"{row[library + '_own']['median']:.2f}"]
            else:
                cells += ["-", ""]
        print(f"{row['perturbation']:<24}{row['dims']:>4}{row['seconds'] * 1e3:>8.1f}"
              f"{row['voxels_per_second'] / 1e6:>8.0f}{cells[0]:>22}{cells[1]:>6}"
              f"{cells[2]:>22}{cells[3]:>6}")
    for row in rows:
        if "plain" in row:
            r = row["plain"]
            print(f"gaussian_noise {row['dims']}D / plain x + randn_like(x): {r['median']:.2f} "
                  f"[{r['low']:.2f}-{r['high']:.2f}]")
    for row in rows:
        if "arithmetic" in row:
            r = row["arithmetic"]
            line = (f"{row['perturbation']} {row['dims']}D / its arithmetic alone: {r['median']:.2f} "
                    f"[{r['low']:.2f}-{r['high']:.2f}]")
            if "monai_arithmetic" in row:
                m = row["monai_arithmetic"]
                line += (f"; MONAI / the arithmetic alone: {m['median']:.2f} "
                         f"[{m['low']:.2f}-{m['high']:.2f}]")
            print(line)
    for library in LIBRARIES:
        if references[library] is None:
            print(f"{library}: skipped (not installed; pip install -e '.[bench]')")


def machine() -> dict:
    """What ran the benchmark: the ratios move between machines (memory-bound members most)."""
    described = {"processor": platform.processor() or platform.machine(), "torch": torch.__version__}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu MHz"):
                described.setdefault(key.strip(), value.strip())
    return described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch3d", type=int, default=2)
    parser.add_argument("--size3d", type=int, default=96)
    parser.add_argument("--batch2d", type=int, default=16)
    parser.add_argument("--size2d", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated members (default: all)")
    parser.add_argument("--full", action="store_true", help="8 x 128^3 volumes")
    parser.add_argument("--json", dest="json_path", help="write every row here")
    args = parser.parse_args()
    if args.full:
        args.batch3d, args.size3d = 8, 128
    generator = torch.Generator().manual_seed(0)
    batches = {
        3: torch.rand((args.batch3d, 1, *(args.size3d,) * 3), generator=generator),
        2: torch.rand((args.batch2d, 1, args.size2d, args.size2d), generator=generator),
    }
    labels = {d: (b[:, 0] > 0.5).long() for d, b in batches.items()}
    references = {"torchio": torchio_transforms(), "monai": monai_transforms()}
    names = args.only.split(",") if args.only else list(PERTURBATIONS)
    stats_s = statistics.median(alternate({"stats": lambda: image_stats(batches[3])},
                                          args.rounds)["stats"])
    print(f"3D batch {tuple(batches[3].shape)}, 2D batch {tuple(batches[2].shape)}, "
          f"{torch.get_num_threads()} threads, {args.rounds} alternating rounds; image statistics "
          f"of the 3D batch (once per case): {stats_s * 1e3:.1f} ms")
    rows = [measure(name, batches[dims], labels[dims], references, args.rounds)
            for name in names for dims in PERTURBATIONS[name].spatial_dims]
    render(rows, references)
    if args.json_path:
        settings = {"batch3d": list(batches[3].shape), "batch2d": list(batches[2].shape),
                    "threads": torch.get_num_threads(), "rounds": args.rounds, "machine": machine(),
                    "image_stats_seconds": stats_s,
                    "skipped": [lib for lib in LIBRARIES if references[lib] is None]}
        Path(args.json_path).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
