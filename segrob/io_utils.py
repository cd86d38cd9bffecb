"""Files and JSON: atomic writes, guarded output folders, content hashes, strict-JSON values."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(path: Path, *, folder: bool = False) -> None:
    """Give a temp file or folder the permissions a plain create would (mkstemp makes 0600)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename, so readers never see half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _publish(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def json_safe(value: Any) -> Any:
    """``value`` ready for strict JSON: NaN and infinities become ``None`` (JSON has neither, and
    other readers reject Python's ``NaN``), NumPy scalars and arrays plain numbers and lists,
    tuples lists and keys strings. Anything else is returned as it is."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if callable(getattr(value, "tolist", None)):  # NumPy scalars and arrays, torch tensors
        return json_safe(value.tolist())
    return value


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks so large models fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_output_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(Path(tmp))
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_output_dir(
    out: str | os.PathLike, *, overwrite: bool, inputs: tuple[Path, ...] = ()
) -> Path:
    """Refuse an output folder that is non-empty (unless ``overwrite``) or inside an input.

    Nothing is created or deleted here; :func:`atomic_output_dir` does the writing.
    """
    out_path = Path(out).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if out_path == source or source in out_path.parents:
            raise SegrobError(f"{out}: output folder lies inside the input {source}; choose another")
    if out_path.exists() and not out_path.is_dir():
        raise SegrobError(f"{out}: exists and is not a folder")
    if out_path.is_dir() and any(out_path.iterdir()) and not overwrite:
        raise SegrobError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")
    return out_path


@contextmanager
def atomic_output_dir(out: str | os.PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh staging folder that becomes ``out`` only when the block succeeds.

    On failure the staging folder is removed and an existing ``out`` is left untouched.
    """
    out_path = check_output_dir(out, overwrite=overwrite)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", dir=out_path.parent))
    try:
        yield staging
        _publish(staging, folder=True)
        if out_path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.old.", dir=out_path.parent))
            os.replace(out_path, trash / "old")
            os.replace(staging, out_path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out_path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
