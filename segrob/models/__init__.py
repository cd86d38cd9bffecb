"""Architectures and their registry: the U-Net family (``unet``, ``noskip``, ``attention``,
``gated``: one network whose skip connections alone differ) and UNETR, built by name with
``create_model``."""

from segrob.models.info import ModelInfo, count_parameters, list_models
from segrob.models.registry import MODELS, ModelSpec, create_model, get_spec
from segrob.models.sizes import check_input, check_input_size, input_size_problem, size_rule
from segrob.models.unet import UNet
from segrob.models.unetr import UNETR

__all__ = [
    "MODELS",
    "UNETR",
    "ModelInfo",
    "ModelSpec",
    "UNet",
    "check_input",
    "check_input_size",
    "count_parameters",
    "create_model",
    "get_spec",
    "input_size_problem",
    "list_models",
    "size_rule",
]
