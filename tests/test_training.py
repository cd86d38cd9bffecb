"""Training: the run folder, resume, determinism, patch/FBR sampling and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.training import TrainConfig, load_run, read_run_config, train
from segrob.training.inference import predict_logits
from segrob.training.losses import case_dice, soft_dice_loss
from segrob.training.prepare import split_cases
from segrob.training.sampling import PatchSampler, fbr_range, foreground_ratio

TINY = {"channels": [4, 8]}


def write_blobs(root: Path, *, n: int, size: int, dims: int = 2, channels: int = 1) -> Path:
    """``n`` cases: a bright box (class 1) at a random place on noise."""
    from segrob.data import write_array

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.zeros((size,) * dims, dtype=np.uint8)
        corner = rng.integers(0, size // 2, size=dims)
        label[tuple(slice(c, c + size // 3) for c in corner)] = 1
        image = label + 0.3 * rng.standard_normal((channels, *label.shape))
        image = image[0] if channels == 1 else image
        write_array(root / "images" / f"case_{i:02d}.npy", image.astype(np.float32),
                    (1.0,) * dims)
        write_array(root / "labels" / f"case_{i:02d}.npy", label, (1.0,) * dims)
    return root


@pytest.fixture
def data2d(tmp_path: Path) -> Path:
    return write_blobs(tmp_path / "d2", n=6, size=32)


def config(data: Path, out: Path, **changes) -> TrainConfig:
    values = {"arch": "unet", "data": str(data), "out": str(out), "epochs": 2, "batch_size": 2,
              "options": dict(TINY), "device": "cpu"}
    values.update(changes)
    return TrainConfig(**values)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_run_folder_has_the_agreed_format(data2d, tmp_path):
    events = []
    result = train(config(data2d, tmp_path / "run"), progress=events.append)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {".segrob", "config.json", "model.pt", "last.pt"}
    stored = json.loads((run / "config.json").read_text())
    assert stored["format"] == "segrob-run/1"
    assert stored["arch"] == "unet" and stored["spatial_dims"] == 2
    assert stored["in_channels"] == 1 and stored["out_channels"] == 2
    assert stored["options"]["channels"] == [4, 8]
    assert stored["normalization"] == {"method": "zscore"}
    assert stored["patch_size"] is None
    for key in ("epochs", "lr", "batch_size", "seed", "val_fraction", "pos_ratio", "device"):
        assert key in stored["train"]
    assert stored["data"]["n_cases"] == 6 and stored["data"]["kind"] == "images-labels"
    assert len(stored["data"]["val_cases"]) == 1
    assert set(stored["fbr_range"]) >= {"min", "max", "p5", "p95"}
    assert stored["fbr_range"]["min"] <= stored["fbr_range"]["p5"] <= stored["fbr_range"]["max"]
    assert [h["epoch"] for h in stored["history"]] == [1, 2]
    assert set(stored["history"][0]) == {"epoch", "loss", "val_dice", "lr", "seconds"}
    assert stored["best"]["epoch"] in (1, 2) and 0.0 <= stored["best"]["val_dice"] <= 1.0
    assert stored["status"] == "complete" and "torch" in stored["versions"]
    assert result.best_val_dice == stored["best"]["val_dice"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("epoch") == 2
    model, run_config = load_run(run)
    assert not model.training and run_config.arch == "unet"
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_same_seed_same_run_and_another_seed_differs(data2d, tmp_path):
    train(config(data2d, tmp_path / "a"))
    train(config(data2d, tmp_path / "b"))
    train(config(data2d, tmp_path / "c", seed=1))
    assert same_weights(tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt")
    history = [[(h["loss"], h["val_dice"]) for h in read_run_config(tmp_path / r).history]
               for r in ("a", "b")]
    assert history[0] == history[1]
    assert not same_weights(tmp_path / "a" / "model.pt", tmp_path / "c" / "model.pt")


def test_resume_after_interruption_gives_the_uninterrupted_result(data2d, tmp_path):
    train(config(data2d, tmp_path / "full", epochs=3))

    def interrupt_after_first_epoch(event):
        if event.kind == "epoch" and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(data2d, tmp_path / "cut", epochs=3), progress=interrupt_after_first_epoch)
    assert read_run_config(tmp_path / "cut").status == "running"
    result = train(TrainConfig(out=str(tmp_path / "cut"), resume=True, device="cpu"))
    assert result.resumed_from == 1 and result.epochs_run == 2
    full, cut = read_run_config(tmp_path / "full"), read_run_config(tmp_path / "cut")
    assert cut.status == "complete"
    assert [h["loss"] for h in cut.history] == [h["loss"] for h in full.history]
    assert cut.best == full.best and cut.fbr_range == full.fbr_range
    assert same_weights(tmp_path / "full" / "model.pt", tmp_path / "cut" / "model.pt")
    # a resumed run refuses settings that would change its result
    with pytest.raises(SegrobError, match=r"lr: given 0\.1"):
        train(TrainConfig(out=str(tmp_path / "cut"), resume=True, lr=0.1))


def test_output_folder_is_guarded(data2d, tmp_path):
    out = tmp_path / "run"
    train(config(data2d, out, epochs=1))
    with pytest.raises(SegrobError, match="not empty"):
        train(config(data2d, out, epochs=1))
    train(config(data2d, out, epochs=1, seed=3, overwrite=True))
    assert read_run_config(out).train["seed"] == 3
    (out / "last.pt").unlink()
    with pytest.raises(SegrobError, match=r"no last\.pt to resume from"):
        train(TrainConfig(out=str(out), resume=True))


def test_resume_refuses_a_dataset_that_no_longer_fits(data2d, tmp_path):
    from segrob.data import write_array

    out = tmp_path / "run"
    train(config(data2d, out, epochs=1))
    for path in (data2d / "images").iterdir():
        write_array(path, np.zeros((2, 32, 32), np.float32), (1.0, 1.0))
    with pytest.raises(SegrobError, match=r"run has in_channels 1 but the dataset .* gives 2"):
        train(TrainConfig(out=str(out), resume=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"arch": "resnet"}, "valid: unet, noskip, attention, gated, unetr"),
        ({"arch": "unetr", "options": {"img_size": 16, "patch_size": 8}},
         "fixed input size of 16x16"),
        ({"options": {"channels": [4, 8, 8, 8, 8, 8]}}, "multiple of 32 and at least 64"),
        ({"epochs": 0}, "--epochs must be at least 1"),
    ],
)
def test_bad_requests_fail_before_anything_is_written(data2d, tmp_path, changes, message):
    out = tmp_path / "run"
    with pytest.raises(SegrobError, match=message):
        train(config(data2d, out, **changes))
    assert not out.exists()


def test_cuda_is_refused_clearly_when_unavailable(data2d, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SegrobError, match="CUDA is not available"):
        train(config(data2d, tmp_path / "run", device="cuda"))
    assert not (tmp_path / "run").exists()


def test_checkpoints_of_another_architecture_or_corrupt_are_refused(data2d, tmp_path):
    out = tmp_path / "run"
    train(config(data2d, out, epochs=1))
    stored = json.loads((out / "config.json").read_text())
    stored["arch"] = "attention"
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(SegrobError, match=r"checkpoint is not an attention model: .*missing"):
        load_run(out)
    stored["arch"] = "unet"
    (out / "config.json").write_text(json.dumps(stored))
    (out / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SegrobError, match="corrupt or unreadable checkpoint"):
        load_run(out)
    with pytest.raises(SegrobError, match="not a segrob run folder"):
        load_run(tmp_path)


def test_3d_patch_training_records_the_fbr_range(tmp_path):
    data = write_blobs(tmp_path / "d3", n=3, size=20, dims=3)
    result = train(config(data, tmp_path / "run", epochs=1, patch_size=16, pos_ratio=1.0,
                          samples_per_epoch=4))
    run = result.config
    assert run.patch_size == [16, 16, 16] and run.spatial_dims == 3
    assert run.fbr_range["n"] == 4 and run.fbr_range["min"] > 0.0  # all patches positive
    assert run.train["pos_ratio"] == 1.0


def test_dataset_channels_must_be_consistent(tmp_path):
    from segrob.data import write_array

    data = write_blobs(tmp_path / "d", n=3, size=16)
    write_array(data / "images" / "case_00.npy", np.zeros((2, 16, 16), np.float32), (1.0, 1.0))
    with pytest.raises(SegrobError, match="channel"):
        train(config(data, tmp_path / "run"))


def test_masks_saved_as_0_255_are_refused_with_a_hint(tmp_path):
    from segrob.data import write_array

    data = write_blobs(tmp_path / "d", n=3, size=16)
    for path in (data / "labels").iterdir():
        mask = np.zeros((16, 16), np.uint8)
        mask[4:8, 4:8] = 255
        write_array(path, mask, (1.0, 1.0))
    with pytest.raises(SegrobError, match="0/255"):
        train(config(data, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_patch_sampler_honours_the_positive_ratio():
    label = np.zeros((24, 24), dtype=np.int32)
    label[2:6, 2:6] = 1
    image = label[None].astype(np.float32)
    rng = np.random.default_rng(0)
    for ratio in (0.0, 0.25, 1.0):
        sampler = PatchSampler([image], [label], (8, 8), pos_ratio=ratio, seed=0)
        plan = sampler.plan(40, rng)
        assert sum(r.positive for r in plan) == round(ratio * 40)
        for request in plan:
            patch_image, patch_label = sampler.cut(request)
            assert patch_label.shape == (8, 8) and patch_image.shape == (1, 8, 8)
            if request.positive:
                assert foreground_ratio(patch_label) > 0
    small = PatchSampler([image[:, :5, :5]], [label[:5, :5]], (8, 8), pos_ratio=1.0, seed=0)
    assert small.cut(small.plan(1, rng)[0])[1].shape == (8, 8)  # padded up to the patch


def test_fbr_range_summary():
    summary = fbr_range([0.0, 0.1, 0.2, 0.3, 0.4])
    assert summary["min"] == 0.0 and summary["max"] == 0.4 and summary["n"] == 5
    assert 0.0 < summary["p5"] < summary["p95"] < 0.4
    assert fbr_range([]) is None


def test_split_is_deterministic_by_name():
    names = [f"c{i}" for i in range(10)]
    train_a, val_a = split_cases(names, seed=0, val_fraction=0.2)
    train_b, val_b = split_cases(list(reversed(names)), seed=0, val_fraction=0.2)
    assert (train_a, val_a) == (train_b, val_b) and len(val_a) == 2
    assert not set(train_a) & set(val_a)
    assert split_cases(names, seed=1, val_fraction=0.2)[1] != val_a


def test_losses_and_dice():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 1
    perfect = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 20.0
    assert float(soft_dice_loss(perfect, target)) < 1e-3
    assert float(soft_dice_loss(-perfect, target)) > 0.99
    empty = np.zeros((4, 4), dtype=np.int32)
    assert case_dice(empty, empty, 2) == 1.0
    full = np.ones((4, 4), dtype=np.int32)
    assert case_dice(full, empty, 2) == 0.0 and case_dice(full, full, 2) == 1.0


def test_sliding_window_matches_whole_image_for_a_pointwise_model():
    model = torch.nn.Conv2d(1, 2, kernel_size=1)
    model.size_multiple, model.min_size, model.fixed_size = 1, 1, None
    image = torch.randn(1, 21, 30)
    whole = predict_logits(model, image)
    tiled = predict_logits(model, image, window=(8, 8), overlap=0.25)
    assert tiled.shape == (2, 21, 30)
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_cli_train_json_and_errors(data2d, tmp_path):
    from segrob_cli.main import app

    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--arch", "noskip", "--data", str(data2d), "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--channels", "4,8", "--device", "cpu", "--quiet", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["arch"] == "noskip" and report["epochs_run"] == 1
    assert report["config"]["format"] == "segrob-run/1"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "not empty" in again.stderr
    assert "Traceback" not in again.output
    bad = runner.invoke(app, ["train", "--arch", "vit", "--data", str(data2d), "--out",
                              str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'--arch'" in bad.stderr and "unet" in bad.stderr
    usage = runner.invoke(app, ["train", "--data", str(data2d), "--out", str(tmp_path / "y"),
                                "--patch", "a,b"])
    assert usage.exit_code == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# --- one resolved, frozen settings object -------------------------------------------------------

TINY_UNETR = {"hidden_size": 16, "mlp_dim": 32, "num_layers": 3, "num_heads": 2,
              "feature_size": 4, "patch_size": 8}


def test_resolution_fills_every_default_from_the_data(data2d, tmp_path):
    from segrob.training.prepare import resolve_settings

    flat, _ = resolve_settings(TrainConfig(data=str(data2d), out="x", device="cpu"))
    assert (flat.arch, flat.epochs, flat.lr, flat.seed, flat.augment) == ("unet", 50, 3e-3, 0, True)
    assert flat.batch_size == 8 and flat.patch_size is None and flat.input_size == (32, 32)
    assert flat.samples_per_epoch == 5  # the training cases (6 minus 1 held out)
    assert dict(flat.normalization) == {"method": "zscore"} and flat.device == "cpu"
    assert flat.data == str(data2d.resolve())
    volumes = write_blobs(tmp_path / "d3", n=3, size=20, dims=3)
    cubes, _ = resolve_settings(TrainConfig(data=str(volumes), out="x", device="cpu"))
    assert cubes.patch_size == cubes.input_size == (16, 16, 16)  # min(64, 20) down to 16
    assert cubes.batch_size == 2 and cubes.samples_per_epoch == 4  # max(batch, 2 x 2 cases)


def test_settings_cannot_be_changed_once_resolved(data2d):
    from dataclasses import FrozenInstanceError

    from segrob.training.prepare import resolve_settings

    settings, _ = resolve_settings(config(data2d, "x"))
    with pytest.raises(FrozenInstanceError):
        settings.epochs = 3
    with pytest.raises(TypeError):
        settings.options["channels"] = [8, 16]


def test_fixed_size_models_are_found_through_the_registry(data2d, monkeypatch):
    from dataclasses import replace

    from segrob.models.registry import MODELS
    from segrob.training.prepare import resolve_settings

    monkeypatch.setitem(MODELS, "vit", replace(MODELS["unetr"], name="vit"))
    fixed, _ = resolve_settings(config(data2d, "x", arch="vit", options=dict(TINY_UNETR)))
    assert fixed.options["img_size"] == [32, 32]
    free, _ = resolve_settings(config(data2d, "x"))
    assert "img_size" not in free.options


def test_paper_size_is_resolved_by_the_library(data2d):
    from segrob.models.unet import PAPER_CHANNELS
    from segrob.training.prepare import resolve_settings

    paper, _ = resolve_settings(config(data2d, "x", arch="noskip", options=None, paper_size=True))
    assert paper.options["channels"] == list(PAPER_CHANNELS)
    given, _ = resolve_settings(config(data2d, "x", paper_size=True))
    assert given.options["channels"] == [4, 8]  # a given option wins over the paper's


def test_resume_compares_paper_size_with_the_stored_architecture(data2d):
    from segrob.training.config import conflicts_on_resume
    from segrob.training.prepare import resolve_settings

    stored, _ = resolve_settings(config(data2d, "x", arch="unetr", options=dict(TINY_UNETR)))
    assert conflicts_on_resume(TrainConfig(out="x", resume=True, epochs=2), stored) == []
    problems = conflicts_on_resume(TrainConfig(out="x", resume=True, paper_size=True), stored)
    assert len(problems) == 1 and "'hidden_size': 768" in problems[0]


def test_a_stored_run_resolves_to_the_settings_it_was_trained_with(data2d, tmp_path):
    from dataclasses import asdict

    from segrob.training.prepare import resolve_settings

    out = tmp_path / "run"
    request = config(data2d, out, epochs=1, patch_size=16, pos_ratio=0.75)
    first, _ = resolve_settings(request)
    train(request)
    again, _ = resolve_settings(TrainConfig(out=str(out), resume=True, device="cpu"),
                                read_run_config(out))
    before, after = asdict(first), asdict(again)
    requested, resolved = before.pop("options"), after.pop("options")
    assert all(resolved[key] == value for key, value in requested.items())
    assert before == after


def test_threads_hold_while_training_and_are_restored(data2d, tmp_path):
    seen = set()
    before = torch.get_num_threads()
    train(config(data2d, tmp_path / "run", epochs=1, threads=before + 1),
          progress=lambda event: seen.add(torch.get_num_threads()))
    assert seen == {before + 1} and torch.get_num_threads() == before


def test_threads_below_one_are_a_usage_error(data2d, tmp_path):
    from segrob_cli.main import app

    from segrob.errors import UsageError

    with pytest.raises(UsageError, match="--threads must be at least 1"):
        train(config(data2d, tmp_path / "run", threads=0))
    result = CliRunner().invoke(app, ["train", "--data", str(data2d), "--out",
                                      str(tmp_path / "run"), "--threads", "0"])
    assert result.exit_code == 2 and "'--threads': must be at least 1" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_study_cell_resumes_a_paper_size_request(data2d, tmp_path):
    from segrob.studies.pipeline import ensure_trained

    run_dir = tmp_path / "cell"
    request = config(data2d, run_dir, paper_size=True, threads=1)  # given channels beat the paper's

    def interrupt_after_first_epoch(event):
        if event.kind == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(request, progress=interrupt_after_first_epoch)
    stored = ensure_trained(run_dir, request)
    assert [h["epoch"] for h in stored["history"]] == [1, 2] and stored["status"] == "complete"
    assert stored["options"]["channels"] == [4, 8]
