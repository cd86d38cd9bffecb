"""Files and JSON: atomic writes, guarded output folders, one-line file-system errors, content
hashes, strict-JSON values.

The rules (stated in the README under "What segrob promises about your files"):

* an output never equals, contains or sits inside an input of the same command;
* an existing file is replaced only with ``overwrite``, never an input, and only when it is
  one segrob wrote (``is_ours``);
* ``overwrite`` replaces only a folder segrob wrote (it holds the :data:`MARKER` file) and
  never one holding files segrob did not write;
* staging files and folders carry the writer's process id, so a later run removes those that
  a killed process left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError

#: The file segrob leaves in every folder it writes: ``{"written_by", "kind", "files"}``.
MARKER = ".segrob"
_STAGING_TAG = ".segrob-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(path: Path, *, folder: bool = False) -> None:
    """Give a temp file or folder the permissions a plain create would (mkstemp makes 0600)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def describe_os_error(error: OSError, path: str | os.PathLike) -> str:
    """``PATH: reason`` for a file-system failure, naming the file it happened to."""
    where = error.filename or path
    if _STAGING_TAG in str(where):  # a staged file vanishes with its staging: name the target
        where = path
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return f"{where}: {reason}"


@contextmanager
def file_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` inside the block into a one-line :class:`SegrobError`."""
    try:
        yield
    except OSError as error:
        raise SegrobError(describe_os_error(error, path)) from None


def _staging_prefix(target: Path, role: str) -> str:
    return f".{target.name}{_STAGING_TAG}{role}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(target: Path) -> list[Path]:
    """Remove staging leftovers of ``target`` whose writing process is gone; returns them."""
    removed = []
    prefix = f".{target.name}{_STAGING_TAG}"
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-")[1:2]
        if not pid_text or not pid_text[0].isdigit() or _pid_alive(int(pid_text[0])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _is_staging_name(name: str) -> bool:
    return name.startswith(".") and _STAGING_TAG in name


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and a rename, so readers never see half."""
    with atomic_output_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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
def atomic_output_file(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it becomes ``path`` only if the block succeeds.

    With ``replace=False`` an existing ``path`` (even one that appeared meanwhile, from another
    process) is never replaced: the rename is refused instead.
    """
    target = Path(path)
    with file_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(target)
        fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(target, "tmp"), suffix=target.suffix,
                                   dir=target.parent)
        os.close(fd)
    try:
        with file_errors(target):
            yield Path(tmp)
            _publish(Path(tmp))
            if replace:
                os.replace(tmp, target)
            else:
                _link_new(Path(tmp), target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _link_new(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)  # fails if target exists: no silent last-writer-wins
    except FileExistsError:
        raise SegrobError(f"{target}: appeared while segrob was writing it (another run?); "
                          "not replaced (use --overwrite to replace it)") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> Path:
    """Refuse an output that equals, contains or lies inside any input; returns it resolved."""
    out_path = Path(out).resolve()
    for given in inputs:
        if given is None or str(given).startswith("synth:"):
            continue
        source = Path(given).resolve()
        same_file = out_path.exists() and source.exists() and os.path.samefile(out_path, source)
        if out_path == source or same_file:
            raise SegrobError(f"{out}: is the input {given}; choose another output")
        if _inside(out_path, source):
            raise SegrobError(f"{out}: lies inside the input {given}; choose an output outside it")
        if _inside(source, out_path):
            raise SegrobError(f"{out}: contains the input {given}; writing there would replace it")
    return out_path


def check_output_file(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
    is_ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Refuse an output file that is a folder, an input, or existing without ``overwrite``.

    ``is_ours`` recognises segrob's own file of this kind; with it, ``overwrite`` still never
    replaces a file segrob did not write.
    """
    target = Path(path)
    check_not_input(target, inputs)
    if target.is_dir():
        raise SegrobError(f"{target}: is a folder; give a file name")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise SegrobError(f"{target}: exists (use --overwrite to replace it)")
        if target.is_symlink() or not target.is_file():
            raise SegrobError(f"{target}: is not a regular file; not replaced")
        if is_ours is not None and not is_ours(target):
            raise SegrobError(f"{target}: exists and was not written by segrob; not replaced")
    return target


def write_output_file(
    path: str | os.PathLike,
    content: str | bytes | Callable[[Path], None],
    *,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
    is_ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Write an output file a command was asked for (``--json FILE``, ``--preview FILE``).

    ``content`` is text, bytes, or a function writing the file at the path it is given. The
    checks of :func:`check_output_file` run first; the write is atomic.
    """
    inputs = tuple(inputs)
    target = check_output_file(path, overwrite=overwrite, inputs=inputs, is_ours=is_ours)
    with atomic_output_file(target, replace=overwrite) as tmp:
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        elif isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            content(tmp)
    return target


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder segrob wrote, or ``None`` when it has none (or a broken one)."""
    path = folder / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "segrob":
        return None
    return data


def _relative_files(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        found += [(base / name).as_posix() for name in filenames]
        found += [(base / name).as_posix() for name in dirnames if (Path(dirpath) / name).is_symlink()]
    return sorted(found)


def foreign_files(folder: Path) -> list[str]:
    """Files in ``folder`` that segrob did not write (everything, when it has no marker)."""
    marker = read_marker(folder)
    ours = set(marker.get("files") or []) if marker else set()
    return [f for f in _relative_files(folder)
            if f != MARKER and f not in ours and not _is_staging_name(Path(f).name)]


def write_marker(folder: Path, kind: str, later: Iterable[str] = ()) -> None:
    """Mark ``folder`` as segrob's, listing what it holds and what segrob writes there later."""
    files = sorted(set(_relative_files(folder)) | set(later))
    text = json.dumps({"written_by": "segrob", "kind": kind, "files": files}, indent=1) + "\n"
    (folder / MARKER).write_text(text, encoding="utf-8")


def check_output_dir(
    out: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Refuse an output folder that is an input, holds one, lies in one, or is not replaceable.

    A non-empty folder is replaced only with ``overwrite`` and only when segrob wrote it and
    everything in it. Nothing is created or deleted here; :func:`atomic_output_dir` writes.
    """
    out_path = check_not_input(out, inputs)
    if out_path.exists() and not out_path.is_dir():
        raise SegrobError(f"{out}: exists and is not a folder")
    if not out_path.is_dir():
        return out_path
    with file_errors(out_path):
        entries = [e for e in out_path.iterdir() if not _is_staging_name(e.name)]
    if not entries:
        return out_path
    if not overwrite:
        raise SegrobError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")
    if read_marker(out_path) is None:
        raise SegrobError(f"{out}: was not written by segrob (no {MARKER} marker); not replaced")
    foreign = foreign_files(out_path)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise SegrobError(f"{out}: holds files segrob did not write ({foreign[0]}{more}); "
                          "move them or choose another folder")
    return out_path


@contextmanager
def atomic_output_dir(
    out: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
    kind: str = "output",
    later: Iterable[str] = (),
) -> Iterator[Path]:
    """Yield a fresh staging folder that becomes ``out`` (marked as segrob's) on success.

    ``later`` names files segrob writes into ``out`` after this block (a run's checkpoints).
    On failure the staging folder is removed and an existing ``out`` is left untouched.
    """
    out_path = check_output_dir(out, overwrite=overwrite, inputs=inputs)
    with file_errors(out_path):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(out_path)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_path, "staging"), dir=out_path.parent))
    try:
        with file_errors(out_path):
            yield staging
            write_marker(staging, kind, later)
            _publish(staging, folder=True)
            _swap_in(staging, out_path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out_path: Path) -> None:
    if not out_path.exists():
        os.replace(staging, out_path)
        return
    trash = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_path, "old"), dir=out_path.parent))
    os.replace(out_path, trash / "old")
    os.replace(staging, out_path)
    shutil.rmtree(trash, ignore_errors=True)
