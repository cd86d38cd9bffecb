"""Perturbation throughput per family on batches of 3D volumes and 2D images.

Compares with TorchIO and MONAI's closest transforms when they are installed (the `bench`
extra: `pip install -e ".[bench]"`), as time ratios measured side by side in this run.

    python benchmarks/bench_perturb.py [--batch3d 2] [--size3d 96] [--full] [--json out.json]

``--full`` uses the issue's reference size, 8 x 128^3.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from segrob.perturb import PERTURBATIONS, apply_perturbation


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def reference_transforms():
    """Closest TorchIO / MONAI transforms per segrob perturbation, where a library is installed."""
    refs: dict[str, dict] = {}
    try:
        import torchio as tio

        refs["torchio"] = {
            "gaussian_noise": tio.RandomNoise(std=(0.3, 0.3)),
            "gaussian_blur": tio.RandomBlur(std=(2.2, 2.2)),
            "bias_field": tio.RandomBiasField(coefficients=0.9),
            "ghosting": tio.RandomGhosting(intensity=0.5),
            "spike": tio.RandomSpike(),
            "mri_motion": tio.RandomMotion(),
            "affine": tio.RandomAffine(degrees=18),
            "elastic": tio.RandomElasticDeformation(),
            "gamma_compression": tio.RandomGamma(log_gamma=(-0.6, -0.6)),
        }
    except ImportError:
        pass
    try:
        import monai.transforms as mt

        refs["monai"] = {
            "gaussian_noise": mt.RandGaussianNoise(prob=1.0, std=0.3),
            "rician_noise": mt.RandRicianNoise(prob=1.0, std=0.15),
            "gaussian_blur": mt.GaussianSmooth(sigma=2.2),
            "bias_field": mt.RandBiasField(prob=1.0, coeff_range=(0.9, 0.9)),
            "gibbs_ringing": mt.GibbsNoise(alpha=0.5),
            "contrast": mt.AdjustContrast(gamma=1.5),
            "affine": mt.RandAffine(prob=1.0, rotate_range=0.3),
        }
    except ImportError:
        pass
    return refs


def run_reference(library: str, transform, batch: torch.Tensor) -> None:
    for image in batch:
        if library == "torchio":
            import torchio as tio

            transform(tio.ScalarImage(tensor=image))
        else:
            transform(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch3d", type=int, default=2)
    parser.add_argument("--size3d", type=int, default=96)
    parser.add_argument("--batch2d", type=int, default=32)
    parser.add_argument("--size2d", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="8 x 128^3 volumes")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if args.full:
        args.batch3d, args.size3d = 8, 128
    generator = torch.Generator().manual_seed(0)
    batches = {
        3: torch.rand((args.batch3d, 1, *(args.size3d,) * 3), generator=generator),
        2: torch.rand((args.batch2d, 1, args.size2d, args.size2d), generator=generator),
    }
    labels = {d: (b[:, 0] > 0.5).long() for d, b in batches.items()}
    refs = reference_transforms()
    rows = []
    for name, cls in PERTURBATIONS.items():
        severity = min(3, cls().n_levels)
        for dims in cls.dims:
            batch, label = batches[dims], labels[dims]
            seconds = timed(lambda b=batch, lab=label, n=name, s=severity: apply_perturbation(
                n, b, lab, severity=s, seed=1), args.repeats)
            row = {"perturbation": name, "family": cls.family, "dims": dims,
                   "voxels_per_second": batch.numel() / seconds, "seconds": seconds}
            for library, transforms in refs.items():
                if name in transforms and dims == 3:
                    other = timed(lambda t=transforms[name], b=batch, lib=library: run_reference(lib, t, b),
                                  args.repeats)
                    row[f"{library}_ratio"] = other / seconds
            rows.append(row)
    print(f"3D batch {tuple(batches[3].shape)}, 2D batch {tuple(batches[2].shape)}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'perturbation':<26}{'dims':>5}{'Mvox/s':>10}{'torchio x':>11}{'monai x':>9}")
    for row in rows:
        tio_ratio = f"{row['torchio_ratio']:.2f}" if "torchio_ratio" in row else "-"
        monai_ratio = f"{row['monai_ratio']:.2f}" if "monai_ratio" in row else "-"
        print(f"{row['perturbation']:<26}{row['dims']:>5}{row['voxels_per_second'] / 1e6:>10.1f}"
              f"{tio_ratio:>11}{monai_ratio:>9}")
    if not refs:
        print("TorchIO and MONAI are not installed: comparisons skipped (pip install -e '.[bench]')")
    else:
        print("ratios > 1: the library takes that many times longer than segrob on the same batch")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
