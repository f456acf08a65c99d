"""One epoch of the baseline on the real Fashion-MNIST (needs FCN_TUI_DATA)."""

import json
import os

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app

pytestmark = pytest.mark.realdata


@pytest.mark.skipif(not os.environ.get("FCN_TUI_DATA"), reason="FCN_TUI_DATA is not set")
def test_one_epoch_of_the_baseline_on_the_real_data(tmp_path):
    result = CliRunner().invoke(app, ["run", "presets/baseline.toml", "--set", "train.epochs=1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "official Fashion-MNIST" in result.output
    [summary_path] = tmp_path.glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    assert summary["test_acc"] > 0.65
