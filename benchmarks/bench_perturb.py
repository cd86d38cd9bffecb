"""Perturbation throughput per member on a batch of 3D volumes and a batch of 2D images.

Compares with the closest TorchIO and MONAI transforms (3D) when they are installed (the
``bench`` extra: ``pip install -e ".[bench]"``; a missing library prints "skipped"), as time
ratios measured side by side in this run: ``x = library time / segrob time`` on the same batch,
so ``x > 1`` means segrob is faster. The libraries transform one volume at a time (their API);
segrob transforms the batch at once, finding each image's robust range first.

    python benchmarks/bench_perturb.py [--batch3d 2] [--size3d 96] [--full] [--json out.json]

``--full`` uses the reference size, 8 x 128^3 (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from segrob.perturb import PERTURBATIONS, apply_perturbation

LIBRARIES = ("torchio", "monai")


def timed(fn, repeats: int) -> float:
    """Mean wall time of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


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


def run_reference(library: str, transform, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Apply a library transform volume by volume (their API); TorchIO warps the label too."""
    for image, label in zip(images, labels, strict=True):
        if library == "torchio":
            import torchio as tio

            transform(tio.Subject(image=tio.ScalarImage(tensor=image),
                                  label=tio.LabelMap(tensor=label[None])))
        else:
            transform(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch3d", type=int, default=2)
    parser.add_argument("--size3d", type=int, default=96)
    parser.add_argument("--batch2d", type=int, default=16)
    parser.add_argument("--size2d", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
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
    rows = []
    for name, cls in PERTURBATIONS.items():
        severity = min(3, cls().n_levels)
        for dims in cls.spatial_dims:
            batch, label = batches[dims], labels[dims]
            seconds = timed(lambda b=batch, lab=label, n=name, s=severity: apply_perturbation(
                n, b, lab, severity=s, seed=1), args.repeats)
            row = {"perturbation": name, "family": cls.family, "dims": dims, "severity": severity,
                   "seconds": seconds, "voxels_per_second": batch.numel() / seconds}
            for library, transforms in references.items():
                if dims == 3 and transforms and name in transforms:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        other = timed(lambda t=transforms[name], b=batch, lab=label, lib=library:
                                      run_reference(lib, t, b, lab), args.repeats)
                    row[f"{library}_ratio"] = other / seconds
            rows.append(row)
    print(f"3D batch {tuple(batches[3].shape)}, 2D batch {tuple(batches[2].shape)}, "
          f"{torch.get_num_threads()} threads; x = library time / segrob time (3D)")
    print(f"{'perturbation':<26}{'dims':>5}{'Mvox/s':>10}{'torchio x':>11}{'monai x':>9}")
    for row in rows:
        cells = []
        for library in LIBRARIES:
            if references[library] is None:
                cells.append("skipped" if row["dims"] == 3 else "-")
            else:
                ratio = row.get(f"{library}_ratio")
                cells.append("-" if ratio is None else f"{ratio:.2f}")
        print(f"{row['perturbation']:<26}{row['dims']:>5}{row['voxels_per_second'] / 1e6:>10.1f}"
              f"{cells[0]:>11}{cells[1]:>9}")
    for library in LIBRARIES:
        if references[library] is None:
            print(f"{library}: skipped (not installed; pip install -e '.[bench]')")
    if args.json_path:
        settings = {"batch3d": list(batches[3].shape), "batch2d": list(batches[2].shape),
                    "threads": torch.get_num_threads(), "repeats": args.repeats,
                    "skipped": [lib for lib in LIBRARIES if references[lib] is None]}
        Path(args.json_path).write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
