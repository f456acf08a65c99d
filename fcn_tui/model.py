"""Build the MLP described by a `ModelConfig`.

Each hidden layer is `Linear -> [BatchNorm1d] -> activation -> [Dropout]`, then `Linear -> 10`.
The input is a flattened 28x28 image (784 values). Inits apply to the Linear weights only;
biases keep PyTorch's default.
"""

from __future__ import annotations

import itertools

from torch import nn

from fcn_tui.config import ModelConfig
from fcn_tui.fashion import INPUT_FEATURES, NUM_CLASSES

ACTIVATION_LAYERS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def init_linear(layer: nn.Linear, init: str, std: float) -> None:
    """Re-initialise a Linear layer's weight in place (`default` leaves PyTorch's own)."""
    weight = layer.weight
    if init == "default":
        return
    if init == "random_normal":
        nn.init.normal_(weight, mean=0.0, std=std)
    elif init == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif init == "kaiming_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    elif init == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, nonlinearity="relu")
    else:
        raise ValueError(f"unknown init {init!r}")


def build_mlp(cfg: ModelConfig) -> nn.Sequential:
    """The MLP for `cfg`; call after seeding torch for reproducible weights."""
    layers: list[nn.Module] = []
    width_in = INPUT_FEATURES
    for width in cfg.hidden:
        linear = nn.Linear(width_in, width)
        init_linear(linear, cfg.init, cfg.init_std)
        layers.append(linear)
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATION_LAYERS[cfg.activation]())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width_in = width
    head = nn.Linear(width_in, NUM_CLASSES)
    init_linear(head, cfg.init, cfg.init_std)
    layers.append(head)
    return nn.Sequential(*layers)


def training_flops_per_sample(cfg: ModelConfig) -> int:
    """Matrix-multiply FLOPs of one training sample: forward (2mn per layer), weight gradient
    (2mn) and input gradient (2mn) for every layer but the first, which needs no input gradient."""
    widths = [INPUT_FEATURES, *cfg.hidden, NUM_CLASSES]
    total = 0
    for i, (m, n) in enumerate(itertools.pairwise(widths)):
        total += 2 * m * n * (2 if i == 0 else 3)
    return total

