"""Synthetic run folders for the Runs view's tests: what the recorder leaves, written directly.

`write_run(out, folder, config, status, val_accs, ...)` makes one folder (config.toml,
metrics.csv with one row per validation accuracy, summary.json); `history(out)` makes a small
mixed history: optimizers and learning rates, a run on a data subset, one with momentum, a
diverged one and one with a long name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fcn_tui.config import Config, config_to_dict, config_to_toml


def write_run(out: Path, folder: str, config: Config, status: str = "completed",
              val_accs: tuple[float, ...] = (0.80, 0.85), test_acc: float | None = None,
              wall_s: float = 12.5) -> Path:
    """One run folder under `out`; `val_accs` are the epochs' validation accuracies."""
    path = Path(out) / folder
    path.mkdir(parents=True)
    (path / "config.toml").write_text(config_to_toml(config))
    lines = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_s"]
    for epoch, acc in enumerate(val_accs, 1):
        lines.append(f"{epoch},{1.2 - acc:.6f},{acc + 0.02:.6f},{1.3 - acc:.6f},{acc:.6f},{config.optim.lr},1.0")
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    done = status == "completed"
    last = val_accs[-1] if val_accs else None
    summary = {
        "name": config.name, "status": status, "epochs_completed": len(val_accs),
        "train_loss": round(1.2 - last, 6) if last is not None else None,
        "val_loss": round(1.3 - last, 6) if last is not None else None,
        "val_acc": last, "best_val_acc": max(val_accs) if val_accs else None,
        "test_acc": (test_acc if test_acc is not None else (last or 0) - 0.01) if done else None,
        "wall_s": wall_s, "config": config_to_dict(config), "error": None,
        "started_at": f"2026-01-01T{folder[9:11]}:{folder[11:13]}:{folder[13:15]}",
        "pid": None, "host": os.uname().nodename,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def history(out: Path) -> Path:
    """Six runs, oldest first: sgd, two Adam learning rates, a subset run, momentum, a divergence."""
    base = Config(name="sgd-baseline").with_values({"train.epochs": 3})
    write_run(out, "20260101-100000-sgd-baseline", base, val_accs=(0.80, 0.84, 0.86), wall_s=61.0)
    adam = base.with_values({"name": "adam-lr1e-3", "optim.name": "adam", "optim.lr": 0.001})
    write_run(out, "20260101-101000-adam-lr1e-3", adam, val_accs=(0.85, 0.89, 0.88), test_acc=0.875)
    write_run(out, "20260101-102000-adam-lr3e-4", adam.with_values({"name": "adam-lr3e-4", "optim.lr": 0.0003,
                                                                    "model.dropout": 0.2}),
              val_accs=(0.83, 0.86, 0.87))
    write_run(out, "20260101-103000-quick-subset", base.with_values({"name": "quick-subset", "data.subset": 6000}),
              val_accs=(0.70, 0.75, 0.78), wall_s=4.0)
    write_run(out, "20260101-104000-momentum", base.with_values({"name": "a-rather-long-run-name-with-momentum",
                                                                "optim.momentum": 0.9}),
              val_accs=(0.82, 0.86, 0.87))
    write_run(out, "20260101-105000-diverged", adam.with_values({"name": "adam-lr0.5", "optim.lr": 0.5}),
              status="diverged", val_accs=(0.10,))
    return Path(out)
