"""Whether a checkpoint's tensors and numbers fit the run it claims to continue.

`checkpoint_problem(state)` returns "" or one line saying why a checkpoint that names a valid
configuration still cannot continue its run: model tensors of another shape or kind than
`build_mlp(config)` makes, optimizer state that does not match the model's parameters, random
generator states that are not byte tensors, numbers that are not finite (`wall_s: Infinity`).
`runs.load_checkpoint` reports such a checkpoint as unusable, so the run starts in a new folder
with a note instead of failing at its first step on every `--resume`. The engine's
`check_checkpoint` still checks format, configuration, device and history. Imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fcn_tui.config import config_from_dict
from fcn_tui.errors import ConfigError
from fcn_tui.model import build_mlp

LOSSES = ("train_loss", "val_loss")  # NaN or inf is a diverged epoch's honest loss


def checkpoint_problem(state: dict) -> str:
    """"" if `state`'s contents can continue a run of its own configuration, else why not."""
    try:
        config = config_from_dict(state.get("config"), "checkpoint")
    except (ConfigError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return ""  # not this module's to say: check_checkpoint refuses another configuration
    try:
        with torch.device("meta"):  # shapes and kinds only: no memory, no draw from torch's random state
            model = build_mlp(config.model)
    except (ValueError, RuntimeError):  # a configuration no model can be built from
        return ""
    for problem in (_numbers(state), _model(state.get("model"), model), _optimizer(state.get("optimizer"), model),
                    _generators(state)):
        if problem:
            return problem
    return ""


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _numbers(state: dict) -> str:
    for key, value in state.items():
        if not _finite(value):
            return f"its {key} is {value}, not a finite number"
    history = state.get("history")
    for item in history if isinstance(history, list) else ():
        for key, value in item.items() if isinstance(item, dict) else ():
            if key not in LOSSES and not _finite(value):
                return f"its history's {key} is {value}, not a finite number"
    return ""


def _shown(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} {tuple(tensor.shape)}"


def _model(weights: Any, model: torch.nn.Module) -> str:
    expected = model.state_dict()
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return "its model is not a table of tensors"
    if set(weights) != set(expected):
        return "its model's layers are not those of its configuration"
    for key, tensor in expected.items():
        got = weights[key]
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            return f"its model's {key} is {_shown(got)}, expected {_shown(tensor)}"
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            return f"its model's {key} holds numbers that are not finite"
    return ""


def _optimizer(saved: Any, model: torch.nn.Module) -> str:
    shapes = [p.shape for p in model.parameters()]
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(saved.get("param_groups"), list):
        return "its optimizer state is malformed"
    groups = saved["param_groups"]
    if not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return "its optimizer state is malformed"
    if sorted(i for g in groups for i in g["params"] if isinstance(i, int)) != list(range(len(shapes))):
        return "its optimizer's parameters are not the model's"
    for index, entry in saved["state"].items():
        if not isinstance(index, int) or not 0 <= index < len(shapes) or not isinstance(entry, dict):
            return "its optimizer state is malformed"
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shapes[index]:
                return f"its optimizer's {name} of parameter {index} is {_shown(value)}, expected {tuple(shapes[index])}"
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return f"its optimizer's {name} of parameter {index} holds numbers that are not finite"
    return ""


GENERATORS = ("generator", "dropout_generator", "cpu_rng", "cuda_rng")  # random states a checkpoint may hold


def _generators(state: dict) -> str:
    for key in GENERATORS:
        value = state.get(key)
        if value is None and key != "generator":  # the engine's other streams differ between its versions
            continue
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.dim() != 1:
            shown = _shown(value) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"its {key} is {shown}, not a random generator's state (uint8 bytes)"
    cpu_states = ("generator", "dropout_generator", "cpu_rng") if state.get("device_type") == "cpu" else ("cpu_rng",)
    for key in (k for k in cpu_states if state.get(k) is not None):
        try:
            torch.Generator().set_state(state[key])
        except (RuntimeError, ValueError):
            return f"its {key} is not a random generator's state"
    return ""
