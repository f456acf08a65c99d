"""The MLP's layout and the weight inits, checked against theory."""

import math

import pytest
import torch
from torch import nn

from fcn_tui.config import ModelConfig
from fcn_tui.model import build_mlp, training_flops_per_sample


def test_layer_order_with_batchnorm_and_dropout():
    model = build_mlp(ModelConfig(hidden=(64, 32), activation="gelu", dropout=0.5, batchnorm=True))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Dropout", "Linear", "BatchNorm1d", "GELU", "Dropout", "Linear"]
    assert model(torch.zeros(3, 784)).shape == (3, 10)


def test_plain_model_has_no_optional_layers():
    kinds = [type(m).__name__ for m in build_mlp(ModelConfig(hidden=(16,), activation="tanh"))]
    assert kinds == ["Linear", "Tanh", "Linear"]


def _first_weight_std(init: str, **kw) -> float:
    torch.manual_seed(0)
    model = build_mlp(ModelConfig(hidden=(1000, 1000), init=init, **kw))
    return float(model[2].weight.detach().std())  # the 1000x1000 layer: fan_in = fan_out = 1000


@pytest.mark.parametrize(
    "init, expected",
    [
        ("xavier_normal", math.sqrt(2 / 2000)),
        ("xavier_uniform", math.sqrt(2 / 2000)),
        ("kaiming_normal", math.sqrt(2 / 1000)),
        ("kaiming_uniform", math.sqrt(2 / 1000)),
        ("default", 1 / math.sqrt(3 * 1000)),  # PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    ],
)
def test_init_std_matches_theory(init, expected):
    assert _first_weight_std(init) == pytest.approx(expected, rel=0.03)


def test_random_normal_uses_init_std_and_keeps_default_biases():
    torch.manual_seed(0)
    model = build_mlp(ModelConfig(hidden=(1000,), init="random_normal", init_std=0.5))
    assert float(model[0].weight.detach().std()) == pytest.approx(0.5, rel=0.02)
    bound = 1 / math.sqrt(784)
    assert float(model[0].bias.detach().abs().max()) <= bound


def test_training_flops_count_the_three_gemms_except_the_first_input_gradient():
    flops = training_flops_per_sample(ModelConfig(hidden=(400, 400)))
    assert flops == 2 * 784 * 400 * 2 + 2 * 400 * 400 * 3 + 2 * 400 * 10 * 3
    assert isinstance(build_mlp(ModelConfig())[0], nn.Linear)
