"""Seeds that depend only on names, never on order: the audit's reproducibility rests on them."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(base_seed: int, *parts: str | int) -> int:
    """A stable seed in ``[0, 2**63)`` from a base seed and any names or numbers.

    Uses blake2b (not Python's salted ``hash``), so every process, machine and Python version
    derives the same seed for, e.g., ``(audit_seed, case, perturbation, severity)``.
    """
    text = "\x1f".join([str(int(base_seed)), *(str(p) for p in parts)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def uniform(gen: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    """One float drawn from ``gen`` (parameters are drawn on the CPU side of the generator)."""
    return float(low + (high - low) * torch.rand((), generator=gen, device=gen.device).item())


def sign(gen: torch.Generator) -> float:
    return 1.0 if uniform(gen) < 0.5 else -1.0


def sub_seed(gen: torch.Generator) -> int:
    """A seed for the random field a perturbation applies, recorded with its parameters."""
    return int(torch.randint(0, 2**62, (), generator=gen, device=gen.device).item())
