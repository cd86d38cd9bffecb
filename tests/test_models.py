"""Contract tests over the whole architecture registry, on tiny inputs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.models import (
    MODELS,
    check_input_size,
    count_parameters,
    create_model,
    input_size_problem,
)
from segrob.models.gates import AttentionGate

UNET_FAMILY = ("unet", "noskip", "attention", "gated")
TINY_UNETR = {"patch_size": 4, "hidden_size": 16, "num_layers": 2, "num_heads": 2,
              "feature_size": 4}


def tiny(name: str, spatial_dims: int, *, in_channels: int = 1, out_channels: int = 3,
         size: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {**TINY_UNETR, "img_size": size} if name == "unetr" else {"channels": (4, 8)}
    return create_model(name, spatial_dims=spatial_dims, in_channels=in_channels,
                        out_channels=out_channels, **options)


def test_registry_has_the_designed_architectures():
    assert set(MODELS) == {"unet", "noskip", "attention", "gated", "unetr"}
    for spec in MODELS.values():
        assert spec.dims == (2, 3)
        assert spec.exportable
    assert MODELS["unetr"].fixed_size and not MODELS["unet"].fixed_size


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(SegrobError) as error:
        create_model("resnet", spatial_dims=2, in_channels=1, out_channels=2)
    for name in MODELS:
        assert name in str(error.value)


def test_unknown_option_lists_valid_options():
    with pytest.raises(SegrobError, match=r"unknown option 'depth' for unet \(valid: channels"):
        create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, depth=3)
    with pytest.raises(SegrobError, match="unknown option 'skip'"):
        create_model("noskip", spatial_dims=2, in_channels=1, out_channels=2, skip="concat")


@pytest.mark.parametrize("bad", [{"spatial_dims": 4}, {"in_channels": 0}, {"out_channels": -1}])
def test_bad_contract_arguments_are_refused(bad):
    arguments = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, **bad}
    with pytest.raises(SegrobError):
        create_model("unet", **arguments)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_forward_shape_and_parameters(name, spatial_dims):
    model = tiny(name, spatial_dims, in_channels=2, out_channels=3)
    x = torch.randn(2, 2, *(16,) * spatial_dims)
    y = model(x)
    assert y.shape == (2, 3, *(16,) * spatial_dims)
    assert torch.isfinite(y).all()
    assert count_parameters(model) > 0
    assert model.arch == name
    # options rebuild the same architecture
    again = create_model(name, spatial_dims=spatial_dims, in_channels=2, out_channels=3,
                         **model.options)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("name", UNET_FAMILY)
def test_unet_family_accepts_other_valid_sizes(name):
    model = tiny(name, 2)
    assert model(torch.randn(1, 1, 24, 40)).shape == (1, 3, 24, 40)


@pytest.mark.parametrize("name", UNET_FAMILY)
def test_odd_size_is_refused_with_the_sizes_that_work(name):
    model = create_model(name, spatial_dims=2, in_channels=1, out_channels=2,
                         channels=(4, 8, 16, 32))
    with pytest.raises(SegrobError, match="multiple of 8 and at least 16 for 4 levels; got 30x32"):
        check_input_size(model, (30, 32))
    with pytest.raises(SegrobError, match="multiple of 8"):
        model(torch.randn(1, 1, 30, 32))
    assert input_size_problem(model, (32, 48)) is None


def test_unetr_takes_only_its_img_size():
    model = tiny("unetr", 2, size=16)
    assert model.fixed_size == (16, 16)
    with pytest.raises(SegrobError, match=r"fixed input size of 16x16 \(its img_size option\)"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(SegrobError, match="multiple of patch_size"):
        create_model("unetr", spatial_dims=2, in_channels=1, out_channels=2, img_size=20,
                     patch_size=8)


def test_wrong_rank_or_channels_are_refused():
    model = tiny("unet", 3)
    with pytest.raises(SegrobError, match="3D"):
        model(torch.randn(1, 1, 16, 16))
    with pytest.raises(SegrobError, match="1 input channel"):
        model(torch.randn(1, 2, 16, 16, 16))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_training_step_lowers_the_loss(name, spatial_dims):
    from segrob.training.losses import DiceCELoss

    model = tiny(name, spatial_dims, out_channels=2)
    generator = torch.Generator().manual_seed(1)
    target = torch.zeros(2, *(16,) * spatial_dims, dtype=torch.long)
    target[(slice(None), *(slice(4, 12),) * spatial_dims)] = 1
    x = target[:, None].float() + 0.5 * torch.randn(2, 1, *(16,) * spatial_dims,
                                                   generator=generator)
    loss_fn = DiceCELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = loss_fn(model(x), target)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_fn(model(x), target)
    assert float(after) < float(before.detach())


def test_family_differs_only_in_the_skip():
    shapes = {}
    for name in UNET_FAMILY:
        state = tiny(name, 2).state_dict()
        shapes[name] = {k: v.shape for k, v in state.items()
                        if k.startswith(("encoders.", "ups.", "head."))}
    assert all(s == shapes["unet"] for s in shapes.values())
    unet, noskip = tiny("unet", 2), tiny("noskip", 2)
    # the no-skip decoder sees half the channels: its first conv is half as wide
    assert unet.decoders[0][0].weight.shape[1] == 2 * noskip.decoders[0][0].weight.shape[1]
    assert count_parameters(noskip) < count_parameters(unet)
    assert not any(k.startswith("skips.") for k in tiny("unet", 2).state_dict())


def test_gated_skips_start_open_and_can_close():
    model = tiny("gated", 2)
    openness = model.gate_openness()
    assert openness and all(0.9 < g < 1.0 for g in openness)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        for gate in model.skips:
            gate.logit.fill_(-50.0)
    closed = model(x)
    noskip = tiny("noskip", 2)
    assert model.gate_openness()[0] < 1e-6
    assert closed.shape == noskip(x).shape
    assert tiny("unet", 2).gate_openness() is None


def test_attention_coefficients_are_in_unit_range_at_skip_resolution():
    gate = AttentionGate(2, channels=4, gating_channels=8, inter_channels=2)
    features, gating = torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)
    alpha = gate.attention(features, gating)
    assert alpha.shape == (2, 1, 16, 16)
    assert float(alpha.detach().min()) >= 0.0 and float(alpha.detach().max()) <= 1.0
    assert gate(features, gating).shape == features.shape


def test_models_command_lists_every_architecture_as_json():
    from segrob_cli.main import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(MODELS)
    for row in rows.values():
        assert row["params"]["2d"] > 0 and row["params"]["3d"] > row["params"]["2d"]
        assert row["exportable"] is True
    assert rows["unetr"]["fixed_size"] is True
    assert rows["unet"]["default_options"]["2d"]["channels"] == [16, 32, 64, 128]


def test_models_command_renders_a_table():
    from segrob_cli.main import app

    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    assert "noskip" in result.stdout and "unetr" in result.stdout
