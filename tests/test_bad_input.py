"""The bad-input matrix: every case ends in one line naming the file or option, the right exit
code, no traceback, and every file that existed before with its bytes unchanged.

Adding a case is one line in ``CASES``: a name, a builder that lays out files under a folder
and returns named paths, the command (CLI arguments with ``{name}`` placeholders, or a library
call taking the named paths), the exit code, the named path the message must mention, and an
optional fragment it must contain.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.data import write_array
from segrob.errors import SegrobError

Files = dict[str, Path]
SECRET = "TOP-SECRET-CONTENT-42"


# --- builders: small datasets and files, each returning the paths a case refers to ----------


def _pair(shape=(16, 16), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 20.0, size=shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[4:12, 4:12] = 1
    return image, label


def images_labels(root: Path, n: int = 2, suffix: str = ".tif", spacing=(0.5, 0.5)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        image, label = _pair(seed=i)
        write_array(root / "images" / f"c{i}{suffix}", image, spacing)
        write_array(root / "labels" / f"c{i}{suffix}", label, spacing)
    return root


def ds(tmp: Path) -> Files:
    return {"ds": images_labels(tmp / "ds")}


def nested_ds(tmp: Path) -> Files:
    """A dataset inside a parent folder that also holds the user's own notes."""
    (tmp / "P").mkdir()
    (tmp / "P" / "notes.txt").write_text("mine")
    return {"P": tmp / "P", "ds": images_labels(tmp / "P" / "ds")}


def ds_and_user_folder(tmp: Path) -> Files:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.txt").write_text("years of work")
    return {**ds(tmp), "mine": tmp / "mine"}


def ds_and_segrob_folder_with_user_file(tmp: Path) -> Files:
    """A folder segrob wrote (its marker lists what it holds) where the user then added a file."""
    out = tmp / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "a.tif").write_bytes(b"x")
    (out / ".segrob").write_text(json.dumps({"written_by": "segrob", "kind": "perturbed",
                                             "files": ["images/a.tif"]}))
    (out / "images" / "added-by-me.txt").write_text("mine")
    return {**ds(tmp), "out": out, "added": out / "images" / "added-by-me.txt"}


def ds_and_file(name: str, content: bytes = b"user data") -> Callable[[Path], Files]:
    def build(tmp: Path) -> Files:
        (tmp / name).write_bytes(content)
        return {**ds(tmp), "file": tmp / name}
    return build


def ds_and(name: str) -> Callable[[Path], Files]:
    """A dataset and a name (``name`` without its suffix) for a path beside it."""
    return lambda tmp: {**ds(tmp), name.split(".")[0]: tmp / name}


def ds_and_json(content: bytes) -> Callable[[Path], Files]:
    def build(tmp: Path) -> Files:
        files = ds(tmp)
        (files["ds"] / "dataset.json").write_bytes(content)
        return {**files, "json": files["ds"] / "dataset.json"}
    return build


def ds_and_png(tmp: Path) -> Files:
    from PIL import Image

    Image.new("L", (4, 4)).save(tmp / "photo.png")
    return {**ds(tmp), "file": tmp / "photo.png"}


def msd(entries: list, extra: Callable[[Path], None] | None = None) -> Callable[[Path], Files]:
    """An MSD dataset whose ``training`` list is ``entries`` (``{root}`` is the dataset folder)."""
    def build(tmp: Path) -> Files:
        root = tmp / "msd"
        images_labels(root, n=1, suffix=".nii.gz")
        outside = tmp / "outside.nii.gz"
        image, _ = _pair()
        write_array(outside, image, (1.0, 1.0))
        if extra is not None:
            extra(root)
        text = json.dumps({"training": entries}).replace("{root}", str(root))
        text = text.replace("{outside}", str(outside))
        (root / "dataset.json").write_text(text)
        return {"ds": root, "json": root / "dataset.json", "outside": outside}
    return build


GOOD_ENTRY = {"image": "images/c0.nii.gz", "label": "labels/c0.nii.gz"}


def linked(kind: str) -> Callable[[Path], Files]:
    """A dataset whose first label is a symbolic link: ``outside``, ``dangling`` or ``loop``."""
    def build(tmp: Path) -> Files:
        root = images_labels(tmp / "ds")
        label = root / "labels" / "c0.tif"
        label.unlink()
        if kind == "outside":
            (tmp / "secret.tif").write_text(SECRET)
            label.symlink_to(tmp / "secret.tif")
        elif kind == "dangling":
            label.symlink_to(tmp / "gone.tif")
        else:
            label.symlink_to(label)
        return {"ds": root, "link": label}
    return build


def spacing_ds(spacing, suffix: str = ".nii.gz") -> Callable[[Path], Files]:
    """A one-case dataset whose label stores ``spacing`` (NIfTI refuses to store some: npz)."""
    def build(tmp: Path) -> Files:
        root = images_labels(tmp / "ds", n=1, suffix=suffix)
        _, label = _pair()
        write_array(root / "labels" / f"c0{suffix}", label, spacing)
        return {"ds": root, "label": root / "labels" / f"c0{suffix}"}
    return build


def corrupt(name: str, content: bytes) -> Callable[[Path], Files]:
    """A dataset whose first image is replaced by ``content`` (which must never be echoed)."""
    def build(tmp: Path) -> Files:
        suffix = "." + name.split(".", 1)[1]
        root = images_labels(tmp / "ds", n=1, suffix=suffix)
        (root / "images" / f"c0{suffix}").write_bytes(content)
        return {"ds": root, "bad": root / "images" / f"c0{suffix}"}
    return build


def nnunet(description: dict) -> Callable[[Path], Files]:
    def build(tmp: Path) -> Files:
        root = tmp / "Dataset001"
        (root / "imagesTr").mkdir(parents=True)
        (root / "labelsTr").mkdir()
        image, label = _pair()
        write_array(root / "imagesTr" / "a_000_0000.nii.gz", image, (1.0, 1.0))
        write_array(root / "labelsTr" / "a_000.nii.gz", label, (1.0, 1.0))
        (root / "dataset.json").write_text(json.dumps(description))
        return {"ds": root, "json": root / "dataset.json"}
    return build


def segrob_json(content: str) -> Callable[[Path], Files]:
    def build(tmp: Path) -> Files:
        files = ds(tmp)
        (files["ds"] / "segrob.json").write_text(content)
        return {**files, "json": files["ds"] / "segrob.json"}
    return build


def run_folder(config_change: dict | None = None, raw: bytes | None = None) -> Callable[[Path], Files]:
    """A run folder whose ``config.json`` has ``config_change`` applied (or is ``raw`` bytes)."""
    def build(tmp: Path) -> Files:
        run = tmp / "run"
        run.mkdir()
        config = {"format": "segrob-run/1", "arch": "unet", "spatial_dims": 2, "in_channels": 1,
                  "out_channels": 2, **(config_change or {})}
        path = run / "config.json"
        path.write_bytes(raw if raw is not None else json.dumps(config).encode())
        (run / "model.pt").write_bytes(b"not used")
        return {"run": run, "config": path, "out": tmp / "m.onnx"}
    return build


def tiny_onnx(path: Path, metadata: dict) -> Path:
    """A one-convolution ONNX segmenter (N, 1, H, W) -> (N, 2, H, W) with ``segrob.*`` metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in metadata.items():
        model.metadata_props.add(key=f"segrob.{key}", value=json.dumps(value))
    onnx.save(model, str(path))
    return path


def model_and_ds(metadata: dict | None = None) -> Callable[[Path], Files]:
    def build(tmp: Path) -> Files:
        meta = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, **(metadata or {})}
        files = ds(tmp)
        (tmp / "notes.json").write_text('{"mine": true}')
        return {**files, "model": tiny_onnx(tmp / "m.onnx", meta), "notes": tmp / "notes.json"}
    return build


def study_folder_with_user_file(tmp: Path) -> Files:
    target = tmp / "study" / "data" / "low-train"
    target.mkdir(parents=True)
    (target / "my-scan.nii.gz").write_bytes(b"precious")
    return {"study": tmp / "study", "folder": target, "user": target / "my-scan.nii.gz"}


def model_ds_and_file(name: str, content: bytes) -> Callable[[Path], Files]:
    """A model, a dataset and a file ``name`` holding ``content`` (a suite, a report, a model)."""
    def build(tmp: Path) -> Files:
        (tmp / name).write_bytes(content)
        return {**model_and_ds()(tmp), "file": tmp / name}
    return build


def pickled_npy(tmp: Path) -> Files:
    """An .npy image that holds a pickled object array: never unpickled, never run."""
    root = images_labels(tmp / "ds", n=1, suffix=".npy")
    np.save(root / "images" / "c0.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    return {"ds": root, "bad": root / "images" / "c0.npy"}


def unreadable_cases(tmp: Path) -> Files:
    """A dataset every case of which is unreadable, and a model to audit it."""
    files = model_and_ds()(tmp)
    for image in (files["ds"] / "images").iterdir():
        image.write_bytes(SECRET.encode())
    return {**files, "report": tmp / "r.json"}


# --- library calls (a case's command when there is no CLI option for it yet) ----------------


def load_all(allow_outside: bool = False) -> Callable[[Files], object]:
    def call(files: Files) -> object:
        from segrob.data import load_dataset

        return [case.name for case in load_dataset(files["ds"], allow_outside=allow_outside)]
    return call


def ensure_synthetic_into(files: Files) -> object:
    from segrob.data.synth import SynthConfig
    from segrob.studies.pipeline import ensure_synthetic

    return ensure_synthetic(files["folder"], SynthConfig(dims=2, n=2, size=32))


def export_over(files: Files) -> object:
    from segrob.models import create_model
    from segrob.onnx.export import ExportOptions, export_model

    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2)
    return export_model(model, files["file"], options=ExportOptions(overwrite=True))


def write_raced(files: Files) -> object:
    """Another process creates the file while segrob writes it: never a silent replace."""
    from segrob.io_utils import write_output_file

    target = files["report"]

    def writer(tmp: Path) -> None:
        target.write_text("the other run's report")
        tmp.write_text("ours")

    return write_output_file(target, writer, overwrite=False)


def edited_partial(line: str | None = None, change: Callable[[dict], None] | None = None):
    """A partial store of three records, its second line then changed by hand."""
    def build(tmp: Path) -> Files:
        from segrob.audit.records import CellRecord, PartialStore

        files = ds(tmp)
        path = tmp / "r.json.partial.jsonl"
        store = PartialStore(path, PARTIAL_HEADER)
        store.open(resume=False)
        for case in ("a", "b", "c"):
            store.append(CellRecord(case, "clean", 0, 0, {}, {"dice": 0.9}))
        store.close(remove=False)
        lines = path.read_text().splitlines()
        if change is not None:
            record = json.loads(lines[1])
            change(record)
            lines[1] = json.dumps(record)
        if line is not None:
            lines[1] = line
        path.write_text("\n".join(lines) + "\n")
        return {**files, "partial": path}
    return build


def resume_partial(files: Files) -> object:
    from segrob.audit.records import PartialStore

    return PartialStore(files["partial"], PARTIAL_HEADER).open(resume=True)


PARTIAL_HEADER = {"model": "abc", "seed": 0}


def _set_dice(record: dict) -> None:
    record["metrics"]["dice"] = 0.99


# --- faults: what a full disk or a read-only folder does, injected where segrob writes -------


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def eacces(*args, **kwargs):
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs.get("dir", "")))


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    name: str
    build: Callable[[Path], Files]
    command: tuple[str, ...] | Callable[[Files], object]
    code: int
    names: str  # the key of the path the message must name, or the option ("--seed") it must name
    says: str = ""  # a fragment the message must contain
    fault: tuple[str, Callable] | None = None  # "module.attr" replaced while the case runs


PERTURB = ("perturb", "{ds}", "--perturbation", "gamma_compression", "--severity", "2")
TRAIN = ("train", "--data", "{ds}")
AUDIT = ("audit", "{model}", "--data", "{ds}")
INFO = ("data", "info", "{ds}")
EXPORT = ("export", "{run}", "--out", "{out}")
SYNTH = ("data", "synth", "--n", "2", "--size", "32")
SYNTH_TO = (*SYNTH, "--out", "{ds}/../s")
STUDY = ("study", "skip", "--out", "{ds}/../st")
CONTEXT = ("study", "context", "--out", "{ds}/../st")
TOML_BROKEN = b"[[perturbation]\nname = " + SECRET.encode()
REPORT_OTHER = json.dumps({"kind": "something-else"}).encode()

CASES = [
    # 1. an output never equals, contains or sits inside an input
    Bad("train-out-is-data", ds, (*TRAIN, "--out", "{ds}", "--overwrite"), 1, "ds", "is the input"),
    Bad("train-out-holds-data", nested_ds, (*TRAIN, "--out", "{P}", "--overwrite"), 1, "P", "contains"),
    Bad("train-out-in-data", ds, (*TRAIN, "--out", "{ds}/run"), 1, "ds", "inside"),
    Bad("perturb-out-holds-data", nested_ds, (*PERTURB, "--out", "{P}", "--overwrite"), 1, "P", "contains"),
    Bad("perturb-out-is-data", ds, (*PERTURB, "--out", "{ds}", "--overwrite"), 1, "ds", "is the input"),
    Bad("perturb-out-in-data", ds, (*PERTURB, "--out", "{ds}/images/p"), 1, "ds", "inside"),
    Bad("perturb-overwrite-user-folder", ds_and_user_folder,
        (*PERTURB, "--out", "{mine}", "--overwrite"), 1, "mine", "not written by segrob"),
    Bad("perturb-overwrite-added-file", ds_and_segrob_folder_with_user_file,
        (*PERTURB, "--out", "{out}", "--overwrite"), 1, "added"),
    Bad("synth-overwrite-user-folder", ds_and_user_folder, (*SYNTH, "--out", "{mine}", "--overwrite"),
        1, "mine", "not written by segrob"),
    Bad("train-overwrite-user-folder", ds_and_user_folder,
        (*TRAIN, "--out", "{mine}", "--overwrite"), 1, "mine", "not written by segrob"),
    Bad("study-into-user-folder", study_folder_with_user_file,
        ("study", "skip", "--out", "{study}", "--levels", "low", "--archs", "unet"), 1, "study",
        "not a segrob study"),
    Bad("study-data-step-user-file", study_folder_with_user_file, ensure_synthetic_into, 1, "folder",
        "not written by segrob"),
    # 2. an existing file is replaced only with --overwrite, only if segrob wrote it, never an input
    Bad("audit-json-is-model", model_and_ds(), (*AUDIT, "--json", "{model}"),
        1, "model", "is the input"),
    Bad("audit-json-is-model-overwrite", model_and_ds(),
        (*AUDIT, "--json", "{model}", "--overwrite"), 1, "model", "is the input"),
    Bad("audit-json-exists", model_and_ds(), (*AUDIT, "--json", "{notes}"),
        1, "notes", "--overwrite"),
    Bad("audit-json-not-a-report", model_and_ds(),
        (*AUDIT, "--json", "{notes}", "--overwrite"), 1, "notes", "not written by segrob"),
    Bad("audit-json-is-folder", model_and_ds(), (*AUDIT, "--json", "{ds}"),
        1, "ds"),
    Bad("audit-json-in-data", model_and_ds(), (*AUDIT, "--json", "{ds}/r.json"),
        1, "ds", "inside"),
    Bad("preview-exists", ds_and_png, (*PERTURB, "--preview", "{file}"), 1, "file", "--overwrite"),
    Bad("preview-not-ours", ds_and_png, (*PERTURB, "--preview", "{file}", "--overwrite"),
        1, "file", "not written by segrob"),
    Bad("preview-in-data", ds, (*PERTURB, "--preview", "{ds}/sheet.png"), 1, "ds", "inside"),
    Bad("preview-is-folder", ds_and_user_folder, (*PERTURB, "--preview", "{mine}"), 1, "mine"),
    Bad("export-over-foreign-file", ds_and_file("model.onnx"), export_over, 1, "file",
        "not written by segrob"),
    Bad("two-writers-one-file", ds_and("report.json"), write_raced, 1, "report",
        "appeared while"),
    # 3. every case file resolves inside its dataset; messages never echo file contents
    Bad("msd-dotdot-entry", msd([GOOD_ENTRY, {"image": "../outside.nii.gz", "label": "labels/c0.nii.gz"}]),
        INFO, 1, "ds", "outside the dataset"),
    Bad("msd-absolute-entry", msd([{"image": "{outside}", "label": "labels/c0.nii.gz"}]),
        INFO, 1, "outside", "outside the dataset"),
    Bad("msd-outside-perturb", msd([{"image": "../outside.nii.gz", "label": "labels/c0.nii.gz"}]),
        (*PERTURB, "--out", "{ds}/../copies"), 1, "ds", "outside the dataset"),
    Bad("label-links-outside", linked("outside"), INFO, 1, "link", "outside the dataset"),
    Bad("label-links-outside-allowed", linked("outside"), load_all(allow_outside=True), 1, "link",
        "cannot read"),
    Bad("label-link-dangling", linked("dangling"), INFO, 1, "link", "broken or looping"),
    Bad("label-link-loop", linked("loop"), INFO, 1, "link", "broken or looping"),
    # 4. file-system failures: one line naming the path and the reason, nothing half-written
    Bad("synth-disk-full", ds_and_user_folder, (*SYNTH, "--out", "{mine}/new"), 1, "mine", "no space left",
        fault=("segrob.data.formats._write_tiff", enospc)),
    Bad("perturb-disk-full", ds_and("p"), (*PERTURB, "--out", "{p}"),
        1, "p", "no space left",
        fault=("segrob.data.formats._write_tiff", enospc)),
    Bad("synth-read-only", ds_and_user_folder, (*SYNTH, "--out", "{mine}/new"), 1, "mine",
        "Permission denied",
        fault=("segrob.io_utils.tempfile.mkdtemp", eacces)),
    Bad("audit-json-read-only", model_and_ds(), (*AUDIT, "--json", "{ds}/../r.json"),
        1, "ds", "Permission denied", fault=("segrob.io_utils.tempfile.mkstemp", eacces)),
    # 5. every field of every file segrob reads is checked before any work starts
    Bad("spacing-huge", spacing_ds((1e30, 1.0)), INFO, 1, "label", "outside"),
    Bad("spacing-zero", spacing_ds((0.0, 1.0), ".npz"), INFO, 1, "label", "outside"),
    Bad("spacing-negative", spacing_ds((-1.0, 1.0), ".npz"), INFO, 1, "label", "outside"),
    Bad("msd-image-number", msd([{"image": 5, "label": "labels/c0.nii.gz"}]), INFO, 1, "json",
        "must be a file path"),
    Bad("msd-label-list", msd([{"image": "images/c0.nii.gz", "label": ["a"]}]), INFO, 1,
        "json", "must be a file path"),
    Bad("msd-image-empty", msd([{"image": "", "label": "labels/c0.nii.gz"}]), INFO, 1, "json"),
    Bad("msd-entry-not-object", msd(["images/c0.nii.gz"]), INFO, 1, "json", "no 'image'"),
    Bad("msd-no-label", msd([{"image": "images/c0.nii.gz"}]), INFO, 1, "ds", "no label"),
    Bad("msd-missing-file", msd([{"image": "images/none.nii.gz", "label": "labels/c0.nii.gz"}]),
        INFO, 1, "ds", "not found"),
    Bad("msd-json-binary", ds_and_json(b"\x89" + SECRET.encode()),
        INFO, 1, "json", "not valid JSON"),
    Bad("msd-json-list", ds_and_json(b"[1, 2]"),
        INFO, 1, "json", "JSON object"),
    Bad("nnunet-wrong-ending", nnunet({"channel_names": {"0": "CT"}, "file_ending": ".nii"}),
        INFO, 1, "json", "file_ending"),
    Bad("nnunet-ending-number", nnunet({"file_ending": 5}), INFO, 1, "json", "file_ending"),
    Bad("nnunet-channels-list", nnunet({"channel_names": ["CT"], "file_ending": ".nii.gz"}),
        INFO, 1, "json", "channel_names"),
    Bad("segrob-json-list", segrob_json("[]"), INFO, 1, "json", "JSON object"),
    Bad("segrob-json-broken", segrob_json("{" + SECRET), INFO, 1, "json", "not valid JSON"),
    Bad("tiff-is-text", corrupt("c0.tif", SECRET.encode()), INFO, 1, "bad", "cannot read"),
    Bad("npy-is-text", corrupt("c0.npy", SECRET.encode()), INFO, 1, "bad", "cannot read"),
    Bad("nifti-not-gzip", corrupt("c0.nii.gz", SECRET.encode()), INFO, 1, "bad", "cannot read"),
    Bad("nifti-truncated", corrupt("c0.nii", b"\x5c\x01\x00\x00" + b"\x00" * 60), INFO, 1, "bad"),
    Bad("npz-is-text", corrupt("c0.npz", SECRET.encode()), INFO, 1, "bad", "cannot read"),
    Bad("config-dims-word", run_folder({"spatial_dims": "two"}), EXPORT, 1,
        "config", "spatial_dims"),
    Bad("config-channels-zero", run_folder({"in_channels": 0}), EXPORT, 1,
        "config", "in_channels"),
    Bad("config-patch-words", run_folder({"patch_size": ["a"]}), EXPORT, 1,
        "config", "patch_size"),
    Bad("config-options-list", run_folder({"options": [1]}), EXPORT, 1,
        "config", "options"),
    Bad("config-not-json", run_folder(raw=b"\xff\xfe" + SECRET.encode()), EXPORT,
        1, "config", "not valid JSON"),
    Bad("config-wrong-format", run_folder({"format": "other"}), EXPORT, 1,
        "config", "format"),
    Bad("metadata-normalisation", model_and_ds({"normalization": {"method": "minmaxx"}}),
        AUDIT, 1, "model", "normalization"),
    Bad("metadata-dims-word", model_and_ds({"spatial_dims": "two"}), AUDIT,
        1, "model", "spatial_dims"),
    Bad("metadata-channels-zero", model_and_ds({"in_channels": 0}), AUDIT,
        1, "model", "in_channels"),
    Bad("metadata-classes-one", model_and_ds({"out_channels": 1}), AUDIT,
        1, "model", "out_channels"),
    Bad("metadata-patch-word", model_and_ds({"patch_size": "big"}), AUDIT,
        1, "model", "patch_size"),
    Bad("metadata-disagrees-with-graph", model_and_ds({"spatial_dims": 3}), AUDIT,
        1, "model"),
    # resumable work: an edited or damaged partial file is refused, not reused
    Bad("partial-edited-value", edited_partial(change=_set_dice), resume_partial, 1, "partial", "was edited"),
    Bad("partial-check-dropped", edited_partial(change=lambda r: r.pop("check")), resume_partial, 1,
        "partial",
        "was edited"),
    Bad("partial-middle-line-torn", edited_partial(line='{"case": "a"'), resume_partial, 1, "partial",
        "damaged"),
    Bad("partial-foreign-record", edited_partial(change=lambda r: r.update(extra=1)), resume_partial, 1,
        "partial"),
    # 6. every option of every command at and past its limits: a usage error (exit 2) naming it
    Bad("audit-gate-nan", model_and_ds(), (*AUDIT, "--fail-under", "dice=nan"), 2, "--fail-under", "[0, 1]"),
    Bad("audit-gate-above-one", model_and_ds(), (*AUDIT, "--fail-under", "dice=2"), 2, "--fail-under",
        "[0, 1]"),
    Bad("audit-gate-iou-negative", model_and_ds(), (*AUDIT, "--fail-under", "iou=-0.1"), 2, "--fail-under"),
    Bad("audit-gate-rr-negative", model_and_ds(), (*AUDIT, "--fail-under", "rr=-1"), 2, "--fail-under",
        ">= 0"),
    Bad("audit-gate-infinite", model_and_ds(), (*AUDIT, "--fail-under", "suite_rr=inf"), 2, "--fail-under"),
    Bad("audit-gate-unknown-key", model_and_ds(), (*AUDIT, "--fail-under", "hd95=3"), 2, "--fail-under"),
    Bad("audit-failure-dice", model_and_ds(), (*AUDIT, "--failure-dice", "5"), 2, "--failure-dice", "[0, 1]"),
    Bad("audit-nsd-zero", model_and_ds(), (*AUDIT, "--nsd-tolerance", "0"), 2, "--nsd-tolerance", "(0, inf)"),
    Bad("audit-nsd-negative", model_and_ds(), (*AUDIT, "--nsd-tolerance", "-1"), 2, "--nsd-tolerance"),
    Bad("audit-window-zero", model_and_ds(), (*AUDIT, "--window", "0,96"), 2, "--window", ">= 1"),
    Bad("audit-overlap-one", model_and_ds(), (*AUDIT, "--overlap", "1"), 2, "--overlap", "[0, 1)"),
    Bad("audit-seed-negative", model_and_ds(), (*AUDIT, "--seed", "-1"), 2, "--seed", "at least 0"),
    Bad("audit-spatial-dims", model_and_ds(), (*AUDIT, "--spatial-dims", "4"), 2, "--spatial-dims"),
    Bad("audit-normalisation-name", model_and_ds(), (*AUDIT, "--normalization", "minmaxx"), 2,
        "--normalization", "zscore"),
    Bad("audit-synth-level", model_and_ds(), ("audit", "{model}", "--data", "synth:huge"), 2, "--data",
        "low, medium, high"),
    Bad("audit-resume-without-out", model_and_ds(), (*AUDIT, "--resume"), 2, "--resume"),
    Bad("audit-suite-name", model_and_ds(), (*AUDIT, "--suite", "shfit"), 2, "--suite"),
    Bad("check-runs-zero", model_and_ds(), ("check", "{model}", "--runs", "0"), 2, "--runs"),
    Bad("synth-seed-negative", ds, (*SYNTH_TO, "--seed", "-1"), 2, "--seed"),
    Bad("synth-blend-one", ds, (*SYNTH_TO, "--blend", "1"), 2, "--blend", "[0, 1)"),
    Bad("synth-fg-fraction-order", ds, (*SYNTH_TO, "--fg-fraction", "0.5,0.1"), 2, "--fg-fraction"),
    Bad("synth-fg-fraction-range", ds, (*SYNTH_TO, "--fg-fraction", "0.5,0.95"), 2, "--fg-fraction", "0.9"),
    Bad("synth-families-unknown", ds, (*SYNTH_TO, "--families", "stripes,plaid"), 2, "--families"),
    Bad("train-lr-nan", ds, (*TRAIN, "--out", "{ds}/../r", "--lr", "nan"), 2, "--lr"),
    Bad("train-val-fraction-one", ds, (*TRAIN, "--out", "{ds}/../r", "--val-fraction", "1"), 2,
        "--val-fraction", "[0, 1)"),
    Bad("train-patch-zero", ds, (*TRAIN, "--out", "{ds}/../r", "--patch", "16,0"), 2, "--patch"),
    Bad("train-no-data", ds, ("train", "--out", "{ds}/../r"), 2, "--data"),
    Bad("train-resume-and-overwrite", ds, (*TRAIN, "--out", "{ds}/../r", "--resume", "--overwrite"), 2,
        "--resume"),
    Bad("perturb-severity-past-five", ds, (*PERTURB[:-1], "9", "--out", "{ds}/../p"), 2, "--severity"),
    Bad("perturb-severity-past-texture-levels", ds,
        ("perturb", "{ds}", "--perturbation", "texture_speckle", "--severity", "3", "--out", "{ds}/../p"),
        2, "--severity", "0..2"),
    Bad("perturb-case-past-the-data", ds, (*PERTURB, "--preview", "{ds}/../s.png", "--case", "2"), 2,
        "--case", "0..1"),
    Bad("export-min-dice-above-one", run_folder(), (*EXPORT, "--min-dice", "2"), 2, "--min-dice"),
    Bad("export-opset-old", run_folder(), (*EXPORT, "--opset", "11"), 2, "--opset", "at least 18"),
    Bad("study-seeds-negative", ds, (*STUDY, "--seeds", "0,-1"), 2, "--seeds", ">= 0"),
    Bad("study-levels-unknown", ds, (*STUDY, "--levels", "low,huge"), 2, "--levels"),
    Bad("study-patches-not-multiple", ds, (*CONTEXT, "--patches", "20"), 2, "--patches", "multiples of 16"),
    Bad("study-patches-past-size", ds, (*CONTEXT, "--patches", "80", "--size", "64"), 2, "--patches",
        "--size"),
    Bad("recommend-priority", ds, ("recommend", "--complexity", "low", "--priority", "speed"), 2,
        "--priority"),
    Bad("recommend-nothing-asked", ds, ("recommend",), 2, "--complexity"),
    Bad("demo-size-small", ds, ("demo", "--out", "{ds}/../d", "--size", "8"), 2, "--size", "16"),
    # 7. more files segrob reads, corrupt or adversarial
    Bad("suite-toml-broken", model_ds_and_file("s.toml", TOML_BROKEN),
        ("suites", "--suite", "{file}"), 1, "file"),
    Bad("suite-toml-binary", model_ds_and_file("s.toml", b"\xff\xfe" + SECRET.encode()),
        (*AUDIT, "--suite", "{file}"), 1, "file"),
    Bad("suite-json-list", model_ds_and_file("s.json", b"[1]"), ("suites", "--suite", "{file}"), 1, "file"),
    Bad("suite-file-missing", model_and_ds(), ("suites", "--suite", "{ds}/none.toml"), 1, "ds", "not found"),
    Bad("report-not-json", model_ds_and_file("r.json", b"\x89" + SECRET.encode()), ("report", "{file}"),
        1, "file"),
    Bad("report-other-kind", model_ds_and_file("r.json", REPORT_OTHER), ("report", "{file}"), 1, "file",
        "not a segrob audit report"),
    Bad("onnx-is-text", model_ds_and_file("x.onnx", SECRET.encode()), ("check", "{file}"), 1, "file"),
    Bad("onnx-is-text-audit", model_ds_and_file("x.onnx", SECRET.encode()),
        ("audit", "{file}", "--data", "{ds}"), 1, "file"),
    Bad("npy-pickled-objects", pickled_npy, INFO, 1, "bad"),
    Bad("outside-link-allowed-cli", linked("outside"), (*INFO, "--allow-outside"), 1, "link", "cannot read"),
    # 8. interrupted runs and failures part-way
    Bad("train-resume-no-checkpoint", run_folder(), ("train", "--out", "{run}", "--resume"), 1, "run",
        "last.pt"),
    Bad("train-disk-full-first-epoch", ds_and("run"), (*TRAIN, "--out", "{run}", "--epochs", "1"), 1,
        "run", "no space left", fault=("segrob.training.checkpoint.torch.save", enospc)),
    Bad("audit-no-case-readable", unreadable_cases,
        (*AUDIT, "--out", "{report}", "--skip-bad"), 1, "ds", "no case could be audited"),
    Bad("preview-disk-full", ds_and("sheet.png"), (*PERTURB, "--preview", "{sheet}"), 1, "sheet",
        "no space left", fault=("segrob.io_utils.tempfile.mkstemp", enospc)),
    Bad("perturb-read-only", ds_and("p"), (*PERTURB, "--out", "{p}"), 1, "p", "Permission denied",
        fault=("segrob.io_utils.tempfile.mkdtemp", eacces)),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` with a hash of its bytes (a link: of its target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            if path.is_symlink():
                found[str(path)] = "link:" + os.readlink(path)
            else:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _run(case: Bad, files: Files, monkeypatch) -> tuple[int, str]:
    """Run a case; returns its exit code and its error text (never a traceback)."""
    if case.fault is not None:
        monkeypatch.setattr(case.fault[0], case.fault[1])
    if callable(case.command):
        with pytest.raises(SegrobError) as caught:
            case.command(files)
        return caught.value.exit_code, str(caught.value)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in case.command]
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case.name}: raised {result.exception!r}"
    )
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"{case.name}: expected one error line, got {result.stderr!r}"
    return result.exit_code, errors[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Bad, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = case.build(tmp_path)
    before = _snapshot(tmp_path)
    code, message = _run(case, files, monkeypatch)
    assert code == case.code, f"{case.name}: exit {code} ({message})"
    assert "\n" not in message.strip()
    named = case.names if case.names.startswith("--") else files[case.names].name
    assert named in message, f"{case.name}: {message!r} does not name {named}"
    assert case.says in message, f"{case.name}: {message!r} lacks {case.says!r}"
    assert SECRET not in message
    after = _snapshot(tmp_path)
    assert {p: h for p, h in after.items() if p in before} == before, f"{case.name}: an input changed"
    assert not [p for p in after if ".segrob-" in p], f"{case.name}: staging left behind"


def test_matrix_covers_enough_cases() -> None:
    assert len(CASES) >= 80 and len({c.name for c in CASES}) == len(CASES)


# --- the same rules where the command succeeds -----------------------------------------------


def test_overwrite_replaces_what_segrob_wrote(tmp_path: Path) -> None:
    root = images_labels(tmp_path / "ds")
    out = tmp_path / "p"
    args = [*(a.replace("{ds}", str(root)) for a in PERTURB), "--out", str(out),
            "--preview", str(tmp_path / "s.png")]
    assert CliRunner().invoke(app, args).exit_code == 0
    marker = json.loads((out / ".segrob").read_text())
    assert marker["kind"] == "perturbed" and "perturbations.json" in marker["files"]
    again = CliRunner().invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "p", "s.png"]


def test_a_killed_writer_leaves_staging_that_the_next_run_removes(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    script = ("import sys, time; from segrob.io_utils import atomic_output_dir\n"
              "with atomic_output_dir(sys.argv[1], overwrite=False) as staging:\n"
              "    (staging / 'half').write_text('x'); print('ready', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    stale = [p for p in tmp_path.iterdir() if ".segrob-staging-" in p.name]
    assert len(stale) == 1 and not out.exists()
    result = CliRunner().invoke(app, [*SYNTH, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_staging_of_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    from segrob.io_utils import clean_stale_staging

    live = tmp_path / f".out.segrob-staging-{os.getpid()}-abc"
    dead = tmp_path / ".out.segrob-staging-999999999-abc"
    live.mkdir()
    dead.mkdir()
    assert clean_stale_staging(tmp_path / "out") == [dead]
    assert live.exists() and not dead.exists()


def test_resume_accepts_the_same_data_spelled_differently(tmp_path: Path, monkeypatch) -> None:
    from segrob.audit.data_source import resolve_audit_data

    root = images_labels(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    relative = resolve_audit_data("ds", n=None, size=None, spatial_dims=2)
    absolute = resolve_audit_data(str(root) + "/", n=None, size=None, spatial_dims=2)
    linked_path = tmp_path / "alias"
    linked_path.symlink_to(root)
    via_link = resolve_audit_data(str(linked_path), n=None, size=None, spatial_dims=2)
    assert relative.identity == absolute.identity == via_link.identity == str(root.resolve())


def test_partial_store_keeps_records_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    files = edited_partial()(tmp_path)
    with open(files["partial"], "a") as handle:
        handle.write('{"case": "d", "pert')
    from segrob.audit.records import PartialStore

    done = PartialStore(files["partial"], PARTIAL_HEADER).open(resume=True)
    assert sorted(key[0] for key in done) == ["a", "b", "c"]


def test_reading_outside_needs_the_explicit_option(tmp_path: Path) -> None:
    files = msd([{"image": "../outside.nii.gz", "label": "labels/c0.nii.gz"}])(tmp_path)
    assert load_all(allow_outside=True)(files) == ["outside"]


def test_spacing_inside_the_range_is_used(tmp_path: Path) -> None:
    from segrob.data import load_dataset

    for spacing in ((2e-5, 0.001), (0.5, 9e3)):
        files = spacing_ds(spacing)(tmp_path / str(spacing[0]))
        case = load_dataset(files["ds"])[0]
        assert case.spacing == pytest.approx(spacing)


def test_os_errors_name_the_path(tmp_path: Path) -> None:
    from segrob.io_utils import write_text_atomic

    (tmp_path / "file").write_text("x")
    with pytest.raises(SegrobError, match="file"):
        write_text_atomic(tmp_path / "file" / "below.json", "{}")  # a file where a folder should be


def test_a_second_audit_on_the_same_file_stops_at_once(tmp_path: Path) -> None:
    from segrob.audit.records import PartialStore

    path = tmp_path / "r.json.partial.jsonl"
    first = PartialStore(path, PARTIAL_HEADER)
    first.open(resume=False)
    try:
        with pytest.raises(SegrobError, match="another audit is writing"):
            PartialStore(path, PARTIAL_HEADER).open(resume=True)
    finally:
        first.close(remove=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    again = PartialStore(path, PARTIAL_HEADER)
    assert again.open(resume=False) == {}  # free again once the first is done
    again.close(remove=True)


def test_a_training_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, monkeypatch):
    files = ds_and("run")(tmp_path)
    monkeypatch.setattr("segrob.training.checkpoint.torch.save", enospc)
    result = CliRunner().invoke(app, ["train", "--data", str(files["ds"]), "--out", str(files["run"]),
                                      "--epochs", "1"])
    assert result.exit_code == 1 and "no space left" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no run folder holding config.json


def test_an_audit_of_no_readable_case_leaves_no_partial_file_or_lock(tmp_path):
    files = unreadable_cases(tmp_path)
    args = ["audit", str(files["model"]), "--data", str(files["ds"]), "--out", str(files["report"]),
            "--skip-bad"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "no case could be audited" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "m.onnx", "notes.json"]


def test_perturb_checks_the_preview_before_writing_the_perturbed_cases(tmp_path):
    files = ds_and_png(tmp_path)
    args = [*(a.replace("{ds}", str(files["ds"])) for a in PERTURB), "--out", str(tmp_path / "p"),
            "--preview", str(files["file"])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert not (tmp_path / "p").exists()
