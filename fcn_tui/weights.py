"""The first layer's weights of a saved run, one 28x28 image per hidden unit. No UI imports.

`first_layer(run_dir)` loads the run's `model.pt` with `torch.load(weights_only=True)` (no code
from the file runs) and returns `(weights, "")` with a float32 numpy array (units, 784), or
`(None, reason)`: a run without the file (a failed one), a damaged or foreign file, or a model
without a layer that reads the 784 pixels. Call it off the app's UI thread: it uses torch.
`unit_image(row)` maps one unit's weights to grey levels: mid-grey is 0, white the unit's largest
positive weight, black its most negative one (scaled by the largest magnitude, so signs show).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcn_tui.fashion import IMAGE_SIDE, INPUT_FEATURES
from fcn_tui.runs import load_torch_file

MODEL = "model.pt"
MAX_MODEL = 1 << 30  # 1 GiB: far beyond any MLP the form allows; more is not ours


def first_layer(run_dir: Path) -> tuple[Any, str]:
    """The weights of the first Linear layer (units, 784) as float32 numpy, or None and why not."""
    path = Path(run_dir) / MODEL
    try:
        if path.is_symlink() or not path.is_file():
            return None, f"this run has no {MODEL} (a run that failed saves no model)"
        if path.stat().st_size > MAX_MODEL:
            return None, f"{MODEL} is larger than {MAX_MODEL >> 30} GiB"
    except OSError as err:
        return None, f"{MODEL}: cannot read ({err.strerror or err})"
    import torch

    state, error = load_torch_file(path)
    if error:
        return None, f"{MODEL} is damaged or not ours ({error})"
    if not isinstance(state, dict):
        return None, f"{MODEL} is not a saved state dict"
    for key, value in state.items():  # Sequential keys in layer order: "0.weight" first
        is_tensor = isinstance(value, torch.Tensor)
        if is_tensor and value.dim() == 2 and value.shape[1] == INPUT_FEATURES and str(key).endswith("weight"):
            return value.detach().float().numpy().copy(), ""
    return None, f"{MODEL} has no layer that reads the {INPUT_FEATURES} pixels"


def unit_image(row: Any) -> tuple[Any, float]:
    """One unit's 784 weights as a uint8 (28, 28) grey image, and the largest magnitude (0 when
    none is finite; non-finite weights show as mid-grey)."""
    import numpy as np

    weights = np.nan_to_num(np.asarray(row, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(weights).max()) if weights.size else 0.0
    levels = 127.5 + 127.5 * (weights / scale if scale > 0 else weights)
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE), scale
